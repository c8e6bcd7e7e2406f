//! fleetcache: a shared ISR and data cache for self-hosted Next.js fleets.
//!
//! The napi-free core lives in the modules below and is covered by `cargo test`; `node/`
//! (feature `node`) is the N-API boundary only: `node/mod.rs` for the handler Next loads,
//! `node/ops.rs` for the deploy and operations tools.

pub mod backend;
pub mod cdn;
pub mod clock;
pub mod codec;
pub mod config;
pub mod core;
pub mod entry;
pub mod error;
pub mod feed;
pub mod fleet;
pub mod keys;
pub mod l1;
pub mod log;
pub mod metrics;
pub mod next_value;
pub mod ops;
pub mod outbox;
pub mod spool;
pub mod stats;
pub mod tag_clock;

// The napi macros register these items with Node; a `cargo test` build of the cdylib sees no caller.
#[cfg(feature = "node")]
#[cfg_attr(test, allow(dead_code))]
mod node;
