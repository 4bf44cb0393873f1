//! `ticketlake sql`: read-only SQL over the lake, from the command line, a file or an
//! interactive prompt.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use arrow::datatypes::SchemaRef;
use clap::Args;
use datafusion::prelude::SessionContext;

use super::{EngineArg, LakeArgs};
use crate::output::{self, Format};

/// Run read-only SQL over the lake.
///
/// Tables: tickets, events (the lake), services, orgs, sla_targets (the config), and the
/// views status_intervals, pending_periods and ticket_history; functions business_seconds(org, from,
/// to), business_micros(org, from, to), pending_business_micros(org, starts, ends, from, to),
/// local_month(ts), local_date(ts), local_day(ts), quantile_cont(x, q), quantiles_cont(x, q1,
/// q2, …), open_by_age(created_day, from_day, to_day, first_day, end_day, bound, …),
/// recurring_instants(at, within_us).
/// `ticketlake schema` documents them.
/// DDL, DML, COPY and SET are refused. Without a query, an interactive prompt opens
/// (statements end with `;`, `\q` leaves).
///
/// Examples:
///   ticketlake sql --lake ./lake "select org, count(*) from tickets group by org"
///   ticketlake sql --lake ./lake -f monthly.sql --format csv > out.csv
///   ticketlake sql --lake ./lake "select * from events" --format parquet --out events.parquet
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SqlArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub engine: EngineArg,
    /// The query (omit it, and -f, for an interactive prompt).
    pub query: Option<String>,
    /// Read the statements from a file.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        conflicts_with = "query"
    )]
    pub file: Option<PathBuf>,
    /// Output format (default: table on a terminal, csv otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write the result to this file instead of standard output (needed for parquet).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub async fn run(args: SqlArgs) -> Result<ExitCode> {
    let (config, lake, _) = args.lake.with_engine(&args.engine).open()?;
    let ctx = crate::engine::session(&lake, &config).await?;
    let format = args
        .format
        .unwrap_or(if std::io::stdout().is_terminal() && args.out.is_none() {
            Format::Table
        } else {
            Format::Csv
        });
    if format == Format::Parquet && args.out.is_none() {
        bail!("--format parquet needs --out FILE");
    }
    let text = match (&args.query, &args.file) {
        (Some(q), _) => q.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => return interactive(&ctx).await,
    };
    let results = crate::engine::query::run_read_only(&ctx, &text).await?;
    for (schema, batches) in &results {
        emit(schema, batches, format, args.out.as_deref())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn emit(
    schema: &SchemaRef,
    batches: &[arrow::array::RecordBatch],
    format: Format,
    out: Option<&std::path::Path>,
) -> Result<()> {
    if format == Format::Parquet {
        return output::parquet(out.expect("checked"), schema, batches);
    }
    let mut sink: Box<dyn Write> = match out {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    match format {
        Format::Table => sink.write_all(output::table(schema, batches)?.as_bytes())?,
        Format::Csv => output::csv(&mut sink, batches)?,
        Format::Json => output::json(&mut sink, batches)?,
        Format::Parquet => unreachable!(),
    }
    sink.flush()?;
    Ok(())
}

async fn interactive(ctx: &SessionContext) -> Result<ExitCode> {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ticketlake_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    eprintln!("ticketlake sql — read-only; end statements with ';', \\q to quit");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "ticketlake> "
        } else {
            "        ..> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
                    break;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if trimmed.ends_with(';') {
                    let _ = editor.add_history_entry(buffer.trim());
                    match crate::engine::query::run_read_only(ctx, &buffer).await {
                        Ok(results) => {
                            for (schema, batches) in &results {
                                print!("{}", output::table(schema, batches)?);
                            }
                        }
                        Err(e) => eprintln!("error: {e:#}"),
                    }
                    buffer.clear();
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(ExitCode::SUCCESS)
}
