//! `recurring_instants(at, within_us)`: the distinct instants of a group of incidents,
//! each with how many incidents it holds and how many of them recur. The KPIs
//! `recurring_incidents` and `recurring_pairs` group the incidents by org, service,
//! category and subcategory and read one row per instant back (`unnest`).
//!
//! - The incidents of a group at one instant are counted once: all of them recur, or
//!   none.
//! - An instant recurs when the group's previous distinct instant is at most `within_us`
//!   microseconds before it (strictly earlier, so never the instant itself).
//! - The result is a list with one struct per distinct instant, in time order:
//!   `{at: Timestamp(µs, UTC), n: Int64, recurring: Int64}`, `recurring` being `n` or 0.
//!   A null `at` is no incident.
//!
//! The same figures as `lag(at)` over the group's distinct instants, without sorting the
//! incidents by the group's four text columns: at 13 months of 10M tickets that sort,
//! the grouping by instant before it and the window after it took most of the KPI's two
//! CPU seconds, where a group's instants are a few thousand integers.

use std::mem::size_of_val;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, PrimitiveArray, StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Int64Type, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::{list_of, one_list};

/// The aggregate `recurring_instants`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RecurringInstants {
    signature: Signature,
}

impl RecurringInstants {
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::from(RecurringInstants {
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

/// `Timestamp(Microsecond, "UTC")`, the lake's instants.
fn instant() -> DataType {
    crate::model::timestamp_type()
}

fn instant_fields() -> Fields {
    Fields::from(vec![
        Field::new("at", instant(), false),
        Field::new("n", DataType::Int64, false),
        Field::new("recurring", DataType::Int64, false),
    ])
}

impl AggregateUDFImpl for RecurringInstants {
    fn name(&self) -> &str {
        "recurring_instants"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [
                DataType::Timestamp(TimeUnit::Microsecond, _) | DataType::Null,
                w,
            ] if w.is_integer() || w.is_null() => Ok(vec![instant(), DataType::Int64]),
            _ => plan_err!(
                "recurring_instants(at, within_us) takes an instant (timestamp in µs) and \
                 a number of microseconds, not {args:?}"
            ),
        }
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(list_of(DataType::Struct(instant_fields()), false))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[instants]", args.name),
            list_of(DataType::Int64, false),
            true,
        ))])
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Instants {
            within: within(&args)?,
            at: Vec::new(),
        }))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(GroupsInstants {
            within: within(&args)?,
            at: Vec::new(),
            held: 0,
        }))
    }
}

/// The `within_us` of a call: a constant, not negative.
fn within(args: &AccumulatorArgs) -> Result<i64> {
    let within = match super::constant_argument(args, 1) {
        Some(ScalarValue::Int64(Some(v))) => v,
        _ => return plan_err!("recurring_instants: within_us must be a constant number"),
    };
    if within < 0 {
        return plan_err!("recurring_instants: within_us is negative: {within}");
    }
    Ok(within)
}

/// The distinct instants of `at` (sorted here) in order, with their count and recurring
/// count, appended to `out` (at, n, recurring).
fn flag_into(at: &mut [i64], within: i64, out: &mut (Vec<i64>, Vec<i64>, Vec<i64>)) {
    at.sort_unstable();
    let start = out.0.len();
    for &t in at.iter() {
        if out.0.len() > start && out.0.last() == Some(&t) {
            *out.1.last_mut().expect("an instant has its count") += 1;
        } else {
            out.0.push(t);
            out.1.push(1);
        }
    }
    for i in start..out.0.len() {
        let recurs = i > start && out.0[i] - out.0[i - 1] <= within;
        out.2.push(if recurs { out.1[i] } else { 0 });
    }
}

/// The list column of each group's flagged instants (`return_type`), from `rows`: the
/// three columns of every group's instants one after the other, and how many each has.
fn instants_lists(rows: (Vec<i64>, Vec<i64>, Vec<i64>), lengths: Vec<usize>) -> Result<ArrayRef> {
    let (at, n, recurring) = rows;
    let rows = StructArray::try_new(
        instant_fields(),
        vec![
            Arc::new(PrimitiveArray::<TimestampMicrosecondType>::from(at).with_timezone("UTC")),
            Arc::new(Int64Array::from(n)),
            Arc::new(Int64Array::from(recurring)),
        ],
        None,
    )?;
    let field = Arc::new(Field::new_list_field(
        DataType::Struct(instant_fields()),
        false,
    ));
    let offsets = OffsetBuffer::from_lengths(lengths);
    Ok(Arc::new(ListArray::try_new(
        field,
        offsets,
        Arc::new(rows),
        None,
    )?))
}

/// A group's instants, in µs, in the order they came.
#[derive(Debug)]
struct Instants {
    within: i64,
    at: Vec<i64>,
}

