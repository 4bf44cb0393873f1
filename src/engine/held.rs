//! One aggregation phase, not two, for the aggregates that hold their input values.
//!
//! DataFusion aggregates in two phases on several cores: each input partition
//! aggregates its rows (`Partial`), the partial states are sent by group to the
//! partitions (`RepartitionExec`), and each partition merges them (`FinalPartitioned`).
//! For a sum that is little: a row per group. For an aggregate whose state is a list of
//! its values (ticketlake's exact `quantile_cont` and `quantiles_cont`, DataFusion's
//! `median`, `array_agg`…), every value is copied from the partial accumulators into the
//! state's list, then into each partition's share of it, then into the final
//! accumulators, and two or three copies are alive at once. For the 12-month
//! `resolution_time` over 10M tickets (two columns of 4.9M values) that was 200 MB.
//!
//! [`HeldValuesInOnePhase`] sends the input rows to the partitions by group instead, and
//! aggregates them there once (`SinglePartitioned`): the values are held once, in the
//! accumulators, and the rows go through the repartition a batch at a time. The result is
//! the same: each group is aggregated from all its rows, in one partition.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::InputOrderMode;
use datafusion::physical_plan::Partitioning;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::repartition::RepartitionExec;

/// The physical optimizer rule: `FinalPartitioned` ← hash `RepartitionExec` ← `Partial`
/// ← input becomes `SinglePartitioned` ← hash `RepartitionExec` of the group keys ←
/// input, when one of the aggregates holds its values (its state has a list).
#[derive(Debug, Default)]
pub struct HeldValuesInOnePhase;

impl PhysicalOptimizerRule for HeldValuesInOnePhase {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|plan| {
            Ok(match one_phase(&plan)? {
                Some(single) => Transformed::yes(single),
                None => Transformed::no(plan),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "HeldValuesInOnePhase"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The one-phase form of `plan`, when it is a two-phase aggregation of held values.
fn one_phase(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(last) = plan.downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    if *last.mode() != AggregateMode::FinalPartitioned {
        return Ok(None);
    }
    let Some(repartition) = last.input().downcast_ref::<RepartitionExec>() else {
        return Ok(None);
    };
    let Partitioning::Hash(_, partitions) = repartition.partitioning() else {
        return Ok(None);
    };
    if repartition.preserve_order() {
        return Ok(None);
    }
    let Some(first) = repartition.input().downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    let groups = first.group_expr();
    if *first.mode() != AggregateMode::Partial || !groups.is_single() || groups.is_empty() {
        return Ok(None);
    }
    // an aggregate over ordered rows (`array_agg(x order by y)`, or groups streamed in
    // the input's order) needs that order, which a repartition of the input rows loses
    let ordered = first.aggr_expr().iter().any(|a| !a.order_bys().is_empty());
    if ordered || *first.input_order_mode() != InputOrderMode::Linear || !holds_values(first)? {
        return Ok(None);
    }
    let keys = groups.expr().iter().map(|(e, _)| Arc::clone(e)).collect();
    let rows = RepartitionExec::try_new(
        Arc::clone(first.input()),
        Partitioning::Hash(keys, *partitions),
    )?;
    let single = AggregateExec::try_new(
        AggregateMode::SinglePartitioned,
        groups.clone(),
        first.aggr_expr().to_vec(),
        first.filter_expr().to_vec(),
        Arc::new(rows),
        first.input_schema(),
    )?
    .with_limit_options(last.limit_options());
    Ok(Some(Arc::new(single)))
}

/// Whether one of the aggregates keeps a list in its state (its values, as a rule).
fn holds_values(aggregate: &AggregateExec) -> Result<bool> {
    for expr in aggregate.aggr_expr() {
        for field in expr.state_fields()? {
            if matches!(
                field.data_type(),
                DataType::List(_) | DataType::LargeList(_) | DataType::ListView(_)
            ) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, AsArray, Float64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Float64Type, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::SessionConfig;

    use crate::engine::{local_context, quantile};

    /// The aggregation modes of a query's physical plan, from the top.
    async fn modes(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Vec<String> {
        let plan = ctx.sql(sql).await.unwrap();
        let plan = plan.create_physical_plan().await.unwrap();
        let text = displayable(plan.as_ref()).indent(false).to_string();
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("AggregateExec: mode="))
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect()
    }

    #[tokio::test]
    async fn held_values_are_aggregated_in_one_phase_with_the_same_result() {
        let ctx = local_context(SessionConfig::new().with_target_partitions(2));
        ctx.register_udaf(quantile::QuantilesCont::udaf());
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, false),
            Field::new("x", DataType::Float64, false),
        ]));
        let batch = |g: Vec<&str>, x: Vec<f64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(g)),
                    Arc::new(Float64Array::from(x)),
                ],
            )
            .unwrap()
        };
        // each group's values split between the two partitions
        let one = batch(vec!["a", "b", "a"], vec![1.0, 10.0, 3.0]);
        let two = batch(vec!["a", "b", "a"], vec![4.0, 20.0, 2.0]);
        let table = MemTable::try_new(schema.clone(), vec![vec![one], vec![two]]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();

        let held =
            "select g, quantiles_cont(x, 0.5, 0.9) as q, sum(x) as s from t group by g order by g";
        assert_eq!(modes(&ctx, held).await, ["SinglePartitioned"]);
        // a sum alone keeps its two phases, and so do values gathered in an order
        let summed = "select g, sum(x) from t group by g";
        assert_eq!(modes(&ctx, summed).await, ["FinalPartitioned", "Partial"]);
        let ordered = "select g, array_agg(x order by x desc) as a from t group by g order by g";
        assert_ne!(modes(&ctx, ordered).await, ["SinglePartitioned"]);
        let rows = ctx.sql(ordered).await.unwrap().collect().await.unwrap();
        let rows = arrow::compute::concat_batches(&rows[0].schema(), &rows).unwrap();
        let a = rows.column(1).as_list::<i32>();
        let a = |r: usize| a.value(r).as_primitive::<Float64Type>().values().to_vec();
        assert_eq!((a(0), a(1)), (vec![4.0, 3.0, 2.0, 1.0], vec![20.0, 10.0]));

        let rows = ctx.sql(held).await.unwrap().collect().await.unwrap();
        let rows = arrow::compute::concat_batches(&rows[0].schema(), &rows).unwrap();
        let q = rows.column(1).as_list::<i32>();
        let q = |r: usize| -> Vec<f64> {
            let v = q.value(r);
            v.as_primitive::<Float64Type>().values().to_vec()
        };
        // a: 1 2 3 4, p = 1.5 → 2.5, p = 2.7 → 3 + 0.7 = 3.7; b: 10 20 → 15, 10 + 0.9 × 10
        assert_eq!(rows.num_rows(), 2);
        assert_eq!(q(0)[0], 2.5);
        assert!((q(0)[1] - 3.7).abs() < 1e-12);
        assert_eq!(q(1), [15.0, 19.0]);
        let s = rows.column(2).as_primitive::<Float64Type>();
        assert_eq!((s.value(0), s.value(1), s.null_count()), (10.0, 30.0, 0));
    }
}
