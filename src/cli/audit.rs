//! `ticketlake audit`: does the lake hold anything that looks like personal data?

use std::process::ExitCode;

use anyhow::{Context, Result};
use arrow::array::{Array, AsArray};
use clap::Args;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::{EngineArg, LakeArgs};
use crate::model::{ColumnType, Table};

/// Scan the lake and its quarantine for personal data: e-mail addresses anywhere, and
/// identity columns (requester, agent, actor) that are not keyed pseudonyms.
///
/// Prints one line per finding (where, what, how many, and an example with its middle
/// masked). Exit codes: 0 nothing found; 1 something found; 2 an error.
///
/// Examples:
///   ticketlake audit --lake ./lake
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct AuditArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub engine: EngineArg,
}

/// An e-mail address.
pub const EMAIL: &str = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}";
/// A keyed pseudonym as ticketlake writes them.
pub const PSEUDONYM: &str = "^p_[0-9a-f]{16}$";
/// A GLPI-style `login (id)` user reference.
pub const LOGIN_REF: &str = r"^[A-Za-z][\w.\-]* \(\d+\)$";

/// Identity columns of each table.
fn identity_columns(table: Table) -> &'static [&'static str] {
    match table {
        Table::Tickets => &["requester", "agent"],
        Table::Events => &["actor"],
    }
}

/// `ab…yz` of a value.
fn mask(v: &str) -> String {
    let chars: Vec<char> = v.chars().collect();
    if chars.len() <= 4 {
        return "…".into();
    }
    format!(
        "{}…{}",
        chars[..2].iter().collect::<String>(),
        chars[chars.len() - 2..].iter().collect::<String>()
    )
}

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub place: String,
    pub what: String,
    pub count: u64,
    pub example: String,
}

/// Scans a lake.
pub async fn scan(
    lake: &crate::lake::Lake,
    config: &crate::config::Config,
) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    if !lake.sources().await?.is_empty() {
        let ctx = crate::engine::session(lake, config).await?;
        for table in Table::ALL {
            let columns = table
                .columns()
                .iter()
                .filter(|c| c.data_type == ColumnType::Utf8);
            for c in columns {
                let name = c.name;
                let mut checks = vec![(
                    "e-mail address".to_string(),
                    format!("regexp_like({name}, '{EMAIL}')"),
                )];
                if identity_columns(table).contains(&name) {
                    checks.push((
                        "identity that is not a pseudonym".to_string(),
                        format!("{name} <> '' and not regexp_like({name}, '{PSEUDONYM}')"),
                    ));
                }
                for (what, cond) in checks {
                    let sql = format!(
                        "select source, count(*) as n, min({name}) as example from {} where {cond} group by source order by source",
                        table.name()
                    );
                    let batches = ctx
                        .sql_with_options(&sql, crate::engine::read_only())
                        .await?
                        .collect()
                        .await
                        .with_context(|| format!("auditing {}.{name}", table.name()))?;
                    for b in &batches {
                        // text as the engine holds it (Utf8View), read as plain strings
                        let text = |c: usize| {
                            arrow::compute::cast(b.column(c), &arrow::datatypes::DataType::Utf8)
                        };
                        let (src, ex) = (text(0)?, text(2)?);
                        let (src, ex) = (src.as_string::<i32>(), ex.as_string::<i32>());
                        let n = b.column(1).as_primitive::<arrow::datatypes::Int64Type>();
                        for r in 0..b.num_rows() {
                            out.push(Finding {
                                place: format!("{}.{name} (source {})", table.name(), src.value(r)),
                                what: what.clone(),
                                count: n.value(r) as u64,
                                example: if ex.is_valid(r) {
                                    mask(ex.value(r))
                                } else {
                                    String::new()
                                },
                            });
                        }
                    }
                }
            }
        }
    }
    // the quarantine and the state files, line by line
    let email = regex::Regex::new(EMAIL)?;
    let login = regex::Regex::new(LOGIN_REF)?;
    let pseudonym = regex::Regex::new(PSEUDONYM)?;
    for prefix in ["_quarantine", "_state"] {
        let metas: Vec<_> = lake
            .store
            .list(Some(&object_store::path::Path::from(prefix)))
            .try_collect()
            .await?;
        for meta in metas {
            let bytes = lake.store.get(&meta.location).await?.bytes().await?;
            let text = String::from_utf8_lossy(&bytes);
            let mut found: Vec<(String, String)> = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if let Some(m) = email.find(line) {
                    found.push((
                        "e-mail address".into(),
                        format!("line {}: {}", i + 1, mask(m.as_str())),
                    ));
                }
                // values of identity fields kept in raw records
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                    let mut strings = Vec::new();
                    collect_strings(&v, &mut strings);
                    for s in strings {
                        if login.is_match(&s) && !pseudonym.is_match(&s) {
                            found.push((
                                "login reference".into(),
                                format!("line {}: {}", i + 1, mask(&s)),
                            ));
                        }
                    }
                }
            }
            let mut by_kind: std::collections::BTreeMap<String, (u64, String)> = Default::default();
            for (kind, ex) in found {
                let e = by_kind.entry(kind).or_insert((0, ex));
                e.0 += 1;
            }
            for (what, (count, example)) in by_kind {
                out.push(Finding {
                    place: meta.location.to_string(),
                    what,
                    count,
                    example,
                });
            }
        }
    }
    Ok(out)
}

fn collect_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

pub async fn run(args: AuditArgs) -> Result<ExitCode> {
    let (config, lake, _) = args.lake.with_engine(&args.engine).open()?;
    let findings = scan(&lake, &config).await?;
    if findings.is_empty() {
        println!(
            "audit of lake '{}': no e-mail address, no login, no identity that is not a pseudonym",
            lake.location
        );
        return Ok(ExitCode::SUCCESS);
    }
    for f in &findings {
        println!("{}: {} × {} (e.g. {})", f.place, f.count, f.what, f.example);
    }
    println!(
        "audit of lake '{}': {} finding(s): remove them (re-pull with the pseudonym secret set, or delete the quarantine files named)",
        lake.location,
        findings.len()
    );
    Ok(ExitCode::from(1))
}
