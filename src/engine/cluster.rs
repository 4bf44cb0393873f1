//! Queries on an Apache DataFusion Ballista cluster: `--engine df://host:port` (or
//! `engine` in the config) sends the plans of `kpi`, `sql`, `report` and `decide` to a
//! Ballista scheduler; `ticketlake scheduler` and `ticketlake executor` start one, so a
//! cluster is N machines running this binary.
//!
//! What a plan needs travels with it, so the cluster needs no config of its own:
//! - the lake's location, in the session setting `ticketlake.lake` (Ballista sends a
//!   session's settings with each job): the scheduler lists the lake's files through it
//!   and the executors read them, each with its own credentials (`AWS_*`);
//! - ticketlake's functions, rebuilt on the scheduler and the executors from the
//!   definition (time zone, calendars, orgs) that the plan codec writes beside each call.
//!
//! The reference tables (`services`, `orgs`, `sla_targets`) are VALUES plans, which
//! serialise; a view is inlined before planning, so nothing else has to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::common::{DataFusionError, TableReference, config_err};
use datafusion::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF, WindowUDF};
use datafusion::physical_expr_common::physical_expr::proto_decode::PhysicalExprDecodeCtx;
use datafusion::physical_expr_common::physical_expr::proto_encode::PhysicalExprEncodeCtx;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use url::Url;

use super::{open_days, quantile, recurrence, udf};
use crate::lake::{ENGINE_URL, Lake};

/// The scheduler's port when `df://host` names none (Ballista's default).
pub const DEFAULT_PORT: u16 = 50050;

/// Where queries run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// In this process.
    Local,
    /// On the Ballista cluster whose scheduler listens at host:port.
    Cluster { host: String, port: u16 },
}

impl Engine {
    /// `local` or `df://host[:port]`.
    pub fn parse(text: &str) -> Result<Engine> {
        if text == "local" {
            return Ok(Engine::Local);
        }
        let bad = || {
            format!("engine '{text}': use \"local\" or \"df://host:port\" (a Ballista scheduler)")
        };
        let url = Url::parse(text).with_context(bad)?;
        match (url.scheme(), url.host_str()) {
            ("df", Some(host)) if !host.is_empty() && matches!(url.path(), "" | "/") => {
                Ok(Engine::Cluster {
                    host: host.to_string(),
                    port: url.port().unwrap_or(DEFAULT_PORT),
                })
            }
            _ => bail!(bad()),
        }
    }

    /// The engine of a config (`local` when it names none).
    pub fn of(config: &crate::config::Config) -> Result<Engine> {
        config
            .engine
            .as_deref()
            .map_or(Ok(Engine::Local), Engine::parse)
    }
}

/// ticketlake's settings in a session's config; Ballista sends them with each job.
///
/// Written out rather than with `extensions_options!`, whose entries lack the prefix
/// (`lake`, not `ticketlake.lake`), so that the scheduler could not set them back.
#[derive(Debug, Clone, Default)]
pub struct LakeOptions {
    /// The lake (an absolute directory, `file://` or `s3://` URL) behind `lake://default/`.
    pub lake: String,
}

impl ExtensionOptions for LakeOptions {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }
    fn set(&mut self, key: &str, value: &str) -> datafusion::error::Result<()> {
        match key {
            "lake" => {
                self.lake = value.to_string();
                Ok(())
            }
            _ => config_err!("no setting ticketlake.{key}"),
        }
    }
    fn entries(&self) -> Vec<ConfigEntry> {
        vec![ConfigEntry {
            key: "ticketlake.lake".to_string(),
            value: Some(self.lake.clone()),
            description: "The lake the query reads (sent to a Ballista cluster)",
        }]
    }
}

impl ConfigExtension for LakeOptions {
    const PREFIX: &'static str = "ticketlake";
}

/// A session config for Ballista with ticketlake's settings and codecs: used by the
/// client, the scheduler and the executors alike.
pub fn session_config() -> SessionConfig {
    SessionConfig::new_with_ballista()
        .with_option_extension(LakeOptions::default())
        .with_ballista_logical_extension_codec(Arc::new(LogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default()))
}

