//! Derived tables: what several KPIs would otherwise recompute from `events` (and
//! `tickets`) on every query, computed once when the lake is written and stored beside
//! it.
//!
//! ```text
//! <lake>/_derived/<view>/source=<id>/<fingerprint>/part-0.parquet
//! ```
//!
//! A derived object is named by the **fingerprint** of what it was computed from: the
//! paths, sizes and versions (ETag, else modification time) of the source's `events`
//! and `tickets` objects. A reader takes it only when that fingerprint is the one of the
//! objects it lists now, and otherwise computes the view from `events` and `tickets` as
//! before (for that source only). So the stored rows are never read out of date,
//! whatever wrote the lake, in whatever order, or crashed on the way: a partition
//! rewritten without its derived object (a writer killed in between, another tool) only
//! costs the reader the view. Every `LakeWriter::finish` brings the derived objects of
//! all sources up to date, before the sources' state files move.
//!
//! The rows are those of the views of `queries/views/` named in [`VIEWS`], over the
//! source's `events` and `tickets`: `ticket_history` is computed natively (`history`,
//! checked against the view by the tests), any other by DataFusion from the view itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStoreExt};
use parquet::arrow::AsyncArrowWriter;
use parquet::schema::types::ColumnPath;
use sha2::{Digest, Sha256};
use url::Url;

use super::Lake;
use crate::lake::ENGINE_URL;
use crate::model::Table;

/// The views of `queries/views/` that read `events` and `tickets` only, are stored, and
/// the order of their stored rows when DataFusion computes them. `ticket_history` is
/// computed natively, in its own order (`history::compute`): by the ticket's month of
/// creation, then resolution. A KPI of one period filters the rows on the ticket's own
/// times (`created_at`, `resolved_at`, `settled_at`), and the row groups and pages of
/// tickets created, resolved or settled outside it are skipped on their statistics.
/// (Ticket ids give no such order: the join's bounds on them span every source's ids at
/// once, and ids do not sort as numbers.)
pub const VIEWS: &[(&str, &str)] = &[("ticket_history", "created_at, ticket_id")];

/// The input bytes (MiB) of the sources whose derived rows are computed at once, unless
/// the largest source alone reads more (see `refresh_view`).
const BUDGET_MIB: u32 = 512;

/// The folder of a stored view.
pub fn folder(view: &str) -> String {
    format!("_derived/{view}")
}

/// Where each source's stored rows of one view stand.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Derived {
    /// Sources whose stored object matches their events and tickets: (source, object).
    pub fresh: Vec<(String, ObjectPath)>,
    /// Sources with events or tickets but no matching object: the view computes theirs.
    pub stale: Vec<String>,
}

