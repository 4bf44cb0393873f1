//! Scalar UDFs of the engine: business time and local days. Vectorised over Arrow
//! arrays; no per-row allocation except the `YYYY-MM` strings of `local_month`.
//!
//! | function | returns |
//! |---|---|
//! | `business_seconds(org, from, to)` | seconds inside `org`'s opening hours between two instants (0 when to ≤ from; null when an argument is null) |
//! | `business_micros(org, from, to)` | the same in whole microseconds (Int64): sums of it are exact, so KPI output does not depend on the order of parallel aggregation |
//! | `pending_business_micros(org, starts, ends, from, to)` | the business µs of a list of intervals (`starts[i]` to `ends[i]`, a null end meaning "still running") clipped to `[from, to)`: the pending time of a ticket from the lists of `ticket_history` (0 for a null or empty list; null when `org`, `from` or `to` is null) |
//! | `local_date(ts)` | the local date (reporting time zone) of an instant |
//! | `local_day(ts)` | the same as a day number (days since 1970-01-01), for arithmetic |
//! | `local_month(ts)` | the local month `YYYY-MM` of an instant |
//!
//! Each function keeps its [`Definition`] (the reporting time zone, the calendars and
//! which org uses which), as JSON bytes: the plan codec of a Ballista cluster sends them
//! with the plan, so executors compute with the calendars of the client's config.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use anyhow::Context;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int32Array, Int64Builder, StringBuilder,
};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::calendar::BusinessCalendar;
use super::localtime::LocalDays;
use crate::config::{CalendarConfig, Config, OrgConfig};

/// What the functions of one config depend on; they are rebuilt from it on a cluster.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Definition {
    pub timezone: String,
    pub default_calendar: String,
    pub calendars: std::collections::BTreeMap<String, CalendarConfig>,
    pub orgs: Vec<OrgConfig>,
}

