//! `ticketlake scheduler` and `ticketlake executor`: the two halves of a Ballista
//! cluster for `--engine df://host:port`, from this binary (so its executors know
//! ticketlake's functions and lakes).

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::engine::cluster::{self, Engine, ExecutorOptions};

/// Start a Ballista scheduler: clients send it queries with `--engine df://HOST:PORT`.
///
/// Serves until stopped. Ballista has no authentication: listen on a private network
/// only (the default address is this machine's loopback).
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// The address to listen on (`0.0.0.0:50050` for every interface).
    #[arg(long, default_value = "127.0.0.1:50050", value_name = "ADDR")]
    bind: SocketAddr,
    /// The name clients and executors reach this scheduler by.
    #[arg(long, default_value = "localhost", value_name = "HOST")]
    external_host: String,
}

/// Start a Ballista executor that runs the tasks of a scheduler's queries.
///
/// Serves until stopped. It reads the lake each query names, with this machine's
/// credentials (`AWS_*` for an S3 lake; a directory must be at the same path here).
#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// The scheduler, `HOST:PORT` (or `df://HOST:PORT`).
    #[arg(long, default_value = "localhost:50050", value_name = "HOST:PORT")]
    scheduler: String,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    bind_host: String,
    /// The name the scheduler and clients reach this executor by (default: the address
    /// the scheduler sees it connect from).
    #[arg(long, value_name = "HOST")]
    external_host: Option<String>,
    /// The port of the data (Arrow Flight) service.
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// The port of the task (gRPC) service.
    #[arg(long, default_value_t = 50052)]
    grpc_port: u16,
    /// Tasks run at once (default: the number of cores).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Where intermediate (shuffle) files go (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<String>,
}

pub async fn scheduler(args: SchedulerArgs) -> Result<ExitCode> {
    eprintln!(
        "ticketlake scheduler listening on {} (clients: --engine df://{}:{})",
        args.bind,
        args.external_host,
        args.bind.port()
    );
    cluster::serve_scheduler(args.bind, &args.external_host).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn executor(args: ExecutorArgs) -> Result<ExitCode> {
    // the scheduler's address is read as an engine URL: `df://` optional, port 50050 by default
    let target = args.scheduler.trim_start_matches("df://");
    let Engine::Cluster { host, port } = Engine::parse(&format!("df://{target}"))
        .with_context(|| format!("--scheduler {}", args.scheduler))?
    else {
        unreachable!("a df:// URL is a cluster")
    };
    let concurrency = args
        .concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    eprintln!(
        "ticketlake executor on {}:{} (tasks {}:{}), {} at once, for the scheduler {host}:{port}",
        args.bind_host, args.port, args.bind_host, args.grpc_port, concurrency
    );
    cluster::serve_executor(ExecutorOptions {
        scheduler_host: host,
        scheduler_port: port,
        bind_host: args.bind_host,
        external_host: args.external_host,
        flight_port: args.port,
        grpc_port: args.grpc_port,
        concurrency,
        work_dir: args.work_dir,
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