/// A runtime whose `lake://default/` is the store of the session's `ticketlake.lake`
/// (opened once per location and process).
pub fn runtime(config: &SessionConfig) -> datafusion::error::Result<Arc<RuntimeEnv>> {
    let runtime = RuntimeEnvBuilder::new().build()?;
    let location = config
        .options()
        .extensions
        .get::<LakeOptions>()
        .map(|o| o.lake.clone())
        .unwrap_or_default();
    if !location.is_empty() {
        let lake =
            open_lake(&location).map_err(|e| DataFusionError::External(format!("{e:#}").into()))?;
        let url = Url::parse(ENGINE_URL).expect("valid engine URL");
        runtime.register_object_store(&url, lake.store);
    }
    Ok(Arc::new(runtime))
}

fn open_lake(location: &str) -> Result<Lake> {
    static LAKES: Mutex<Option<HashMap<String, Lake>>> = Mutex::new(None);
    let mut lakes = LAKES.lock().unwrap_or_else(|e| e.into_inner());
    let lakes = lakes.get_or_insert_with(HashMap::new);
    if let Some(lake) = lakes.get(location) {
        return Ok(lake.clone());
    }
    let lake = Lake::open(location, false)
        .with_context(|| format!("opening the lake '{location}' sent with the query"))?;
    lakes.insert(location.to_string(), lake.clone());
    Ok(lake)
}

/// The scheduler's session: Ballista's, over the session's lake.
pub fn scheduler_session(config: SessionConfig) -> datafusion::error::Result<SessionState> {
    let runtime = runtime(&config)?;
    let state = ballista_core::utils::default_session_builder(config)?;
    Ok(SessionStateBuilder::new_from_existing(state)
        .with_runtime_env(runtime)
        .build())
}

/// What a lake's location becomes for the cluster: a directory as an absolute path
/// (the scheduler and executors do not share the client's working directory).
pub fn lake_location(lake: &Lake) -> String {
    match &lake.local_root {
        Some(root) => std::fs::canonicalize(root)
            .unwrap_or_else(|_| root.clone())
            .display()
            .to_string(),
        None => lake.location.clone(),
    }
}

/// A client session on the cluster whose scheduler is host:port, over `lake`.
pub async fn connect(host: &str, port: u16, lake: &Lake) -> Result<SessionContext> {
    use ballista::prelude::SessionContextExt;
    let url = format!("df://{host}:{port}");
    // Ballista connects on the first query; say plainly when nothing answers
    let reach = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await;
    match reach {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => bail!(
            "no Ballista scheduler answers at {url}: {e} (start one with `ticketlake scheduler`, or use --engine local)"
        ),
        Err(_) => bail!("no Ballista scheduler answers at {url} within 10 s"),
    }
    let config = session_config()
        .with_information_schema(true)
        .set_str("ticketlake.lake", &lake_location(lake));
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .build();
    SessionContext::remote_with_state(&url, state)
        .await
        .with_context(|| format!("connecting to the Ballista scheduler at {url}"))
}

/// Whether a session's queries run on a cluster.
pub fn is_cluster(ctx: &SessionContext) -> bool {
    ctx.state()
        .config()
        .options()
        .extensions
        .get::<LakeOptions>()
        .is_some()
}

fn is_ours(name: &str) -> bool {
    matches!(
        name,
        "business_seconds"
            | "business_micros"
            | "pending_business_micros"
            | "local_date"
            | "local_day"
            | "local_month"
    )
}

fn decode_udf(name: &str, buf: &[u8]) -> datafusion::error::Result<Arc<ScalarUDF>> {
    udf::decode(name, buf).map_err(|e| DataFusionError::External(format!("{e:#}").into()))
}

fn encode_udf(node: &ScalarUDF, buf: &mut Vec<u8>) -> bool {
    match udf::definition(node) {
        Some(def) => {
            buf.extend_from_slice(def);
            true
        }
        None => false,
    }
}

/// What marks ticketlake's `quantile_cont` in a plan. DataFusion's `percentile_cont`
/// has the alias `quantile_cont`, which a name alone would find first.
const QUANTILE: &[u8] = b"ticketlake.quantile_cont";

/// What marks ticketlake's `quantiles_cont` in a plan.
const QUANTILES: &[u8] = b"ticketlake.quantiles_cont";

/// What marks ticketlake's `open_by_age` in a plan.
const OPEN_BY_AGE: &[u8] = b"ticketlake.open_by_age";

/// What marks ticketlake's `recurring_instants` in a plan.
const RECURRING_INSTANTS: &[u8] = b"ticketlake.recurring_instants";