impl Accumulator for Instants {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let at = values[0].as_primitive::<TimestampMicrosecondType>();
        if at.null_count() == 0 {
            self.at.extend_from_slice(at.values());
        } else {
            self.at.extend(at.iter().flatten());
        }
        Ok(())
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for list in states[0].as_list::<i32>().iter().flatten() {
            self.at
                .extend_from_slice(list.as_primitive::<Int64Type>().values());
        }
        Ok(())
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = Int64Array::from(std::mem::take(&mut self.at));
        Ok(vec![one_list(Arc::new(values), false)])
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut rows: (Vec<i64>, Vec<i64>, Vec<i64>) = Default::default();
        flag_into(&mut self.at, self.within, &mut rows);
        let len = rows.0.len();
        let lists = instants_lists(rows, vec![len])?;
        Ok(ScalarValue::List(Arc::new(lists.as_list::<i32>().clone())))
    }
    fn size(&self) -> usize {
        size_of_val(self) + self.at.capacity() * 8
    }
}

/// Every group's instants at once: the groups' lists are built straight into one column.
/// With an [`Accumulator`] a group, DataFusion made a list value of each group, then
/// concatenated them: the rows twice (at 13 months of 10M tickets, 3M instants: 46 MB of
/// values, then 66 MB for the column).
#[derive(Debug)]
struct GroupsInstants {
    within: i64,
    /// each group's instants, by group index
    at: Vec<Vec<i64>>,
    /// how many instants `at` holds
    held: usize,
}

