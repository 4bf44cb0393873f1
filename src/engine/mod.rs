//! The engine: a DataFusion session over the lake with the canonical tables, the
//! reference tables of the config, the shared views of `queries/views/` and the
//! business-time UDFs. Reads only; never writes the lake.

pub mod calendar;
pub mod cluster;
pub mod held;
pub mod localtime;
pub mod open_days;
pub mod quantile;
pub mod query;
pub mod recurrence;
pub mod udf;

use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{
    ArrayRef, Float64Array, ListArray, RecordBatch, StringArray, UInt8Array, UInt32Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::ColumnarValue;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::prelude::{SessionConfig, SessionContext};
use url::Url;

use crate::config::Config;
use crate::lake::{ENGINE_URL, Lake};
use crate::model::{PARTITION_COLUMNS, Table};
use crate::queries;

/// The value of argument `i` of an aggregate call when it is a constant (a literal, or an
/// expression of literals), else None: how ticketlake's aggregates read their parameters.
pub(crate) fn constant_argument(args: &AccumulatorArgs, i: usize) -> Option<ScalarValue> {
    let empty = RecordBatch::new_empty(Arc::new(Schema::empty()));
    match args.exprs.get(i)?.evaluate(&empty) {
        Ok(ColumnarValue::Scalar(v)) => Some(v),
        _ => None,
    }
}

/// A list type of `item`s, the lists of ticketlake's aggregates.
pub(crate) fn list_of(item: DataType, nullable: bool) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, nullable)))
}

/// A list of one row holding `values` (items nullable or not, as the aggregate's
/// [`list_of`] type says): the state or result of ticketlake's aggregates.
pub(crate) fn one_list(values: ArrayRef, nullable: bool) -> ScalarValue {
    let item = Arc::new(Field::new_list_field(values.data_type().clone(), nullable));
    let lengths = OffsetBuffer::from_lengths([values.len()]);
    ScalarValue::List(Arc::new(ListArray::new(item, lengths, values, None)))
}

/// SQL options that allow queries only: no DDL, DML, COPY or SET.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// A session of this process with `config` and ticketlake's physical optimizer rule
/// ([`held::HeldValuesInOnePhase`]).
pub fn local_context(config: SessionConfig) -> SessionContext {
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(held::HeldValuesInOnePhase))
        .build();
    SessionContext::new_with_state(state)
}

/// DataFusion's settings, with those given by `DATAFUSION_*` variables (the setting's
/// name in capitals, dots as underscores: `DATAFUSION_EXECUTION_BATCH_SIZE=4096`), for an
/// analyst tuning a query or an operator bounding a run; `target_partitions` is always
/// the number of cores. A value DataFusion cannot read is an error naming the variables.
fn datafusion_settings() -> Result<SessionConfig> {
    SessionConfig::from_env().with_context(|| {
        let mut names: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with("DATAFUSION_"))
            .collect();
        names.sort();
        format!("reading DataFusion's settings from {}", names.join(", "))
    })
}