impl Definition {
    pub fn of(config: &Config) -> Definition {
        Definition {
            timezone: config.timezone.clone(),
            default_calendar: config.default_calendar.clone(),
            calendars: config.calendars.clone(),
            orgs: config.orgs.clone(),
        }
    }
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn coerce_ts(t: &DataType) -> Result<DataType> {
    match t {
        DataType::Timestamp(_, _) | DataType::Null | DataType::Date32 | DataType::Date64 => {
            Ok(ts_type())
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(ts_type()),
        other => plan_err!("expected a timestamp, got {other}"),
    }
}

/// Calendars by org, shared by the UDF instances of one session.
#[derive(Debug)]
pub struct Calendars {
    /// A fingerprint of the config the calendars come from (for UDF equality).
    id: u64,
    by_org: HashMap<String, usize>,
    default: usize,
    calendars: Vec<BusinessCalendar>,
}

impl Calendars {
    pub fn from_config(config: &Config) -> anyhow::Result<Calendars> {
        Calendars::new(&Definition::of(config))
    }

    pub fn new(def: &Definition) -> anyhow::Result<Calendars> {
        let mut index = HashMap::new();
        let mut calendars = Vec::new();
        for (name, cal) in &def.calendars {
            index.insert(name.clone(), calendars.len());
            calendars.push(BusinessCalendar::new(&cal.spec()?));
        }
        let calendar = |name: &str| {
            index
                .get(name)
                .copied()
                .with_context(|| format!("no calendar '{name}'"))
        };
        let by_org = def
            .orgs
            .iter()
            .map(|o| Ok((o.id.clone(), calendar(&o.calendar)?)))
            .collect::<anyhow::Result<_>>()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!("{:?}", (&def.calendars, &def.orgs)).hash(&mut h);
        Ok(Calendars {
            id: h.finish(),
            by_org,
            default: calendar(&def.default_calendar)?,
            calendars,
        })
    }

    /// The calendar of an org (the default calendar for an unknown org).
    pub fn of(&self, org: &str) -> &BusinessCalendar {
        &self.calendars[*self.by_org.get(org).unwrap_or(&self.default)]
    }

    /// The config's `default_calendar`.
    pub fn default_calendar(&self) -> &BusinessCalendar {
        &self.calendars[self.default]
    }
}

/// The `org` argument of a calendar function, read where it is: text read from the lake
/// comes as string views, a literal or a computed column as plain strings. Coercing the
/// views to strings copied every org of every batch (2 % of `service_level`).
enum Orgs<'a> {
    Plain(&'a arrow::array::StringArray),
    Large(&'a arrow::array::LargeStringArray),
    Views(&'a arrow::array::StringViewArray),
}

impl<'a> Orgs<'a> {
    fn of(array: &'a ArrayRef) -> Result<Orgs<'a>> {
        Ok(match array.data_type() {
            DataType::Utf8 => Orgs::Plain(array.as_string::<i32>()),
            DataType::LargeUtf8 => Orgs::Large(array.as_string::<i64>()),
            DataType::Utf8View => Orgs::Views(array.as_string_view()),
            other => return exec_err!("expected the org as text, got {other}"),
        })
    }

    fn len(&self) -> usize {
        match self {
            Orgs::Plain(a) => a.len(),
            Orgs::Large(a) => a.len(),
            Orgs::Views(a) => a.len(),
        }
    }

    fn is_null(&self, i: usize) -> bool {
        match self {
            Orgs::Plain(a) => a.is_null(i),
            Orgs::Large(a) => a.is_null(i),
            Orgs::Views(a) => a.is_null(i),
        }
    }

    fn value(&self, i: usize) -> &'a str {
        match self {
            Orgs::Plain(a) => a.value(i),
            Orgs::Large(a) => a.value(i),
            Orgs::Views(a) => a.value(i),
        }
    }
}

/// The type an `org` argument is taken as: text as it comes, anything else as a string.
fn coerce_org(t: &DataType) -> DataType {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => t.clone(),
        _ => DataType::Utf8,
    }
}

/// The calendar of each row's org, remembering the last lookup (consecutive rows usually
/// share an org).
struct ByOrg<'a> {
    calendars: &'a Calendars,
    last: Option<(&'a str, &'a BusinessCalendar)>,
}

impl<'a> ByOrg<'a> {
    fn new(calendars: &'a Calendars) -> ByOrg<'a> {
        ByOrg {
            calendars,
            last: None,
        }
    }

    fn get(&mut self, org: &'a str) -> &'a BusinessCalendar {
        match self.last {
            Some((o, c)) if o == org => c,
            _ => {
                let c = self.calendars.of(org);
                self.last = Some((org, c));
                c
            }
        }
    }
}

/// `business_seconds(org, from, to)` (Float64) or `business_micros(org, from, to)` (Int64).
#[derive(Debug)]
pub struct BusinessTime {
    signature: Signature,
    calendars: Arc<Calendars>,
    micros: bool,
    definition: Arc<[u8]>,
}

impl PartialEq for BusinessTime {
    fn eq(&self, other: &Self) -> bool {
        self.calendars.id == other.calendars.id && self.micros == other.micros
    }
}
impl Eq for BusinessTime {}
impl Hash for BusinessTime {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.calendars.id.hash(state);
        self.micros.hash(state);
    }
}

impl BusinessTime {
    fn new(calendars: Arc<Calendars>, micros: bool, definition: Arc<[u8]>) -> Self {
        BusinessTime {
            signature: Signature::user_defined(Volatility::Immutable),
            calendars,
            micros,
            definition,
        }
    }
}

impl ScalarUDFImpl for BusinessTime {
    fn name(&self) -> &str {
        if self.micros {
            "business_micros"
        } else {
            "business_seconds"
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if args.len() != 3 {
            return plan_err!("business_seconds(org, from, to) takes 3 arguments");
        }
        Ok(vec![
            coerce_org(&args[0]),
            coerce_ts(&args[1])?,
            coerce_ts(&args[2])?,
        ])
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(if self.micros {
            DataType::Int64
        } else {
            DataType::Float64
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let orgs = Orgs::of(&arrays[0])?;
        let from = arrays[1].as_primitive::<TimestampMicrosecondType>();
        let to = arrays[2].as_primitive::<TimestampMicrosecondType>();
        let mut out = Int64Builder::with_capacity(orgs.len());
        let mut by_org = ByOrg::new(&self.calendars);
        for i in 0..orgs.len() {
            if orgs.is_null(i) || from.is_null(i) || to.is_null(i) {
                out.append_null();
                continue;
            }
            let cal = by_org.get(orgs.value(i));
            out.append_value(cal.business_micros(from.value(i), to.value(i)));
        }
        let micros = out.finish();
        let result: ArrayRef = if self.micros {
            Arc::new(micros)
        } else {
            Arc::new(arrow::compute::kernels::arity::unary::<
                _,
                _,
                arrow::datatypes::Float64Type,
            >(&micros, |us| us as f64 / 1e6))
        };
        single_or_array(result, &args)
    }
}

/// `pending_business_micros(org, starts, ends, from, to)`: the sum, over the intervals of
/// the two lists, of `business_micros(org, greatest(starts[i], from), least(coalesce(ends[i],
/// to), to))`. The KPIs call it on the pending lists of `ticket_history`, so a ticket's
/// pending time is computed on its row, without unnesting its periods and grouping them
/// back by ticket.
#[derive(Debug)]
pub struct PendingTime {
    signature: Signature,
    calendars: Arc<Calendars>,
    definition: Arc<[u8]>,
}

impl PartialEq for PendingTime {
    fn eq(&self, other: &Self) -> bool {
        self.calendars.id == other.calendars.id
    }
}
impl Eq for PendingTime {}
impl Hash for PendingTime {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.calendars.id.hash(state);
    }
}

fn coerce_ts_list(t: &DataType) -> Result<DataType> {
    match t {
        DataType::Null => Ok(DataType::new_list(ts_type(), true)),
        DataType::List(item) | DataType::LargeList(item) => {
            coerce_ts(item.data_type())?;
            Ok(DataType::new_list(ts_type(), true))
        }
        other => plan_err!("expected a list of timestamps, got {other}"),
    }
}

impl ScalarUDFImpl for PendingTime {
    fn name(&self) -> &str {
        "pending_business_micros"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if args.len() != 5 {
            return plan_err!(
                "pending_business_micros(org, starts, ends, from, to) takes 5 arguments"
            );
        }
        Ok(vec![
            coerce_org(&args[0]),
            coerce_ts_list(&args[1])?,
            coerce_ts_list(&args[2])?,
            coerce_ts(&args[3])?,
            coerce_ts(&args[4])?,
        ])
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let orgs = Orgs::of(&arrays[0])?;
        let (Some(starts), Some(ends)) = (
            arrays[1].as_list_opt::<i32>(),
            arrays[2].as_list_opt::<i32>(),
        ) else {
            return exec_err!("pending_business_micros: expected lists of timestamps");
        };
        let (Some(start_at), Some(end_at)) = (
            starts
                .values()
                .as_primitive_opt::<TimestampMicrosecondType>(),
            ends.values().as_primitive_opt::<TimestampMicrosecondType>(),
        ) else {
            return exec_err!("pending_business_micros: expected lists of timestamps");
        };
        let from = arrays[3].as_primitive::<TimestampMicrosecondType>();
        let to = arrays[4].as_primitive::<TimestampMicrosecondType>();
        let (start_offsets, end_offsets) = (starts.value_offsets(), ends.value_offsets());
        let mut out = Int64Builder::with_capacity(orgs.len());
        let mut by_org = ByOrg::new(&self.calendars);
        for i in 0..orgs.len() {
            if orgs.is_null(i) || from.is_null(i) || to.is_null(i) {
                out.append_null();
                continue;
            }
            if starts.is_null(i) || ends.is_null(i) {
                out.append_value(0);
                continue;
            }
            let (s0, s1) = (start_offsets[i] as usize, start_offsets[i + 1] as usize);
            let e0 = end_offsets[i] as usize;
            if end_offsets[i + 1] as usize - e0 != s1 - s0 {
                return exec_err!(
                    "pending_business_micros: row {i} has {} starts and {} ends",
                    s1 - s0,
                    end_offsets[i + 1] as usize - e0
                );
            }
            let cal = by_org.get(orgs.value(i));
            let (from, to) = (from.value(i), to.value(i));
            let mut sum = 0;
            for (k, j) in (s0..s1).enumerate() {
                // a null start (not written by ticketlake) counts nothing, as in SQL
                if start_at.is_null(j) {
                    continue;
                }
                let end = if end_at.is_null(e0 + k) {
                    to
                } else {
                    end_at.value(e0 + k).min(to)
                };
                sum += cal.business_micros(start_at.value(j).max(from), end);
            }
            out.append_value(sum);
        }
        single_or_array(Arc::new(out.finish()), &args)
    }
}

/// Returns a scalar when every argument was a scalar.
fn single_or_array(result: ArrayRef, args: &ScalarFunctionArgs) -> Result<ColumnarValue> {
    if args
        .args
        .iter()
        .all(|a| matches!(a, ColumnarValue::Scalar(_)))
    {
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::try_from_array(&result, 0)?,
        ))
    } else {
        Ok(ColumnarValue::Array(result))
    }
}

/// What a local-time UDF returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LocalKind {
    Date,
    Day,
    Month,
}

/// `local_date(ts)`, `local_day(ts)`, `local_month(ts)` in the reporting time zone.
#[derive(Debug)]
pub struct LocalTime {
    signature: Signature,
    kind: LocalKind,
    days: Arc<LocalDays>,
    definition: Arc<[u8]>,
}

impl PartialEq for LocalTime {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.days.timezone() == other.days.timezone()
    }
}
impl Eq for LocalTime {}
impl Hash for LocalTime {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.days.timezone().name().hash(state);
    }
}

