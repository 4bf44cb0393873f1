//! The `ticketlake` command: argument parsing, dispatch to one file per subcommand, and
//! the mapping of errors to exit codes (0 success, 1 a check failed, 2 an error).

mod audit;
mod check;
mod cluster;
mod decide;
mod demo;
mod fixtures;
mod init;
mod kpi;
mod pull;
mod report;
mod run;
mod schema;
mod sql;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::engine::localtime::LocalDays;
use crate::lake::Lake;

/// Help-desk ticket histories into a Parquet lake, service-desk KPIs in SQL.
#[derive(Debug, Parser)]
#[command(name = "ticketlake", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines (on stderr) as text or JSON lines; `TICKETLAKE_LOG` sets the level.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// Whether log lines are JSON (then messages meant for people go through the log too).
static LOG_JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Reports a problem: a line on stderr, or a JSON log line with `--log-format json`.
pub fn report_problem(kind: &str, message: &str) {
    if LOG_JSON.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::error!(check = kind, "{message}");
    } else {
        eprintln!("ticketlake run: check failed: {message}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    Demo(demo::DemoArgs),
    Pull(pull::PullArgs),
    Run(run::RunArgs),
    Check(check::CheckArgs),
    Audit(audit::AuditArgs),
    Decide(decide::DecideArgs),
    Fixtures(fixtures::FixturesArgs),
    Kpi(kpi::KpiArgs),
    Report(report::ReportArgs),
    Sql(sql::SqlArgs),
    /// Print the documented schema of the lake's tables.
    Schema,
    Init(init::InitArgs),
    Scheduler(cluster::SchedulerArgs),
    Executor(cluster::ExecutorArgs),
}

/// Where the lake and the config are: shared by every command that reads the lake.
#[derive(Debug, Clone, Args)]
pub struct LakeArgs {
    /// The lake: a directory, file:// or s3:// URL (default: `lake` in the config).
    #[arg(long, value_name = "URL")]
    pub lake: Option<String>,
    /// Where queries run (set by the commands that query, from [`EngineArg`]).
    #[arg(skip)]
    pub engine: Option<String>,
    /// The configuration file (default: ./ticketlake.toml if present, else the built-in INSA group).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `--engine`, for the commands that query the lake.
#[derive(Debug, Clone, Args)]
pub struct EngineArg {
    /// Where queries run: `local`, or `df://HOST:PORT`, a Ballista scheduler (default:
    /// `engine` in the config, else local).
    #[arg(long, value_name = "URL")]
    pub engine: Option<String>,
}

impl LakeArgs {
    /// These arguments with `--engine`.
    pub fn with_engine(&self, engine: &EngineArg) -> LakeArgs {
        LakeArgs {
            engine: engine.engine.clone(),
            ..self.clone()
        }
    }

    /// The config and the lake's location.
    pub fn resolve(&self) -> Result<(Config, String)> {
        let mut config = Config::resolve(self.config.as_deref())?;
        if let Some(engine) = &self.engine {
            crate::engine::cluster::Engine::parse(engine)?;
            config.engine = Some(engine.clone());
        }
        let lake = self.lake.clone().unwrap_or_else(|| config.lake.clone());
        Ok((config, lake))
    }

    /// Opens an existing lake with its config.
    pub fn open(&self) -> Result<(Config, Lake, LocalDays)> {
        let (config, location) = self.resolve()?;
        let lake = Lake::open(&location, false)?;
        let days = LocalDays::new(config.tz()?);
        Ok((config, lake, days))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // planning and (de)serialising the KPIs' deep plans recurses far; Ballista's own
        // scheduler runs with 32 MiB stacks (address space, not memory, until used)
        .thread_stack_size(32 << 20)
        .build()?)
}

/// Parses the command line and runs; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TICKETLAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => {
            LOG_JSON.store(true, std::sync::atomic::Ordering::Relaxed);
            logs.json().init()
        }
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            match cli.command {
                Command::Demo(a) => demo::run(a).await,
                Command::Pull(a) => pull::run(a).await,
                Command::Run(a) => run::run(a).await,
                Command::Check(a) => check::run(a).await,
                Command::Audit(a) => audit::run(a).await,
                Command::Decide(a) => decide::run(a).await,
                Command::Fixtures(a) => fixtures::run(a).await,
                Command::Kpi(a) => kpi::run(a).await,
                Command::Report(a) => report::run(a).await,
                Command::Sql(a) => sql::run(a).await,
                Command::Schema => schema::run(),
                Command::Init(a) => init::run(a),
                Command::Scheduler(a) => cluster::scheduler(a).await,
                Command::Executor(a) => cluster::executor(a).await,
            }
        })
    });
    match result {
        Ok(code) => code,
        Err(e) if crate::output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ticketlake: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
