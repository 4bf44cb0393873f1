//! Business time alone: calls per second of the computation behind `business_seconds`
//! (precomputed day table, two binary searches a call), over random intervals of up to
//! 60 days in 2024–2026. Run: `cargo bench --bench business_time`.

use std::hint::black_box;
use std::time::Instant;

use ticketlake::config::Config;
use ticketlake::engine::calendar::BusinessCalendar;

fn main() {
    let config = Config::default();
    let build = Instant::now();
    let cal = BusinessCalendar::new(&config.calendars["france"].spec().expect("valid calendar"));
    println!(
        "calendar table built in {:.1} ms",
        build.elapsed().as_secs_f64() * 1e3
    );

    let n = 20_000_000usize;
    let start = 1_704_067_200_000_000i64; // 2024-01-01T00:00:00Z
    let span = 3 * 365 * 86_400_000_000i64;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let pairs: Vec<(i64, i64)> = (0..n)
        .map(|_| {
            let a = start + (next() % span as u64) as i64;
            (a, a + (next() % (60 * 86_400_000_000u64)) as i64)
        })
        .collect();
    let t = Instant::now();
    let mut total = 0i64;
    for &(a, b) in &pairs {
        total = total.wrapping_add(cal.business_micros(black_box(a), black_box(b)));
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{n} calls in {secs:.3} s: {:.1} million calls/s (checksum {total})",
        n as f64 / secs / 1e6
    );
}
