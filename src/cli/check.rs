//! `ticketlake check`: can each source be reached, with these credentials and rights?
//! And the mail server, when the report is sent?

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::LakeArgs;
use crate::pseudonym::Pseudonymizer;
use crate::sources::config::SourceKind;
use crate::sources::{glpi, itop, pull};

/// Test each source's connectivity, credentials and rights (tickets, history, satisfaction),
/// and the [mail] server's TLS and login when there is one (without --source).
///
/// Prints one line per check and what is missing. Exit codes: 0 everything readable;
/// 1 a source answered but a right is missing (history, satisfaction…); 2 a source
/// could not be reached or refused the login.
///
/// Examples:
///   ticketlake check
///   ticketlake check --source itop-group
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CheckArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Only this source.
    #[arg(long, value_name = "ID")]
    pub source: Option<String>,
}

pub async fn run(args: CheckArgs) -> Result<ExitCode> {
    let (config, _) = args.lake.resolve()?;
    let pseudo = Pseudonymizer::new(b"check: nothing is written");
    let mut missing = false;
    let mut failed = false;
    // a config with only [mail] checks the mail server
    let sources = if config.sources.is_empty() && config.mail.is_some() && args.source.is_none() {
        Vec::new()
    } else {
        pull::selected(&config, args.source.as_deref())?
    };
    for source in sources {
        let checks = match source.kind {
            SourceKind::Itop => itop::Itop::new(source, &pseudo)?.check().await,
            SourceKind::Glpi => glpi::Glpi::new(source, &pseudo)?.check().await,
            SourceKind::Files => {
                let n = crate::sources::files::read(source, &pseudo, None, &|_, _| {})
                    .map(|p| p.tickets.len());
                n.map(|n| vec![("files".to_string(), Ok(format!("{n} tickets readable")))])
            }
        };
        match checks {
            Ok(list) => {
                for (what, r) in list {
                    match r {
                        Ok(ok) => println!("{:<20} {what:<22} ok: {ok}", source.id),
                        Err(why) => {
                            missing = true;
                            println!("{:<20} {what:<22} MISSING: {why}", source.id);
                        }
                    }
                }
            }
            Err(e) => {
                failed = true;
                println!("{:<20} {:<22} FAILED: {e:#}", source.id, "connection");
            }
        }
    }
    if let (Some(mail), None) = (&config.mail, &args.source) {
        let server = format!("{}:{}", mail.host, mail.port());
        let mail = mail.clone();
        match tokio::task::spawn_blocking(move || mail.test_connection()).await? {
            Ok(()) => println!("{:<20} {:<22} ok: TLS and login accepted", "mail", server),
            Err(e) => {
                failed = true;
                println!("{:<20} {server:<22} FAILED: {e:#}", "mail");
            }
        }
    }
    Ok(ExitCode::from(if failed {
        2
    } else if missing {
        1
    } else {
        0
    }))
}
