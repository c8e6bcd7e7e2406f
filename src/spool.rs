//! The spool (issue 26): what the outbox could not deliver before the process was told to stop,
//! kept on the machine's disk for the next start.
//!
//! On SIGTERM the JS face delivers the outbox for at most 5 s (`Core::flush`); what is left is
//! written here ([`write`]) as one file per process: msgpack of [`SpoolFile`], named after the
//! store it belongs to (bucket, table, prefix), written to a temporary name and renamed, so a
//! reader never sees half a file. A core starting on that machine with the same store claims
//! every such file ([`claim`]: a rename, which exactly one process wins), queues its units in its
//! own outbox, and deletes it. A revalidation is applied to the starting core's own tag clock too,
//! so the instance honours it at once, as the one that made it did.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::tags::FeedEvent;
use crate::keys::Class;

const EXTENSION: &str = "spool";

/// One undelivered unit, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Spooled {
    Revalidate {
        tags: Vec<String>,
        at: i64,
        expire_s: Option<f64>,
    },
    Announce {
        event: FeedEvent,
        at: i64,
    },
    /// A `set` whose S3 write failed: its class and encoded object.
    Upload {
        class: u8,
        body: Vec<u8>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct SpoolFile {
    /// The store the units belong to (see [`identity`]), checked again on reading.
    store: String,
    units: Vec<Spooled>,
}

/// Which store a spool file belongs to.
pub fn identity(bucket: &str, table: &str, prefix: &str) -> String {
    format!("{bucket}\n{table}\n{prefix}")
}

fn stem(store: &str) -> String {
    format!("fleetcache-{}", &crate::keys::sha256_hex(store)[..16])
}

pub fn class_code(c: Class) -> u8 {
    match c {
        Class::Route => 0,
        Class::Fetch => 1,
        Class::Image => 2,
        Class::UseCache => 3,
    }
}

pub fn class_of(code: u8) -> Option<Class> {
    Some(match code {
        0 => Class::Route,
        1 => Class::Fetch,
        2 => Class::Image,
        3 => Class::UseCache,
        _ => return None,
    })
}

/// Writes `units` for `store` into `dir` (created if missing); returns the file.
pub fn write(dir: &Path, store: &str, units: Vec<Spooled>) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name = format!("{}-{}-{nanos}", stem(store), std::process::id());
    let file = SpoolFile { store: store.to_string(), units };
    let bytes = rmp_serde::to_vec(&file).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    let path = dir.join(format!("{name}.{EXTENSION}"));
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Takes every spool file of `store` in `dir`: the units of each, and the files that could not be
/// read (left in place, renamed `.bad`, for a person to look at).
pub fn claim(dir: &Path, store: &str) -> (Vec<Spooled>, Vec<String>) {
    let mut units = Vec::new();
    let mut bad = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return (units, bad) };
    let stem = stem(store);
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&stem) || !name.ends_with(&format!(".{EXTENSION}")) {
            continue;
        }
        // The rename decides which starting process takes the file.
        let mine = dir.join(format!(".{name}.claimed-{}", std::process::id()));
        if std::fs::rename(e.path(), &mine).is_err() {
            continue;
        }
        let read = std::fs::read(&mine)
            .map_err(|e| e.to_string())
            .and_then(|b| rmp_serde::from_slice::<SpoolFile>(&b).map_err(|e| e.to_string()));
        match read {
            Ok(f) if f.store == store => {
                units.extend(f.units);
                let _ = std::fs::remove_file(&mine);
            }
            Ok(_) => {
                let _ = std::fs::rename(&mine, e.path()); // another store's, by a hash collision
            }
            Err(why) => {
                bad.push(format!("{name}: {why}"));
                let _ = std::fs::rename(&mine, dir.join(format!("{name}.bad")));
            }
        }
    }
    (units, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_written_by_one_process_are_claimed_once_by_the_next_of_the_same_store() {
        let dir = std::env::temp_dir().join(format!("fleetcache-spool-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = identity("b", "t", "p");
        let units = vec![
            Spooled::Revalidate { tags: vec!["a".into(), "b".into()], at: 5, expire_s: Some(60.0) },
            Spooled::Announce { event: FeedEvent::Key { key: "/k".into(), last_modified: 7, write_id: 9 }, at: 7 },
            Spooled::Upload { class: class_code(Class::Fetch), body: vec![1, 2, 3] },
        ];
        write(&dir, &store, units.clone()).unwrap();
        write(&dir, &identity("b", "t", "other"), units[..1].to_vec()).unwrap();
        std::fs::write(dir.join(format!("{}-1-1.{EXTENSION}", stem(&store))), b"not msgpack").unwrap();
        let (got, bad) = claim(&dir, &store);
        assert_eq!(got, units);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(claim(&dir, &store), (vec![], vec![]), "claimed once");
        let (other, _) = claim(&dir, &identity("b", "t", "other"));
        assert_eq!(other.len(), 1, "another store's file is left to it");
        assert_eq!(class_of(class_code(Class::UseCache)), Some(Class::UseCache));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
