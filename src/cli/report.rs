//! `ticketlake report`: the monthly governance report, HTML and PDF.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::{EngineArg, LakeArgs};
use crate::engine::localtime::Month;
use crate::report::{self, Format, Lang};

/// Write the monthly report of MONTH: `<out>/ticketlake-YYYY-MM.<lang>.html` (one
/// self-contained page) and `.pdf` (A4), with a 13-month trend. Prints the paths written.
///
/// Examples:
///   ticketlake report --lake ./lake --month 2026-10
///   ticketlake report --lake ./lake --month 2026-10 --lang en --out ./reports-out
///   ticketlake report --lake ./lake --month 2026-10 --format html
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ReportArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub engine: EngineArg,
    /// The month, YYYY-MM (local time).
    #[arg(long, value_parser = Month::parse)]
    pub month: Month,
    /// Language: fr (default) or en; repeat or separate with commas for both.
    #[arg(long, value_delimiter = ',', default_value = "fr", value_parser = Lang::parse)]
    pub lang: Vec<Lang>,
    /// Output directory.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Formats to write: html, pdf, or both (default).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "html,pdf")]
    pub format: Vec<Format>,
}

pub async fn run(args: ReportArgs) -> Result<ExitCode> {
    let (config, lake, days) = args.lake.with_engine(&args.engine).open()?;
    let inputs = report::gather(&lake, &config, &days, args.month).await?;
    for lang in &args.lang {
        for path in report::write(&inputs, *lang, &args.format, &args.out)? {
            println!("{}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