impl GroupsAccumulator for GroupsInstants {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.at.resize_with(total_num_groups, Vec::new);
        let at = values[0].as_primitive::<TimestampMicrosecondType>();
        for (r, &g) in group_indices.iter().enumerate() {
            let kept = opt_filter.is_none_or(|f| f.is_valid(r) && f.value(r));
            if kept && at.is_valid(r) {
                self.at[g].push(at.value(r));
                self.held += 1;
            }
        }
        Ok(())
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut rows: (Vec<i64>, Vec<i64>, Vec<i64>) = Default::default();
        let mut lengths = Vec::new();
        for mut at in emit_to.take_needed(&mut self.at) {
            self.held -= at.len();
            let before = rows.0.len();
            flag_into(&mut at, self.within, &mut rows);
            lengths.push(rows.0.len() - before);
        }
        instants_lists(rows, lengths)
    }
    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = emit_to.take_needed(&mut self.at);
        self.held -= groups.iter().map(Vec::len).sum::<usize>();
        let offsets = OffsetBuffer::from_lengths(groups.iter().map(Vec::len));
        let values = Int64Array::from(groups.concat());
        let field = Arc::new(Field::new_list_field(DataType::Int64, false));
        Ok(vec![Arc::new(ListArray::try_new(
            field,
            offsets,
            Arc::new(values),
            None,
        )?)])
    }
    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.at.resize_with(total_num_groups, Vec::new);
        let lists = values[0].as_list::<i32>();
        for (r, &g) in group_indices.iter().enumerate() {
            if lists.is_valid(r) {
                let list = lists.value(r);
                let list = list.as_primitive::<Int64Type>().values();
                self.at[g].extend_from_slice(list);
                self.held += list.len();
            }
        }
        Ok(())
    }
    /// Each row as a group of its own: a list of its instant (none when null or filtered
    /// out).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let at = values[0].as_primitive::<TimestampMicrosecondType>();
        let kept = |r: usize| opt_filter.is_none_or(|f| f.is_valid(r) && f.value(r));
        let instants: Vec<i64> = (0..at.len())
            .filter(|&r| kept(r) && at.is_valid(r))
            .map(|r| at.value(r))
            .collect();
        let lengths = (0..at.len()).map(|r| usize::from(kept(r) && at.is_valid(r)));
        Ok(vec![Arc::new(ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Int64, false)),
            OffsetBuffer::from_lengths(lengths),
            Arc::new(Int64Array::from(instants)),
            None,
        )?)])
    }
    fn size(&self) -> usize {
        // called for every batch: from a count kept as the instants come and go, not
        // from every group's vector
        size_of_val(self) + self.at.capacity() * size_of::<Vec<i64>>() + self.held * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;

    fn instants(at: &[Option<i64>]) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(at.to_vec()).with_timezone("UTC"))
    }

    /// The list `evaluate` gives, as (at, n, recurring) triples.
    fn rows(acc: &mut Instants) -> Vec<(i64, i64, i64)> {
        let ScalarValue::List(list) = acc.evaluate().unwrap() else {
            panic!("a list")
        };
        groups_rows(&list).remove(0)
    }

    #[test]
    fn an_instant_recurs_when_the_previous_distinct_one_is_close_enough() {
        let mut acc = Instants {
            within: 10,
            at: Vec::new(),
        };
        // out of order, two incidents at 20, a null (no incident)
        acc.update_batch(&[instants(&[Some(20), Some(5), Some(40), Some(3)])])
            .unwrap();
        acc.update_batch(&[instants(&[Some(12), None, Some(20), Some(25), Some(50)])])
            .unwrap();
        assert_eq!(
            rows(&mut acc),
            vec![
                (3, 1, 0),  // the group's first: nothing before it
                (5, 1, 1),  // 2 after 3
                (12, 1, 1), // 7 after 5
                (20, 2, 2), // 8 after 12: both incidents at 20 recur
                (25, 1, 1), // 5 after 20 (not 0 after the other incident at 20)
                (40, 1, 0), // 15 after 25: too far
                (50, 1, 1), // exactly 10 after 40: at most `within`, so it recurs
            ]
        );
    }

    #[test]
    fn an_instant_alone_in_its_group_does_not_recur() {
        let mut acc = Instants {
            within: 10,
            at: Vec::new(),
        };
        acc.update_batch(&[instants(&[Some(7), Some(7), Some(7)])])
            .unwrap();
        assert_eq!(rows(&mut acc), vec![(7, 3, 0)]);
        let mut empty = Instants {
            within: 10,
            at: Vec::new(),
        };
        assert_eq!(rows(&mut empty), vec![]);
    }

    /// Each group's (at, n, recurring) triples of a column of lists of instants.
    fn groups_rows(lists: &ListArray) -> Vec<Vec<(i64, i64, i64)>> {
        (0..lists.len())
            .map(|g| {
                let rows = lists.value(g);
                let rows = rows.as_struct();
                let at = rows.column(0).as_primitive::<TimestampMicrosecondType>();
                let n = rows.column(1).as_primitive::<Int64Type>();
                let r = rows.column(2).as_primitive::<Int64Type>();
                (0..rows.len())
                    .map(|i| (at.value(i), n.value(i), r.value(i)))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn groups_get_their_own_instants_in_one_column() {
        let mut acc = GroupsInstants {
            within: 10,
            at: Vec::new(),
            held: 0,
        };
        // groups 0 and 2 interleaved, group 1 without an incident (a null); the row at
        // 99 of group 0 is filtered out
        let at = instants(&[Some(20), Some(5), None, Some(40), Some(99), Some(12)]);
        let filter = BooleanArray::from(vec![true, true, true, true, false, true]);
        acc.update_batch(&[at], &[0, 2, 1, 2, 0, 0], Some(&filter), 3)
            .unwrap();
        // a partial state of another batch, merged into groups 2 and 0
        let mut other = GroupsInstants {
            within: 10,
            at: Vec::new(),
            held: 0,
        };
        other
            .update_batch(&[instants(&[Some(45), Some(20)])], &[0, 1], None, 2)
            .unwrap();
        let state = other.state(EmitTo::All).unwrap();
        acc.merge_batch(&state, &[2, 0], 3).unwrap();
        assert_eq!(acc.held, 6);
        let column = acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(acc.held, 0);
        assert_eq!(
            groups_rows(column.as_list::<i32>()),
            vec![
                // 12, 20 (8 after 12), 20 again: counted once, n = 2, both recur
                vec![(12, 1, 0), (20, 2, 2)],
                vec![],
                // 5, 40 (35 after), 45 (5 after 40)
                vec![(5, 1, 0), (40, 1, 0), (45, 1, 1)],
            ]
        );
        // each row alone, as a state: a null or a filtered row holds no instant
        let alone = acc
            .convert_to_state(
                &[instants(&[Some(7), None, Some(9)])],
                Some(&BooleanArray::from(vec![true, true, false])),
            )
            .unwrap();
        let alone = alone[0].as_list::<i32>();
        let lengths: Vec<usize> = (0..3).map(|r| alone.value(r).len()).collect();
        assert_eq!(lengths, [1, 0, 0]);
    }

    #[test]
    fn partial_states_merge_into_the_groups_instants() {
        let mut a = Instants {
            within: 10,
            at: Vec::new(),
        };
        a.update_batch(&[instants(&[Some(30), Some(3)])]).unwrap();
        let mut b = Instants {
            within: 10,
            at: Vec::new(),
        };
        b.update_batch(&[instants(&[Some(25), Some(60)])]).unwrap();
        let state = b.state().unwrap();
        a.merge_batch(&[state[0].to_array().unwrap()]).unwrap();
        // 3 first, 25 is 22 after 3, 30 is 5 after 25, 60 is 30 after 30
        assert_eq!(
            rows(&mut a),
            vec![(3, 1, 0), (25, 1, 0), (30, 1, 1), (60, 1, 0)]
        );
    }
}
