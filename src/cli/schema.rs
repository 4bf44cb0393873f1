//! `ticketlake schema`: the documented schema of the lake, for analysts.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

pub fn run() -> Result<ExitCode> {
    std::io::stdout()
        .lock()
        .write_all(crate::model::describe().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
