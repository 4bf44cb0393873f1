//! The lake: Hive-partitioned Parquet through `object_store`. The only module that
//! writes the lake; everything goes through an `ObjectStore`, so no code here (but the
//! choice of `LocalFileSystem` for a directory) assumes a local filesystem.
//!
//! ```text
//! <lake>/tickets/source=<id>/month=<YYYY-MM of created_at>/part-0.parquet
//! <lake>/events/source=<id>/month=<YYYY-MM of at>/part-0.parquet
//! <lake>/_state/<source>.json      watermark, last run, counts
//! <lake>/_quarantine/<source>/…    rejected records with the reason
//! <lake>/_lock                     the single writer's lock
//! <lake>/_derived/ticket_history/source=<id>/<fingerprint>/part-0.parquet
//!                                  rows derived from `events` and `tickets` (see `derived`)
//! ```

pub mod derived;
mod history;
pub mod lock;
mod spill;
pub mod validate;
pub mod write;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::model::Table;

/// The URL under which the engine sees the lake's object store.
pub const ENGINE_URL: &str = "lake://default/";

/// An opened lake: an object store rooted at the lake's top.
#[derive(Debug, Clone)]
pub struct Lake {
    /// The store, with paths relative to the lake's root.
    pub store: Arc<dyn ObjectStore>,
    /// What the user gave, for messages.
    pub location: String,
    /// The directory of a local lake.
    pub local_root: Option<std::path::PathBuf>,
}

impl Lake {
    /// Opens the lake at `location` (a directory, `file://…`); `create` makes a missing
    /// local directory, otherwise a missing lake is an error.
    pub fn open(location: &str, create: bool) -> Result<Lake> {
        let path = if location.starts_with("s3://") {
            return Lake::open_s3(location);
        } else if location.starts_with("file://") {
            Url::parse(location)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .with_context(|| format!("lake '{location}' is not a valid file:// URL"))?
        } else if location.contains("://") {
            bail!("lake '{location}': unknown URL scheme (use a directory, file:// or s3://)");
        } else {
            std::path::PathBuf::from(location)
        };
        if !path.exists() {
            if create {
                std::fs::create_dir_all(&path)
                    .with_context(|| format!("creating lake directory {}", path.display()))?;
            } else {
                bail!(
                    "no lake at '{location}' (run `ticketlake fixtures --lake {location}` or `ticketlake demo` to make one)"
                );
            }
        }
        let store = LocalFileSystem::new_with_prefix(&path)
            .with_context(|| format!("opening lake directory {}", path.display()))?;
        Ok(Lake {
            store: Arc::new(store),
            location: location.to_string(),
            local_root: Some(path),
        })
    }

    /// A lake in an S3 bucket, `s3://bucket/prefix`, configured from the environment as
    /// object_store reads it: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT` (another S3-compatible server),
    /// `AWS_ALLOW_HTTP`… Writes of the lock are conditional (`If-None-Match: *`), so two
    /// writers on two machines cannot both take it.
    fn open_s3(location: &str) -> Result<Lake> {
        Lake::open_s3_with(location, &[])
    }

    /// An S3 lake with object_store settings (`aws_endpoint`, `aws_region`…) that
    /// override the environment's.
    pub fn open_s3_with(location: &str, options: &[(&str, &str)]) -> Result<Lake> {
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
        let url = Url::parse(location)
            .with_context(|| format!("lake '{location}' is not a valid s3:// URL"))?;
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .with_context(|| format!("lake '{location}': no bucket (s3://bucket/prefix)"))?;
        let mut builder = AmazonS3Builder::from_env();
        for (key, value) in options {
            let key: AmazonS3ConfigKey = key
                .parse()
                .with_context(|| format!("'{key}' is not an S3 setting"))?;
            builder = builder.with_config(key, *value);
        }
        let s3 = builder
            .with_bucket_name(bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .build()
            .with_context(|| {
                format!("lake '{location}': the S3 settings (AWS_REGION, AWS_ENDPOINT, AWS_ACCESS_KEY_ID…)")
            })?;
        let prefix = url.path().trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
        };
        Ok(Lake::with_store(store, location))
    }

