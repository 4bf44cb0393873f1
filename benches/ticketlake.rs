//! Criterion benchmarks of the hot paths (one binary: each bench binary links DataFusion).
//!
//! - `calendar`: business time and local days alone, per call (the precomputed day tables
//!   behind `business_micros` and `local_day`);
//! - `udf`: the same through DataFusion, `business_micros`, `pending_business_micros` and
//!   `local_month` over a million rows in memory (the org as string views, as the lake
//!   gives it);
//! - `generator`: one month of `ticketlake fixtures` (100,000 tickets and their events,
//!   as Arrow batches, nothing written);
//! - `kpi`: the whole KPI set end to end (planning, reading the Parquet lake, all
//!   queries) over 12 months and over one month. The lake is `TICKETLAKE_BENCH_LAKE` if
//!   set (e.g. one written by `ticketlake fixtures --tickets 1000000 --start 2025-01
//!   --months 12`), else a lake of `TICKETLAKE_BENCH_TICKETS` tickets (default 1,000,000)
//!   generated once into a temporary directory.
//!
//! - `pull`: the iTop and GLPI connectors decoding and normalising a whole source served
//!   by the loopback fixture servers (CPU time of the decoding thread; the servers share
//!   the process and are not counted).
//!
//! Run: `cargo bench --bench ticketlake` (or `-- calendar`, `-- kpi`, `-- pull`, …).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, ListArray, RecordBatch, StringViewArray, TimestampMicrosecondArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::datasource::MemTable;

use ticketlake::config::Config;
use ticketlake::engine::calendar::BusinessCalendar;
use ticketlake::engine::localtime::{LocalDays, Month};
use ticketlake::kpi::{self, Period};
use ticketlake::lake::Lake;
use ticketlake::sources::fixtures::{FixtureOptions, Generator};

/// 2024-01-01T00:00:00Z in µs.
const START: i64 = 1_704_067_200_000_000;
const DAY: i64 = 86_400_000_000;

/// `n` pseudo-random intervals of up to 60 days starting in 2024–2026.
fn intervals(n: usize) -> Vec<(i64, i64)> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let a = START + (next() % (3 * 365 * DAY) as u64) as i64;
            (a, a + (next() % (60 * DAY) as u64) as i64)
        })
        .collect()
}

fn calendar(c: &mut Criterion) {
    let config = Config::default();
    let cal = BusinessCalendar::new(&config.calendars["france"].spec().expect("valid calendar"));
    let days = LocalDays::new(config.tz().expect("valid time zone"));
    let pairs = intervals(10_000);
    let mut g = c.benchmark_group("calendar");
    g.throughput(Throughput::Elements(pairs.len() as u64));
    g.bench_function("business_micros", |b| {
        b.iter(|| {
            pairs.iter().fold(0i64, |s, &(from, to)| {
                s.wrapping_add(cal.business_micros(black_box(from), black_box(to)))
            })
        })
    });
    g.bench_function("local_day", |b| {
        b.iter(|| {
            pairs
                .iter()
                .fold(0i32, |s, &(t, _)| s.wrapping_add(days.day_of(black_box(t))))
        })
    });
    g.finish();
}

fn ts(values: Vec<i64>) -> TimestampMicrosecondArray {
    TimestampMicrosecondArray::from(values).with_timezone("UTC")
}

/// A million rows: an org, an interval, and a list of one or two pending periods.
fn udf_table() -> MemTable {
    let n = 1_000_000;
    let pairs = intervals(n);
    let orgs = ["LYON", "RENNES", "STRASBOURG", "GROUP"];
    // as views, as text is read from the lake
    let org = StringViewArray::from_iter_values((0..n).map(|i| orgs[i % orgs.len()]));
    let (mut starts, mut ends, mut offsets) = (Vec::new(), Vec::new(), vec![0i32]);
    for &(from, to) in &pairs {
        let third = (to - from) / 3;
        starts.push(from + third);
        ends.push(from + 2 * third);
        if third % 2 == 0 {
            starts.push(from + 2 * third + DAY);
            ends.push(to + DAY);
        }
        offsets.push(starts.len() as i32);
    }
    let item = Arc::new(Field::new(
        "item",
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    ));
    let list = |values: Vec<i64>| -> ArrayRef {
        Arc::new(ListArray::new(
            item.clone(),
            OffsetBuffer::new(offsets.clone().into()),
            Arc::new(ts(values)),
            None,
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(org),
        Arc::new(ts(pairs.iter().map(|p| p.0).collect())),
        Arc::new(ts(pairs.iter().map(|p| p.1).collect())),
        list(starts),
        list(ends),
    ];
    let tsf = |name: &str| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        )
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("org", DataType::Utf8View, false),
        tsf("a"),
        tsf("b"),
        Field::new("starts", DataType::List(item.clone()), true),
        Field::new("ends", DataType::List(item.clone()), true),
    ]));
    let batch = RecordBatch::try_new(schema.clone(), columns).expect("consistent columns");
    // in batches of 8192 rows, as a scan gives them
    let batches = (0..n)
        .step_by(8192)
        .map(|o| batch.slice(o, 8192.min(n - o)))
        .collect();
    MemTable::try_new(schema, vec![batches]).expect("a table")
}

