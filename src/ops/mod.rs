//! The operators' tools, on top of the core: deploying a build (`deploy.rs`: the build
//! registry, seeding, pruning), checking the AWS set-up (`doctor.rs`), and reading what the
//! store holds (`inspect.rs`).

pub mod deploy;
pub mod doctor;
pub mod inspect;