    /// A lake over any object store (tests, S3).
    pub fn with_store(store: Arc<dyn ObjectStore>, location: &str) -> Lake {
        Lake {
            store,
            location: location.to_string(),
            local_root: None,
        }
    }

    /// The folder of one partition.
    pub fn partition_dir(table: Table, source: &str, month: &str) -> ObjectPath {
        ObjectPath::from(format!("{}/source={source}/month={month}", table.name()))
    }

    /// The one data object of a partition.
    pub fn partition_file(table: Table, source: &str, month: &str) -> ObjectPath {
        ObjectPath::from(format!(
            "{}/source={source}/month={month}/part-0.parquet",
            table.name()
        ))
    }

    pub fn state_path(source: &str) -> ObjectPath {
        ObjectPath::from(format!("_state/{source}.json"))
    }

    /// Objects under a prefix, sorted by path.
    pub async fn list(&self, prefix: &ObjectPath) -> Result<Vec<object_store::ObjectMeta>> {
        let mut metas: Vec<_> = self
            .store
            .list(Some(prefix))
            .try_collect()
            .await
            .with_context(|| format!("listing {prefix} in lake '{}'", self.location))?;
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(metas)
    }

    /// The bytes of `table`'s Parquet objects in each month partition (`YYYY-MM`), over
    /// all sources: a measure of how much a query over those months reads.
    pub async fn month_bytes(&self, table: Table) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for meta in self.list(&ObjectPath::from(table.name())).await? {
            if meta.location.extension() != Some("parquet") {
                continue;
            }
            let month = meta
                .location
                .parts()
                .find_map(|p| p.as_ref().strip_prefix("month=").map(str::to_string));
            if let Some(month) = month {
                *out.entry(month).or_insert(0) += meta.size;
            }
        }
        Ok(out)
    }

    /// The sources that have data or state in the lake.
    pub async fn sources(&self) -> Result<Vec<String>> {
        let mut out = std::collections::BTreeSet::new();
        for table in Table::ALL {
            let listing = self
                .store
                .list_with_delimiter(Some(&ObjectPath::from(table.name())))
                .await
                .with_context(|| format!("listing lake '{}'", self.location))?;
            for p in listing.common_prefixes {
                if let Some(s) = p.filename().and_then(|f| f.strip_prefix("source=")) {
                    out.insert(s.to_string());
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Removes the staging files a killed writer left in a local lake (`…parquet#3`: the
    /// local store writes each object beside its name, then renames it). Readers never
    /// list them; this only reclaims their space. Call it under the lake's lock.
    pub fn sweep_staging(&self) -> Result<usize> {
        fn walk(dir: &std::path::Path, removed: &mut usize) -> std::io::Result<()> {
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    walk(&path, removed)?;
                } else if path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains('#'))
                {
                    std::fs::remove_file(&path)?;
                    *removed += 1;
                }
            }
            Ok(())
        }
        let mut removed = 0;
        if let Some(root) = &self.local_root {
            walk(root, &mut removed)
                .with_context(|| format!("cleaning staging files of lake '{}'", self.location))?;
        }
        Ok(removed)
    }

    /// Deletes every object of the lake (used by `demo` on its own lakes only).
    pub async fn clear(&self) -> Result<usize> {
        let all = self.list(&ObjectPath::from("")).await?;
        for meta in &all {
            self.store.delete(&meta.location).await.with_context(|| {
                format!("deleting {} in lake '{}'", meta.location, self.location)
            })?;
        }
        Ok(all.len())
    }

    /// Reads a source's state file, if any.
    pub async fn state(&self, source: &str) -> Result<Option<write::SourceState>> {
        match self.store.get(&Lake::state_path(source)).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                    format!("reading state of source '{source}'")
                })?))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// A size in bytes set in MiB by the environment variable `var`, if it is set; a value
/// that is not a whole number of MiB, 1 or more, is refused by name.
pub(crate) fn mib_from_env(var: &str) -> Result<Option<u64>> {
    match std::env::var(var) {
        Err(_) => Ok(None),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(mib) if mib > 0 => Ok(Some(mib.saturating_mul(1 << 20))),
            _ => anyhow::bail!("{var}={text:?}: expected a whole number of MiB, 1 or more"),
        },
    }
}