/// A session over `lake` with every table, view and function registered; its queries
/// run in this process or on the Ballista cluster of the config's `engine`.
pub async fn session(lake: &Lake, config: &Config) -> Result<SessionContext> {
    let ctx = match cluster::Engine::of(config)? {
        cluster::Engine::Local => {
            let cfg = datafusion_settings()?
                .with_information_schema(true)
                .with_target_partitions(
                    std::thread::available_parallelism().map_or(2, |n| n.get()),
                );
            local_context(cfg)
        }
        cluster::Engine::Cluster { host, port } => cluster::connect(&host, port, lake).await?,
    };
    let url = Url::parse(ENGINE_URL).expect("valid engine URL");
    ctx.register_object_store(&url, lake.store.clone());

    for table in Table::ALL {
        let opts = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(
                PARTITION_COLUMNS
                    .iter()
                    .map(|c| (c.name.to_string(), DataType::Utf8))
                    .collect(),
            );
        let raw = format!("lake_{}", table.name());
        ctx.register_listing_table(
            &raw,
            format!("{ENGINE_URL}{}/", table.name()),
            opts,
            Some(read_schema(&table.file_schema())),
            None,
        )
        .await
        .with_context(|| format!("registering table {}", table.name()))?;
        let columns: Vec<&str> = table.full_columns().iter().map(|c| c.name).collect();
        let view = format!("select {} from {raw}", columns.join(", "));
        register_view(&ctx, table.name(), &view).await?;
    }

    for f in udf::all(config)? {
        ctx.register_udf(f);
    }
    ctx.register_udaf(quantile::QuantileCont::udaf());
    ctx.register_udaf(quantile::QuantilesCont::udaf());
    ctx.register_udaf(open_days::OpenByAge::udaf());
    ctx.register_udaf(recurrence::RecurringInstants::udaf());
    register_reference_tables(&ctx, config)?;
    for (name, sql) in queries::views()? {
        register_view(&ctx, &name, &sql)
            .await
            .with_context(|| format!("in queries/views/{name}.sql"))?;
        if crate::lake::derived::VIEWS.iter().any(|(v, _)| *v == name) {
            let derived = crate::lake::derived::status(lake, &name).await?;
            if let Some(sql) = stored_or_view(&ctx, &name, &derived, &sql).await? {
                ctx.deregister_table(name.as_str())?;
                register_view(&ctx, &name, &sql).await?;
            }
        }
    }
    Ok(ctx)
}

/// The schema the engine reads a table's objects with: its text columns as `Utf8View`
/// (a short text is held in the view itself, and comparing, grouping or sorting it seldom
/// reads the data buffer), which DataFusion decodes straight from Parquet. At 10M tickets
/// it took the 12-month KPI set from 28.4–31.6 to 24.3–26.6 CPU seconds
/// (`recurring_incidents` over 13 months from 5.7 to 4.3), with the same rows; the lake's
/// objects keep plain strings.
fn read_schema(schema: &arrow::datatypes::SchemaRef) -> arrow::datatypes::SchemaRef {
    crate::model::retyped(schema, &DataType::Utf8, &DataType::Utf8View)
}

/// The SQL of a stored view (`lake::derived`): its rows stored in the lake for the
/// sources whose stored rows match their events, the view's own for the others (None:
/// nothing is stored, the view stays as it is). The stored objects are read with the
/// view's schema.
async fn stored_or_view(
    ctx: &SessionContext,
    name: &str,
    derived: &crate::lake::derived::Derived,
    view: &str,
) -> Result<Option<String>> {
    use datafusion::datasource::listing::{ListingTable, ListingTableConfig, ListingTableUrl};
    if derived.fresh.is_empty() {
        return Ok(None);
    }
    let schema = Arc::new(ctx.table(name).await?.schema().as_arrow().clone());
    let paths = derived
        .fresh
        .iter()
        .map(|(_, object)| ListingTableUrl::parse(crate::lake::derived::table_url(object)))
        .collect::<datafusion::common::Result<Vec<_>>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(paths)
        .with_listing_options(options)
        .with_schema(schema.clone());
    let stored_table = format!("lake_{name}");
    ctx.register_table(
        stored_table.as_str(),
        Arc::new(ListingTable::try_new(config)?),
    )?;
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let columns = columns.join(", ");
    let stored = format!("select {columns} from {stored_table}");
    if derived.stale.is_empty() {
        return Ok(Some(stored));
    }
    let stale: Vec<String> = derived
        .stale
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect();
    Ok(Some(format!(
        "{stored}\nunion all\nselect {columns} from ({view}\n) v where v.source in ({})",
        stale.join(", ")
    )))
}

async fn register_view(ctx: &SessionContext, name: &str, sql: &str) -> Result<()> {
    let plan = ctx
        .state()
        .create_logical_plan(sql)
        .await
        .with_context(|| format!("planning view {name}"))?;
    let view = datafusion::catalog::view::ViewTable::new(plan, Some(sql.to_string()));
    ctx.register_table(name, Arc::new(view))?;
    Ok(())
}

