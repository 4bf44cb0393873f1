//! The single-writer lock: an object created with a conditional put
//! (`PutMode::Create`), so it also works on object stores that support it (S3).
//! A lock whose holder is gone (expired, or a dead process on this host) is taken over.

use anyhow::{Result, bail};
use chrono::{DateTime, Duration, Utc};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::Lake;

/// How long a lock stays valid without its holder.
pub const LOCK_TTL_HOURS: i64 = 6;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    pub pid: u32,
    pub host: String,
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A held lock; call [`LakeLock::release`] when done.
#[derive(Debug)]
pub struct LakeLock {
    lake: Lake,
}

fn lock_path() -> ObjectPath {
    ObjectPath::from("_lock")
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

fn holder_is_gone(info: &LockInfo) -> Option<&'static str> {
    if info.expires_at < Utc::now() {
        return Some("it expired");
    }
    if info.host == host_name()
        && cfg!(target_os = "linux")
        && !std::path::Path::new(&format!("/proc/{}", info.pid)).exists()
    {
        return Some("its process is gone");
    }
    None
}

impl LakeLock {
    /// Takes the lake's lock for `command`, or says who holds it.
    pub async fn acquire(lake: &Lake, command: &str) -> Result<LakeLock> {
        let now = Utc::now();
        let info = LockInfo {
            pid: std::process::id(),
            host: host_name(),
            command: command.to_string(),
            started_at: now,
            expires_at: now + Duration::hours(LOCK_TTL_HOURS),
        };
        let payload = serde_json::to_vec_pretty(&info)?;
        let path = lock_path();
        let put = |mode: PutMode| {
            let opts = PutOptions {
                mode,
                ..Default::default()
            };
            lake.store
                .put_opts(&path, PutPayload::from(payload.clone()), opts)
        };
        for _ in 0..2 {
            match put(PutMode::Create).await {
                Ok(_) => return Ok(LakeLock { lake: lake.clone() }),
                Err(object_store::Error::AlreadyExists { .. }) => {
                    let got = lake.store.get(&lock_path()).await?;
                    let version = object_store::UpdateVersion {
                        e_tag: got.meta.e_tag.clone(),
                        version: got.meta.version.clone(),
                    };
                    let held = got.bytes().await?;
                    let Ok(other) = serde_json::from_slice::<LockInfo>(&held) else {
                        bail!(
                            "lake '{}' is locked by an unreadable lock object '_lock'; remove it if no ticketlake is running",
                            lake.location
                        );
                    };
                    match holder_is_gone(&other) {
                        Some(why) => {
                            eprintln!(
                                "ticketlake: taking over the lock of lake '{}' left by '{}' (pid {} on {}): {why}",
                                lake.location, other.command, other.pid, other.host
                            );
                            // replace exactly the stale lock (If-Match on S3), so that of
                            // two processes taking it over at once only one succeeds
                            match put(PutMode::Update(version)).await {
                                Ok(_) => return Ok(LakeLock { lake: lake.clone() }),
                                Err(object_store::Error::Precondition { .. }) => {
                                    continue; // someone else took it over first
                                }
                                Err(object_store::Error::NotImplemented { .. }) => {
                                    // a local directory: one host, whose dead pid was checked
                                    lake.store.delete(&lock_path()).await?;
                                }
                                Err(e) => return Err(e.into()),
                            }
                        }
                        None => bail!(
                            "lake '{}' is already being written by '{}' (pid {} on {}, since {}); try again later, or remove '_lock' after {} if that process is gone",
                            lake.location,
                            other.command,
                            other.pid,
                            other.host,
                            other.started_at.format("%Y-%m-%d %H:%M UTC"),
                            other.expires_at.format("%Y-%m-%d %H:%M UTC"),
                        ),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        bail!("could not take the lock of lake '{}'", lake.location)
    }

    pub async fn release(self) -> Result<()> {
        self.lake.store.delete(&lock_path()).await?;
        Ok(())
    }
}