/// The fingerprint of a view's definition and a source's input objects (from their
/// listing): rows computed by another definition of the view (another version of
/// ticketlake, `TICKETLAKE_QUERIES`) are not read either.
fn fingerprint(view_sql: &str, objects: &[ObjectMeta]) -> String {
    let mut h = Sha256::new();
    h.update(view_sql.as_bytes());
    h.update([0]);
    for m in objects {
        h.update(m.location.as_ref().as_bytes());
        h.update(m.size.to_le_bytes());
        match &m.e_tag {
            Some(tag) => h.update(tag.as_bytes()),
            None => h.update(m.last_modified.timestamp_micros().to_le_bytes()),
        }
        h.update([0]);
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The source named by an object's `source=<id>` folder.
fn source_of(path: &ObjectPath) -> Option<String> {
    path.parts()
        .find_map(|p| p.as_ref().strip_prefix("source=").map(str::to_string))
}

/// What each source's derived rows are computed from, by source: its `events` objects,
/// then its `tickets` objects (each sorted by path), for the sources that have either.
async fn inputs_by_source(lake: &Lake) -> Result<BTreeMap<String, Vec<ObjectMeta>>> {
    let mut by_table = [BTreeMap::new(), BTreeMap::new()];
    for (table, out) in [Table::Events, Table::Tickets].iter().zip(&mut by_table) {
        for meta in lake.list(&ObjectPath::from(table.name())).await? {
            if !meta.location.as_ref().ends_with(".parquet") {
                continue;
            }
            if let Some(source) = source_of(&meta.location) {
                out.entry(source)
                    .or_insert_with(Vec::<ObjectMeta>::new)
                    .push(meta);
            }
        }
    }
    let [mut events, mut tickets] = by_table;
    for objects in events.values_mut().chain(tickets.values_mut()) {
        objects.sort_by(|a, b| a.location.cmp(&b.location));
    }
    for (source, objects) in &mut events {
        objects.extend(tickets.remove(source).unwrap_or_default());
    }
    // a source without events has rows too: one per ticket
    events.extend(tickets);
    Ok(events)
}

/// The objects of `table` among a source's inputs.
pub fn of_table(objects: &[ObjectMeta], table: Table) -> Vec<&ObjectMeta> {
    let prefix = format!("{}/", table.name());
    objects
        .iter()
        .filter(|m| m.location.as_ref().starts_with(&prefix))
        .collect()
}

/// The stored object a source's fingerprint names (alone in its folder, which readers
/// list as a table).
fn object_for(view: &str, source: &str, fingerprint: &str) -> ObjectPath {
    ObjectPath::from(format!(
        "{}/source={source}/{fingerprint}/part-0.parquet",
        folder(view)
    ))
}

/// The folder of a stored object, as a table URL of the engine.
pub fn table_url(object: &ObjectPath) -> String {
    let path = object.as_ref();
    let folder = path.rsplit_once('/').map_or(path, |(f, _)| f);
    format!("{ENGINE_URL}{folder}/")
}

/// The SQL of a view of `queries/views/`.
fn view_sql(view: &str) -> Result<String> {
    crate::queries::views()?
        .into_iter()
        .find(|(name, _)| name == view)
        .map(|(_, sql)| sql)
        .with_context(|| format!("no view {view}"))
}

/// Which sources have stored rows of `view` that match their events and tickets (three
/// listings, no reads).
pub async fn status(lake: &Lake, view: &str) -> Result<Derived> {
    let sql = view_sql(view)?;
    let events = inputs_by_source(lake).await?;
    let stored: std::collections::HashSet<ObjectPath> = lake
        .list(&ObjectPath::from(folder(view)))
        .await?
        .into_iter()
        .map(|m| m.location)
        .collect();
    let mut out = Derived::default();
    for (source, objects) in &events {
        let wanted = object_for(view, source, &fingerprint(&sql, objects));
        if stored.contains(&wanted) {
            out.fresh.push((source.clone(), wanted));
        } else {
            out.stale.push(source.clone());
        }
    }
    Ok(out)
}

/// Computes and stores the rows of every view of [`VIEWS`] for every source whose stored
/// rows do not match its events and tickets, and removes those of sources without either. Returns
/// the (view, source) pairs refreshed. Call it under the lake's lock.
pub async fn refresh(lake: &Lake) -> Result<Vec<(String, String)>> {
    super::write::map_large_blocks();
    refresh_in_pieces(lake, piece_bytes()?).await
}

/// The most bytes of a source's `tickets` objects whose `ticket_history` is computed at
/// once: `TICKETLAKE_HISTORY_PIECE_MIB` MiB if set (less memory for more time, or the
/// reverse), else `history::PIECE_BYTES`.
fn piece_bytes() -> Result<u64> {
    Ok(super::mib_from_env("TICKETLAKE_HISTORY_PIECE_MIB")?.unwrap_or(super::history::PIECE_BYTES))
}

/// [`refresh`], computing a source's `ticket_history` a piece of at most `piece_bytes` of
/// its `tickets` objects at a time (or one object; see `history::Pieces`): the rows
/// stored are the same whatever the pieces.
pub async fn refresh_in_pieces(lake: &Lake, piece_bytes: u64) -> Result<Vec<(String, String)>> {
    let events = inputs_by_source(lake).await?;
    let mut refreshed = Vec::new();
    for (view, order) in VIEWS {
        for source in refresh_view(lake, &events, view, order, piece_bytes).await? {
            refreshed.push((view.to_string(), source));
        }
    }
    Ok(refreshed)
}

async fn refresh_view(
    lake: &Lake,
    events: &BTreeMap<String, Vec<ObjectMeta>>,
    view: &str,
    order: &str,
    piece_bytes: u64,
) -> Result<Vec<String>> {
    let sql = view_sql(view)?;
    let stored = lake.list(&ObjectPath::from(folder(view))).await?;
    // the stale sources; after a failure the others still finish before the error is
    // returned, so nothing writes once the lock is gone
    let stale: Vec<(String, Vec<ObjectMeta>, ObjectPath)> = events
        .iter()
        .filter_map(|(source, objects)| {
            let wanted = object_for(view, source, &fingerprint(&sql, objects));
            let fresh = stored.iter().any(|m| m.location == wanted);
            (!fresh).then(|| (source.clone(), objects.clone(), wanted))
        })
        .collect();
    // side by side (one per core), within a memory budget: a source's rows take about
    // two and a half times the bytes of its objects while they are computed (of the
    // share a piece of it reads, when it is computed in pieces), so the sources at work
    // at once may read at most 512 MiB together, or 4/3 of what the largest one reads
    // when that is more (at 10M tickets, `glpi-lyon` and `itop-group` whole together
    // took 2.9 GB; in pieces they hold a piece each). The largest go first, so that the
    // cores end together: with the largest first and the others from the smallest, the
    // second largest came last and ran alone (at 10M tickets, 6.5 s of the phase's 18).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // a source's MiB read, and read at once
    let mib = |objects: &[ObjectMeta]| {
        let bytes: u64 = objects.iter().map(|m| m.size).sum();
        let tickets: u64 = of_table(objects, Table::Tickets)
            .iter()
            .map(|m| m.size)
            .sum();
        let held = match tickets > piece_bytes {
            true => (u128::from(bytes) * u128::from(piece_bytes) / u128::from(tickets)) as u64,
            false => bytes,
        };
        let mib = |b: u64| (b.div_ceil(1 << 20) as u32).max(1);
        (mib(bytes), mib(held))
    };
    let mut stale: Vec<_> = stale
        .into_iter()
        .map(|(source, objects, wanted)| {
            let (read, held) = mib(&objects);
            (read, held, source, objects, wanted)
        })
        .collect();
    stale.sort_by_key(|s| std::cmp::Reverse(s.0));
    let budget = stale
        .iter()
        .map(|s| s.1)
        .max()
        .map_or(1, |held| (held.saturating_mul(4) / 3).max(BUDGET_MIB));
    let memory = Arc::new(tokio::sync::Semaphore::new(budget as usize));
    let tasks = stale.into_iter().map(|(_, weight, source, objects, wanted)| {
        let (lake, sql, view, order, memory) = (
            lake.clone(),
            sql.clone(),
            view.to_string(),
            order.to_string(),
            memory.clone(),
        );
        tokio::spawn(async move {
            let _permit = memory.acquire_many_owned(weight.min(budget)).await?;
            let started = std::time::Instant::now();
            let native = (view == "ticket_history").then_some(piece_bytes);
            let rows = compute(&lake, &source, &objects, native, &sql, &order, &wanted)
                .await
                .with_context(|| format!("computing the view {view} of source '{source}'"))?;
            tracing::debug!(view, source, rows, elapsed = ?started.elapsed(), "derived rows stored");
            // what it held goes back before the next source takes its place
            super::write::release_free_memory();
            anyhow::Ok(source)
        })
    });
    let done: Vec<_> = futures::stream::iter(tasks)
        .buffer_unordered(cores)
        .collect()
        .await;
    let mut refreshed = Vec::new();
    for result in done {
        refreshed.push(result.context("a task computing a derived table")??);
    }
    refreshed.sort();
    // older objects go once their successor is in place; the one just replaced stays
    // (a reader that chose it a moment ago can still read it) until the next refresh
    let mut by_source: BTreeMap<String, Vec<&ObjectMeta>> = BTreeMap::new();
    for m in &stored {
        if let Some(s) = source_of(&m.location) {
            by_source.entry(s).or_default().push(m);
        }
    }
    for (source, mut metas) in by_source {
        let current = events
            .get(&source)
            .map(|objects| object_for(view, &source, &fingerprint(&sql, objects)));
        let keep_previous = refreshed.contains(&source);
        metas.sort_by_key(|m| std::cmp::Reverse(m.last_modified));
        let mut kept_one = false;
        for m in metas {
            if Some(&m.location) == current.as_ref() {
                continue;
            }
            if keep_previous && !kept_one {
                kept_one = true;
                continue;
            }
            lake.store
                .delete(&m.location)
                .await
                .with_context(|| format!("deleting {} in lake '{}'", m.location, lake.location))?;
        }
    }
    Ok(refreshed)
}

/// Runs a view's `sql` over one source's events and writes its rows to `target`, sorted by
/// `order`; or with `native` (`ticket_history`: Some(the most bytes of `tickets` objects a
/// piece reads)) computes the same rows natively, the view giving their schema.
async fn compute(
    lake: &Lake,
    source: &str,
    objects: &[ObjectMeta],
    native: Option<u64>,
    sql: &str,
    order: &str,
    target: &ObjectPath,
) -> Result<usize> {
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get())),
    );
    let url = Url::parse(ENGINE_URL).expect("valid engine URL");
    ctx.register_object_store(&url, lake.store.clone());
    // the source's partitions: under the lake's lock, the objects just fingerprinted
    let quoted = source.replace('\'', "''");
    for table in [Table::Events, Table::Tickets] {
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let path = datafusion::datasource::listing::ListingTableUrl::parse(format!(
            "{ENGINE_URL}{}/source={source}/",
            table.name()
        ))?;
        let config = datafusion::datasource::listing::ListingTableConfig::new(path)
            .with_listing_options(options)
            .with_schema(table.file_schema());
        let listing = datafusion::datasource::listing::ListingTable::try_new(config)?;
        let raw = format!("source_{}", table.name());
        ctx.register_table(raw.as_str(), Arc::new(listing))?;
        let columns: Vec<&str> = table.columns().iter().map(|c| c.name).collect();
        let rows = format!(
            "select '{quoted}' as source, {} from {raw}",
            columns.join(", ")
        );
        let plan = ctx.state().create_logical_plan(&rows).await?;
        ctx.register_table(
            table.name(),
            Arc::new(datafusion::catalog::view::ViewTable::new(plan, None)),
        )?;
    }
    let df = ctx
        .sql(&format!("select * from ({sql}\n) v order by {order}"))
        .await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    // the same rows, computed natively (`history`), a piece of the source at a time
    let pieces = match native {
        Some(piece_bytes) => Some(super::history::Pieces::plan(lake, objects, piece_bytes).await?),
        None => None,
    };
    let mut stream = if let Some(pieces) = &pieces {
        let held = schema.clone();
        let cast = schema.clone();
        futures::stream::iter(0..pieces.len())
            .then(move |piece| {
                super::history::compute(lake, source, objects, pieces, piece, held.clone())
            })
            .map_ok(|batches| futures::stream::iter(batches).map(anyhow::Ok))
            .try_flatten()
            .map(move |b| Ok(crate::model::cast_to(&b?, &cast)?))
            .boxed()
    } else {
        df.execute_stream()
            .await?
            .map(|b| b.map_err(anyhow::Error::from))
            .boxed()
    };
    // dictionaries only for the columns of a few values: the others hold about one value
    // per ticket (see `write::properties`)
    // LZ4, as `tickets`: the KPIs read this view (see `write::Codec`)
    let mut props = super::write::layout(super::write::Codec::Fast)?.set_dictionary_enabled(false);
    for few in ["source", "status", "org", "desk", "priority"] {
        props = props.set_column_dictionary_enabled(ColumnPath::from(few), true);
    }
    // written as it is encoded (a multipart upload, or a file staged beside the target
    // and renamed into place when complete): the object never waits whole in memory,
    // and no reader sees it before it is complete
    let object = BufWriter::new(lake.store.clone(), target.clone());
    let mut writer = AsyncArrowWriter::try_new(object, schema.clone(), Some(props.build()))?;
    let mut rows = 0;
    let written: Result<()> = async {
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            rows += batch.num_rows();
            writer.write(&batch).await?;
            if native.is_some() {
                // each native batch is a row group (see `history::compute`)
                writer.flush().await?;
            }
        }
        Ok(())
    }
    .await;
    match written {
        Ok(()) => {
            writer
                .close()
                .await
                .with_context(|| format!("writing {target} in lake '{}'", lake.location))?;
        }
        Err(e) => {
            // the upload is abandoned: nothing appears at the target
            let _ = writer.into_inner().abort().await;
            return Err(e);
        }
    }
    Ok(rows)
}