/// A small table of the config, as a view over a VALUES plan (which, unlike a memory
/// table, goes into a plan sent to a cluster).
fn reference_table(ctx: &SessionContext, name: &str, batch: RecordBatch) -> Result<()> {
    use datafusion::common::{DFSchema, ScalarValue};
    use datafusion::logical_expr::{EmptyRelation, LogicalPlan, LogicalPlanBuilder, col, lit};
    let schema = Arc::new(DFSchema::try_from(batch.schema())?);
    let plan = if batch.num_rows() == 0 {
        LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema,
        })
    } else {
        let rows = (0..batch.num_rows())
            .map(|r| {
                batch
                    .columns()
                    .iter()
                    .map(|c| ScalarValue::try_from_array(c, r).map(lit))
                    .collect::<datafusion::common::Result<Vec<_>>>()
            })
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        // VALUES names its columns column1, column2…: give them the table's names
        let values = LogicalPlanBuilder::values_with_schema(rows, &schema)?.build()?;
        let names: Vec<_> = values
            .schema()
            .columns()
            .into_iter()
            .zip(schema.fields())
            .map(|(c, f)| col(c).alias(f.name()))
            .collect();
        LogicalPlanBuilder::from(values).project(names)?.build()?
    };
    let view = datafusion::catalog::view::ViewTable::new(plan, None);
    ctx.register_table(name, Arc::new(view))?;
    Ok(())
}

/// `services`, `orgs` and `sla_targets` from the config.
fn register_reference_tables(ctx: &SessionContext, config: &Config) -> Result<()> {
    let utf8 = |n: &str| Field::new(n, DataType::Utf8, false);
    let s = &config.services;
    reference_table(
        ctx,
        "services",
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                utf8("service"),
                utf8("service_scope"),
                utf8("owner_team"),
            ])),
            vec![
                Arc::new(StringArray::from_iter_values(s.iter().map(|x| &x.name))),
                Arc::new(StringArray::from_iter_values(s.iter().map(|x| &x.scope))),
                Arc::new(StringArray::from_iter_values(
                    s.iter().map(|x| &x.owner_team),
                )),
            ],
        )?,
    )?;
    let o = &config.orgs;
    reference_table(
        ctx,
        "orgs",
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                utf8("org"),
                utf8("name"),
                utf8("calendar"),
                Field::new("headcount", DataType::UInt32, true),
            ])),
            vec![
                Arc::new(StringArray::from_iter_values(o.iter().map(|x| &x.id))),
                Arc::new(StringArray::from_iter_values(o.iter().map(|x| &x.name))),
                Arc::new(StringArray::from_iter_values(o.iter().map(|x| &x.calendar))),
                Arc::new(UInt32Array::from_iter(o.iter().map(|x| x.headcount))),
            ],
        )?,
    )?;
    let t = &config.sla;
    let f64col = |n: &str| Field::new(n, DataType::Float64, false);
    reference_table(
        ctx,
        "sla_targets",
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("priority", DataType::UInt8, false),
                f64col("tto_min"),
                f64col("ttr_h"),
                f64col("tto_s"),
                f64col("ttr_s"),
            ])),
            vec![
                Arc::new(UInt8Array::from_iter_values(t.iter().map(|x| x.priority))),
                Arc::new(Float64Array::from_iter_values(t.iter().map(|x| x.tto_min))),
                Arc::new(Float64Array::from_iter_values(t.iter().map(|x| x.ttr_h))),
                Arc::new(Float64Array::from_iter_values(
                    t.iter().map(|x| x.tto_min * 60.0),
                )),
                Arc::new(Float64Array::from_iter_values(
                    t.iter().map(|x| x.ttr_h * 3600.0),
                )),
            ],
        )?,
    )?;
    Ok(())
}
