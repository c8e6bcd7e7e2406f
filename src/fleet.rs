//! The fleet as the instances announce it (issue 27): each serving instance writes a small
//! heartbeat item every `heartbeatMs` (TTL'd, so a dead instance vanishes), under the app's
//! prefix. `fleetcache status` lists them; `prune` never removes a build one of them serves.
//! One write per instance per interval, and no read on the request path.

use serde::{Deserialize, Serialize};

/// The group (see `TagStore::put_member`) that holds the heartbeats.
pub const LIVE: &str = "live";

/// The group of the acknowledgements of feed event `seq` (see `Core::revalidate_with_receipt`).
pub fn ack_group(seq: u64) -> String {
    format!("ack#{seq}")
}

/// How long an acknowledgement is kept (s): past any receipt's wait.
pub const ACK_TTL_S: i64 = 600;

/// A heartbeat lives this many intervals past its write: one lost write does not make an
/// instance vanish, a dead one is gone within three.
pub const LIFETIMES: i64 = 3;

/// Whether each backend's circuit breaker is open.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "node", napi_derive::napi(object))]
pub struct Breakers {
    pub s3: bool,
    pub dynamodb: bool,
}

/// What one instance says of itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "node", napi_derive::napi(object))]
pub struct Heartbeat {
    /// The core's instance id (what its feed events carry as their origin).
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub build_id: String,
    /// fleetcache's version, and Next's when the JS face found it.
    pub version: String,
    pub next: Option<String>,
    /// When the core started, and when this heartbeat was written (ms since the epoch).
    pub started_at: i64,
    pub at: i64,
    /// The newest feed event applied (its sequence number), and whether the feed is trusted
    /// (memory served).
    pub applied: i64,
    pub trusted: bool,
    pub breakers: Breakers,
    pub memory_bytes: i64,
    /// Gets answered since the start: hits (memory or S3) and misses.
    pub hits: i64,
    pub misses: i64,
    /// Revalidations, feed events and uploads waiting in its outbox.
    pub outbox_depth: i64,
    /// How often it writes its heartbeat.
    pub interval_ms: i64,
}

/// The live fleet: every instance's latest heartbeat and the feed's head.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "node", napi_derive::napi(object))]
pub struct FleetStatus {
    pub instances: Vec<Heartbeat>,
    /// The newest feed sequence number handed out.
    pub head: i64,
    /// When this was read (ms since the epoch).
    pub now: i64,
}

/// An instance as a receipt names it.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "node", napi_derive::napi(object))]
pub struct ReceiptInstance {
    pub id: String,
    pub host: String,
    pub build_id: String,
    /// From the revalidation to this instance having applied it (ms); absent when it has not.
    pub applied_after_ms: Option<i64>,
}

/// Whether a revalidation reached every live instance (`Core::revalidate_with_receipt`).
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "node", napi_derive::napi(object))]
pub struct Receipt {
    /// The feed events that carry it (one per 50 tags).
    pub events: Vec<i64>,
    /// When it was made (ms since the epoch).
    pub made_at: i64,
    /// It did not reach DynamoDB in time (it stays queued and lands later): nobody else has it yet.
    pub queued: bool,
    /// The live instances (heartbeats) that have applied it, this one included, by id.
    pub instances: Vec<ReceiptInstance>,
    /// The live instances that had not applied it when the wait ended.
    pub missing: Vec<ReceiptInstance>,
    /// Its CDN purge, when this instance purges one (`cdn.*`): the paths planned, whether all
    /// went out by the end of the wait, and the invalidations that carried them.
    pub cdn: Option<crate::cdn::watch::CdnReceipt>,
}

/// This machine's name, as an operator would recognise it (a pod's name on Kubernetes).
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_round_trips_and_unknown_or_missing_fields_are_tolerated() {
        let hb = Heartbeat { id: "i1".into(), build_id: "b1".into(), applied: 7, trusted: true, ..Default::default() };
        let text = serde_json::to_string(&hb).unwrap();
        assert!(text.contains("\"buildId\":\"b1\""), "{text}");
        assert_eq!(serde_json::from_str::<Heartbeat>(&text).unwrap(), hb);
        // A newer instance's heartbeat (more fields) and an older one's (fewer) both read.
        let other: Heartbeat = serde_json::from_str(r#"{"id":"i2","buildId":"b2","later":1}"#).unwrap();
        assert_eq!((other.id.as_str(), other.build_id.as_str(), other.applied), ("i2", "b2", 0));
    }
}