fn encode_udaf(node: &AggregateUDF, buf: &mut Vec<u8>) -> bool {
    let inner = node.inner();
    let marker = if inner.downcast_ref::<quantile::QuantileCont>().is_some() {
        QUANTILE
    } else if inner.downcast_ref::<quantile::QuantilesCont>().is_some() {
        QUANTILES
    } else if inner.downcast_ref::<open_days::OpenByAge>().is_some() {
        OPEN_BY_AGE
    } else if inner
        .downcast_ref::<recurrence::RecurringInstants>()
        .is_some()
    {
        RECURRING_INSTANTS
    } else {
        return false;
    };
    buf.extend_from_slice(marker);
    true
}

/// Ticketlake's aggregate marked by `buf`, if it is one.
fn decode_udaf(buf: &[u8]) -> Option<AggregateUDF> {
    match buf {
        QUANTILE => Some(quantile::QuantileCont::udaf()),
        QUANTILES => Some(quantile::QuantilesCont::udaf()),
        OPEN_BY_AGE => Some(open_days::OpenByAge::udaf()),
        RECURRING_INSTANTS => Some(recurrence::RecurringInstants::udaf()),
        _ => None,
    }
}

/// The function methods both codecs share: ticketlake's functions by their definition,
/// any other by Ballista's codec (`self.inner`).
macro_rules! function_codec {
    () => {
        fn try_decode_udf(
            &self,
            name: &str,
            buf: &[u8],
        ) -> datafusion::error::Result<Arc<ScalarUDF>> {
            if is_ours(name) && !buf.is_empty() {
                decode_udf(name, buf)
            } else {
                self.inner.try_decode_udf(name, buf)
            }
        }
        fn try_encode_udf(
            &self,
            node: &ScalarUDF,
            buf: &mut Vec<u8>,
        ) -> datafusion::error::Result<()> {
            if encode_udf(node, buf) {
                Ok(())
            } else {
                self.inner.try_encode_udf(node, buf)
            }
        }
        fn try_decode_udaf(
            &self,
            name: &str,
            buf: &[u8],
        ) -> datafusion::error::Result<Arc<AggregateUDF>> {
            match decode_udaf(buf) {
                Some(f) => Ok(Arc::new(f)),
                None => self.inner.try_decode_udaf(name, buf),
            }
        }
        fn try_encode_udaf(
            &self,
            node: &AggregateUDF,
            buf: &mut Vec<u8>,
        ) -> datafusion::error::Result<()> {
            if encode_udaf(node, buf) {
                Ok(())
            } else {
                self.inner.try_encode_udaf(node, buf)
            }
        }
        fn try_decode_udwf(
            &self,
            name: &str,
            buf: &[u8],
        ) -> datafusion::error::Result<Arc<WindowUDF>> {
            self.inner.try_decode_udwf(name, buf)
        }
        fn try_encode_udwf(
            &self,
            node: &WindowUDF,
            buf: &mut Vec<u8>,
        ) -> datafusion::error::Result<()> {
            self.inner.try_encode_udwf(node, buf)
        }
    };
}

/// Ballista's logical codec, plus ticketlake's functions.
#[derive(Debug, Default)]
pub struct LogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> datafusion::error::Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }
    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> datafusion::error::Result<()> {
        self.inner.try_encode(node, buf)
    }
    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: arrow::datatypes::SchemaRef,
        ctx: &TaskContext,
    ) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        self.inner
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }
    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> datafusion::error::Result<()> {
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }
    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> datafusion::error::Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }
    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> datafusion::error::Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }
    function_codec!();
}

/// Ballista's physical codec, plus ticketlake's functions.
#[derive(Debug, Default)]
pub struct PhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        self.inner.try_decode(buf, inputs, ctx, proto_converter)
    }
    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> datafusion::error::Result<()> {
        self.inner.try_encode(node, buf, proto_converter)
    }
    fn try_decode_expr(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn PhysicalExpr>],
        ctx: &PhysicalExprDecodeCtx<'_>,
    ) -> datafusion::error::Result<Arc<dyn PhysicalExpr>> {
        self.inner.try_decode_expr(buf, inputs, ctx)
    }
    fn try_encode_expr(
        &self,
        node: &Arc<dyn PhysicalExpr>,
        buf: &mut Vec<u8>,
        ctx: &PhysicalExprEncodeCtx<'_>,
    ) -> datafusion::error::Result<()> {
        self.inner.try_encode_expr(node, buf, ctx)
    }
    function_codec!();
}

