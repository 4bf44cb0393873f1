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

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, PrimitiveArray, StructArray};
use arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Int64Type, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
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
        let within = match super::constant_argument(&args, 1) {
            Some(ScalarValue::Int64(Some(v))) => v,
            _ => return plan_err!("recurring_instants: within_us must be a constant number"),
        };
        if within < 0 {
            return plan_err!("recurring_instants: within_us is negative: {within}");
        }
        Ok(Box::new(Instants {
            within,
            at: Vec::new(),
        }))
    }
}

/// A group's instants, in µs, in the order they came.
#[derive(Debug)]
struct Instants {
    within: i64,
    at: Vec<i64>,
}

impl Instants {
    /// The distinct instants in order, with their count and recurring count.
    fn flagged(&mut self) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
        self.at.sort_unstable();
        let (mut at, mut n) = (Vec::<i64>::new(), Vec::<i64>::new());
        for &t in &self.at {
            if at.last() == Some(&t) {
                *n.last_mut().expect("an instant has its count") += 1;
            } else {
                at.push(t);
                n.push(1);
            }
        }
        let recurring = (0..at.len())
            .map(|i| match i {
                0 => 0,
                _ if at[i] - at[i - 1] <= self.within => n[i],
                _ => 0,
            })
            .collect();
        (at, n, recurring)
    }
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
        let (at, n, recurring) = self.flagged();
        let rows = StructArray::try_new(
            instant_fields(),
            vec![
                Arc::new(PrimitiveArray::<TimestampMicrosecondType>::from(at).with_timezone("UTC")),
                Arc::new(Int64Array::from(n)),
                Arc::new(Int64Array::from(recurring)),
            ],
            None,
        )?;
        Ok(one_list(Arc::new(rows), false))
    }
    fn size(&self) -> usize {
        size_of_val(self) + self.at.capacity() * 8
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
        let rows = list.value(0);
        let rows = rows.as_struct();
        let at = rows.column(0).as_primitive::<TimestampMicrosecondType>();
        let n = rows.column(1).as_primitive::<Int64Type>();
        let r = rows.column(2).as_primitive::<Int64Type>();
        (0..rows.len())
            .map(|i| (at.value(i), n.value(i), r.value(i)))
            .collect()
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