impl ScalarUDFImpl for LocalTime {
    fn name(&self) -> &str {
        match self.kind {
            LocalKind::Date => "local_date",
            LocalKind::Day => "local_day",
            LocalKind::Month => "local_month",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if args.len() != 1 {
            return plan_err!("{}(ts) takes 1 argument", self.name());
        }
        Ok(vec![coerce_ts(&args[0])?])
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            LocalKind::Date => DataType::Date32,
            LocalKind::Day => DataType::Int32,
            LocalKind::Month => DataType::Utf8,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(ts) = arrays[0].as_primitive_opt::<TimestampMicrosecondType>() else {
            return exec_err!("{}: expected a timestamp", self.name());
        };
        let result: ArrayRef = match self.kind {
            LocalKind::Date => Arc::new(Date32Array::from_iter(
                ts.iter().map(|t| t.map(|t| self.days.day_of(t))),
            )),
            LocalKind::Day => Arc::new(Int32Array::from_iter(
                ts.iter().map(|t| t.map(|t| self.days.day_of(t))),
            )),
            LocalKind::Month => {
                let mut b = StringBuilder::with_capacity(ts.len(), ts.len() * 7);
                // rows of one batch mostly share a few months: format each once
                let mut last: Option<((i32, u32), String)> = None;
                for t in ts.iter() {
                    let Some(t) = t else {
                        b.append_null();
                        continue;
                    };
                    let ym = self.days.year_month_of(t);
                    match &last {
                        Some((k, text)) if *k == ym => b.append_value(text),
                        _ => {
                            let text = format!("{:04}-{:02}", ym.0, ym.1);
                            b.append_value(&text);
                            last = Some((ym, text));
                        }
                    }
                }
                Arc::new(b.finish())
            }
        };
        single_or_array(result, &args)
    }
}

/// Every UDF of the engine, for one config.
pub fn all(config: &Config) -> anyhow::Result<Vec<ScalarUDF>> {
    let def = Definition::of(config);
    let bytes = serde_json::to_vec(&def)?;
    build(&def, bytes.into())
}

fn build(def: &Definition, definition: Arc<[u8]>) -> anyhow::Result<Vec<ScalarUDF>> {
    let calendars = Arc::new(Calendars::new(def)?);
    let tz: chrono_tz::Tz = def
        .timezone
        .parse()
        .map_err(|_| anyhow::anyhow!("unknown time zone '{}'", def.timezone))?;
    let days = Arc::new(LocalDays::new(tz));
    let local = |kind| {
        ScalarUDF::from(LocalTime {
            signature: Signature::user_defined(Volatility::Immutable),
            kind,
            days: days.clone(),
            definition: definition.clone(),
        })
    };
    Ok(vec![
        ScalarUDF::from(BusinessTime::new(
            calendars.clone(),
            false,
            definition.clone(),
        )),
        ScalarUDF::from(BusinessTime::new(
            calendars.clone(),
            true,
            definition.clone(),
        )),
        ScalarUDF::from(PendingTime {
            signature: Signature::user_defined(Volatility::Immutable),
            calendars,
            definition: definition.clone(),
        }),
        local(LocalKind::Date),
        local(LocalKind::Day),
        local(LocalKind::Month),
    ])
}

/// The definition bytes of one of the engine's functions (None for any other function).
pub fn definition(f: &ScalarUDF) -> Option<&[u8]> {
    let inner = f.inner();
    if let Some(b) = inner.downcast_ref::<BusinessTime>() {
        Some(&b.definition)
    } else if let Some(p) = inner.downcast_ref::<PendingTime>() {
        Some(&p.definition)
    } else {
        inner.downcast_ref::<LocalTime>().map(|l| &l.definition[..])
    }
}

/// The function `name` rebuilt from its definition bytes; the functions of the last few
/// definitions are kept, since every task of a query carries the same bytes.
pub fn decode(name: &str, bytes: &[u8]) -> anyhow::Result<Arc<ScalarUDF>> {
    /// Definition bytes and the functions built from them.
    type Built = (Arc<[u8]>, Vec<Arc<ScalarUDF>>);
    static CACHE: Mutex<Vec<Built>> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let found = cache.iter().position(|(b, _)| &b[..] == bytes);
    let index = match found {
        Some(i) => i,
        None => {
            let def: Definition = serde_json::from_slice(bytes)
                .context("the definition of ticketlake's functions sent with the plan")?;
            let bytes: Arc<[u8]> = bytes.into();
            let functions = build(&def, bytes.clone())?
                .into_iter()
                .map(Arc::new)
                .collect();
            if cache.len() >= 8 {
                cache.remove(0);
            }
            cache.push((bytes, functions));
            cache.len() - 1
        }
    };
    cache[index]
        .1
        .iter()
        .find(|f| f.name() == name)
        .cloned()
        .with_context(|| format!("ticketlake has no function {name}"))
}