fn udf(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let config = Config::default();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let lake = Lake::open(dir.path().to_str().expect("UTF-8 path"), true).expect("a lake");
    let ctx = rt
        .block_on(ticketlake::engine::session(&lake, &config))
        .expect("a session");
    ctx.register_table("t", Arc::new(udf_table()))
        .expect("registered");
    let mut g = c.benchmark_group("udf");
    g.throughput(Throughput::Elements(1_000_000));
    g.sample_size(20);
    for (name, sql) in [
        (
            "business_micros",
            "select sum(business_micros(org, a, b)) from t",
        ),
        (
            "pending_business_micros",
            "select sum(pending_business_micros(org, starts, ends, a, b)) from t",
        ),
        (
            "local_month",
            "select count(distinct local_month(a)) from t",
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async { ctx.sql(sql).await?.collect().await })
                    .expect("the query runs")
            })
        });
    }
    g.finish();
}

fn generator(c: &mut Criterion) {
    let config = Config::default();
    let opts = FixtureOptions {
        tickets: 100_000,
        months: 1,
        start: Month {
            year: 2025,
            month: 3,
        },
        ..FixtureOptions::default()
    };
    let secret = b"bench".to_vec();
    let mut g = c.benchmark_group("generator");
    g.throughput(Throughput::Elements(opts.tickets));
    g.sample_size(10);
    g.bench_function("month_of_100k_tickets", |b| {
        b.iter_batched(
            || Generator::new(&config, opts, &secret).expect("a generator"),
            |mut generator| generator.month(0),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn kpis(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let config = Config::default();
    let days = LocalDays::new(config.tz().expect("valid time zone"));
    let generated = tempfile::tempdir().expect("a temporary directory");
    let lake = match std::env::var("TICKETLAKE_BENCH_LAKE") {
        Ok(path) => Lake::open(&path, false).expect("TICKETLAKE_BENCH_LAKE is a lake"),
        Err(_) => {
            let tickets = std::env::var("TICKETLAKE_BENCH_TICKETS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1_000_000);
            let lake =
                Lake::open(generated.path().to_str().expect("UTF-8 path"), true).expect("a lake");
            let opts = FixtureOptions {
                tickets,
                start: Month {
                    year: 2025,
                    month: 1,
                },
                months: 12,
                ..FixtureOptions::default()
            };
            rt.block_on(ticketlake::sources::fixtures::write_lake(
                &lake,
                &config,
                opts,
                |_, _| {},
            ))
            .expect("the lake is written");
            lake
        }
    };
    let month = |s: &str| Month::parse(s).expect("a month");
    let mut g = c.benchmark_group("kpi");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(60));
    for (name, period) in [
        (
            "all_kpis_12_months",
            Period::new(month("2025-01"), month("2025-12")).expect("a period"),
        ),
        (
            "all_kpis_one_month",
            Period::new(month("2025-06"), month("2025-06")).expect("a period"),
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let ctx = ticketlake::engine::session(&lake, &config).await?;
                    kpi::run(&ctx, &lake, &days, &[], period).await
                })
                .expect("the KPIs run")
            })
        });
    }
    g.finish();
}

/// One iTop and one GLPI source of a generated group (40,000 tickets over two years),
/// served by the loopback fixture servers. Each iteration pulls the whole source through
/// its connector and normalises it; the time counted is the CPU time of decoding and
/// normalising (as `pull` logs it), not the servers' nor the wait for their answers.
fn pull(c: &mut Criterion) {
    use ticketlake::sources::fixtures::loopback;
    use ticketlake::sources::fixtures::server::{Accounts, Faults};
    use ticketlake::sources::normalize::{Normalizer, thread_cpu_ns};
    use ticketlake::sources::{glpi, itop};

    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let config = Config::default();
    let opts = FixtureOptions {
        tickets: 40_000,
        ..FixtureOptions::default()
    };
    let accounts = Accounts {
        user: "bench".into(),
        password: "bench".into(),
        token: None,
        app_token: None,
    };
    let servers = rt
        .block_on(loopback::start(
            &config,
            opts,
            b"bench",
            accounts,
            Faults::default(),
        ))
        .expect("the fixture servers start");
    let pseudo = ticketlake::pseudonym::Pseudonymizer::new(b"bench");
    let mut g = c.benchmark_group("pull");
    g.sample_size(10);
    for id in ["itop-group", "glpi-lyon"] {
        let source = servers
            .sources
            .iter()
            .find(|s| s.id == id)
            .expect("a fixture source");
        // one pull, untimed, for the number of tickets
        let pull_once = || {
            let (pulled, defaults, history) = rt
                .block_on(async {
                    match id.starts_with("itop") {
                        true => anyhow::Ok((
                            itop::Itop::new(source, &pseudo)?
                                .pull(None, &|_, _| {})
                                .await?,
                            itop::DEFAULTS,
                            Some(itop::HISTORY_DATE_FORMAT),
                        )),
                        false => anyhow::Ok((
                            glpi::Glpi::new(source, &pseudo)?
                                .pull(None, &|_, _| {})
                                .await?,
                            glpi::DEFAULTS,
                            None,
                        )),
                    }
                })
                .expect("the pull");
            let mut normalizer =
                Normalizer::new(source, &config, defaults, &pseudo).expect("a normaliser");
            if let Some(f) = history {
                normalizer = normalizer.with_history_format(f);
            }
            let decode = pulled.decode_time;
            let started = thread_cpu_ns();
            let normalized = normalizer.normalize(pulled, true);
            let normalize = Duration::from_nanos(thread_cpu_ns() - started);
            (normalized.tickets.num_rows(), decode + normalize)
        };
        let (tickets, _) = pull_once();
        g.throughput(Throughput::Elements(tickets as u64));
        g.bench_function(format!("decode_and_normalise_{id}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| pull_once().1).sum())
        });
    }
    g.finish();
}

criterion_group!(benches, calendar, udf, generator, kpis, pull);
criterion_main!(benches);
