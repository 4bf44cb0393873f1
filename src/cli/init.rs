//! `ticketlake init`: writes the commented example configuration (the INSA group).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

/// Write a commented example configuration.
///
/// Examples:
///   ticketlake init                 # writes ./ticketlake.toml
///   ticketlake init --out my.toml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct InitArgs {
    /// Where to write it.
    #[arg(long, default_value = "ticketlake.toml")]
    out: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

pub fn run(args: InitArgs) -> Result<ExitCode> {
    if args.out.exists() && !args.force {
        bail!("{} exists; pass --force to replace it", args.out.display());
    }
    std::fs::write(&args.out, crate::config::EXAMPLE_TOML)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