/// `ticketlake scheduler`: serves until the process is stopped.
pub async fn serve_scheduler(bind: std::net::SocketAddr, external_host: &str) -> Result<()> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    let mut config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        external_host: external_host.to_string(),
        ..SchedulerConfig::default()
    };
    config.override_config_producer = Some(Arc::new(session_config));
    config.override_session_builder = Some(Arc::new(scheduler_session));
    config.override_logical_codec = Some(Arc::new(LogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(PhysicalCodec::default()));
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    ballista_scheduler::scheduler_process::start_server(cluster, bind, Arc::new(config))
        .await
        .map_err(|e| anyhow::anyhow!("scheduler on {bind}: {e}"))
}

/// How `ticketlake executor` runs.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub scheduler_host: String,
    pub scheduler_port: u16,
    pub bind_host: String,
    pub external_host: Option<String>,
    pub flight_port: u16,
    pub grpc_port: u16,
    pub concurrency: usize,
    pub work_dir: Option<String>,
}

/// Ballista's functions plus DataFusion's array functions (`make_array`, `unnest`…),
/// which its default registry lacks and the KPIs use.
fn function_registry() -> ballista_core::registry::BallistaFunctionRegistry {
    let mut registry = ballista_core::registry::BallistaFunctionRegistry::default();
    for f in datafusion::functions_nested::all_default_nested_functions() {
        registry.scalar_functions.insert(f.name().to_string(), f);
    }
    registry
}

/// `ticketlake executor`: serves tasks until the process is stopped.
pub async fn serve_executor(opts: ExecutorOptions) -> Result<()> {
    use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
    let mut config = ExecutorProcessConfig {
        scheduler_host: opts.scheduler_host.clone(),
        scheduler_port: opts.scheduler_port,
        bind_host: opts.bind_host.clone(),
        external_host: opts.external_host.clone(),
        port: opts.flight_port,
        grpc_port: opts.grpc_port,
        vcores: opts.concurrency,
        work_dir: opts.work_dir.clone(),
        special_mod_log_level: "WARN".into(),
        print_thread_info: false,
        ..ExecutorProcessConfig::default()
    };
    config.override_config_producer = Some(Arc::new(session_config));
    config.override_runtime_producer = Some(Arc::new(runtime));
    config.override_function_registry = Some(Arc::new(function_registry()));
    config.override_logical_codec = Some(Arc::new(LogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(PhysicalCodec::default()));
    start_executor_process(Arc::new(config)).await.map_err(|e| {
        anyhow::anyhow!(
            "executor (scheduler {}:{}): {e}",
            opts.scheduler_host,
            opts.scheduler_port
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines() {
        assert_eq!(Engine::parse("local").unwrap(), Engine::Local);
        assert_eq!(
            Engine::parse("df://sched.example:6000").unwrap(),
            Engine::Cluster {
                host: "sched.example".into(),
                port: 6000
            }
        );
        assert_eq!(
            Engine::parse("df://10.0.0.2").unwrap(),
            Engine::Cluster {
                host: "10.0.0.2".into(),
                port: DEFAULT_PORT
            }
        );
        for bad in ["df://", "http://h:50050", "ballista", "df://h:1/x"] {
            let e = Engine::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("use \"local\" or \"df://host:port\""),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn functions_travel_with_their_calendars() {
        let config = crate::config::Config::default();
        let functions = udf::all(&config).unwrap();
        let codec = PhysicalCodec::default();
        for f in &functions {
            let mut buf = Vec::new();
            codec.try_encode_udf(f, &mut buf).unwrap();
            assert!(!buf.is_empty(), "{} has no definition", f.name());
            let back = codec.try_decode_udf(f.name(), &buf).unwrap();
            // equal: same kind and the same calendars / time zone
            assert_eq!(back.as_ref(), f, "{}", f.name());
        }
        // ticketlake's aggregates travel by their definition: the exact quantile is not
        // DataFusion's percentile_cont (alias quantile_cont)
        for f in [
            quantile::QuantileCont::udaf(),
            quantile::QuantilesCont::udaf(),
            open_days::OpenByAge::udaf(),
            recurrence::RecurringInstants::udaf(),
        ] {
            let mut buf = Vec::new();
            codec.try_encode_udaf(&f, &mut buf).unwrap();
            assert!(!buf.is_empty(), "{} has no definition", f.name());
            let back = codec.try_decode_udaf(f.name(), &buf).unwrap();
            assert_eq!(back.as_ref(), &f, "{}", f.name());
        }
        // a built-in function keeps Ballista's encoding (none: found by name)
        let mut buf = Vec::new();
        codec
            .try_encode_udf(&datafusion::functions::datetime::date_trunc(), &mut buf)
            .unwrap();
        assert!(buf.is_empty());
    }
}
