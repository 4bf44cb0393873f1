//! Decision stage: the three organisations of the group help desk compared from measured
//! volumes, as pure functions (no I/O, no SQL). The formulas are those of DESIGN.md
//! ("Decision model (formulas)"):
//!
//! - `W(minutes)`, workload FTE = minutes ÷ 60 ÷ (fte_hours_per_month × occupancy).
//! - `Q(n)`, queue FTE of a desk that users reach directly, for the time-to-own target:
//!   owning a ticket takes `triage_min` (the service time t); λ = n ÷
//!   business_hours_per_month per hour; A = λ·t (Erlangs); N = the smallest integer > A
//!   with 1 − C(N, A)·e^(−(N−A)·tto_target/t) ≥ service_level, where C is Erlang C;
//!   FTE = N × business_hours_per_month ÷ fte_hours_per_month; Q(0) = 0.
//! - A user-facing desk costs max(W, Q); a back-office level or on-site work costs W.
//! - With f = central_aht_factor and o = onsite_share (G = Σ G_i, S = Σ S_i):
//!   - direct: group max(W(G·aht_g + m·G·triage), Q(G)); school i
//!     max(W(S_i·aht_s + m·S_i·triage), Q(S_i)); no added delay.
//!   - n_plus_1: group W((1−r)·G·aht_g) (back office); school i
//!     max(W(S_i·aht_s + r·G_i·aht_g + (1−r)·G_i·triage), Q(S_i + G_i)); forwarded
//!     tickets wait `hop_bh` more.
//!   - central: group max(W(G·aht_g + S·(1−o)·f·aht_s + S·o·triage), Q(G + S·(1−o)));
//!     school i max(onsite_presence × business_hours ÷ fte_hours, W(S_i·o·aht_s)).
//!   - setup FTE = setup_fte_months[option] ÷ horizon_months; total = group + Σ schools
//!     + setup.
//!
//! Erlang C is computed from the Erlang B recurrence B(0) = 1, B(k) = A·B(k−1) ÷
//! (k + A·B(k−1)), then C = N·B ÷ (N − A·(1 − B)): no factorial, no power of A, stable
//! for hundreds of agents.
//!
//! The share of tickets owned within the target (`tto_service_level`) is, for each
//! user-facing desk, 1 − C·e^(−(N−A)·target/t) with N the people present (the queue
//! staffing, or more when the workload needs more), weighted by the desk's tickets.

use serde::Serialize;

pub mod inputs;

/// The assumptions of the model (config `[decision]`, DESIGN.md's defaults).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assumptions {
    pub triage_min: f64,
    pub onsite_share: f64,
    pub onsite_presence: f64,
    pub central_aht_factor: f64,
    pub setup_fte_months: SetupMonths,
    pub horizon_months: f64,
    pub fte_hours_per_month: f64,
    pub occupancy: f64,
    pub tto_target_min: f64,
    pub service_level: f64,
    pub business_hours_per_month: f64,
}

/// One-off set-up effort of each option, in FTE·months.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetupMonths {
    pub direct: f64,
    pub n_plus_1: f64,
    pub central: f64,
}

impl Default for Assumptions {
    fn default() -> Self {
        Assumptions {
            triage_min: 10.0,
            onsite_share: 0.3,
            onsite_presence: 1.0,
            central_aht_factor: 1.25,
            setup_fte_months: SetupMonths {
                direct: 6.0,
                n_plus_1: 3.0,
                central: 36.0,
            },
            horizon_months: 36.0,
            fte_hours_per_month: 1607.0 * 0.8 / 12.0,
            occupancy: 0.8,
            tto_target_min: 60.0,
            service_level: 0.8,
            // 21 working days × 10 opening hours; replaced by the calendar's own figure
            business_hours_per_month: 210.0,
        }
    }
}

/// Monthly means for one school (the requester's organisation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct School {
    pub org: String,
    /// Tickets on group services, whatever desk took them.
    #[serde(rename = "G")]
    pub g: f64,
    /// Tickets on school services.
    #[serde(rename = "S")]
    pub s: f64,
}

/// The measured inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub schools: Vec<School>,
    /// Kept ÷ (kept + forwarded), for group-service tickets at school desks.
    pub r: f64,
    /// Mean effort minutes of group-service and school-service tickets.
    pub aht_g: f64,
    pub aht_s: f64,
    /// Median business hours from a school ticket to the group ticket forwarded from it.
    pub hop_bh: f64,
    /// Share of tickets transferred between desks.
    pub m: f64,
}

impl Measured {
    pub fn g(&self) -> f64 {
        self.schools.iter().map(|s| s.g).sum()
    }

    pub fn s(&self) -> f64 {
        self.schools.iter().map(|s| s.s).sum()
    }

    /// Every school's volumes multiplied by `k`.
    pub fn scaled(&self, k: f64) -> Measured {
        Measured {
            schools: self
                .schools
                .iter()
                .map(|s| School {
                    org: s.org.clone(),
                    g: s.g * k,
                    s: s.s * k,
                })
                .collect(),
            ..self.clone()
        }
    }
}

/// The three organisations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    Direct,
    #[serde(rename = "n_plus_1")]
    NPlus1,
    Central,
}

impl Choice {
    pub const ALL: [Choice; 3] = [Choice::Direct, Choice::NPlus1, Choice::Central];

    pub fn name(self) -> &'static str {
        match self {
            Choice::Direct => "direct",
            Choice::NPlus1 => "n_plus_1",
            Choice::Central => "central",
        }
    }
}

/// Erlang B for `n` servers and `a` Erlangs, by the recurrence.
pub fn erlang_b(n: u32, a: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=n {
        b = a * b / (f64::from(k) + a * b);
    }
    b
}

/// Erlang C: the probability that a ticket waits, for `n` > `a`; 1 when `n` ≤ `a`.
pub fn erlang_c(n: u32, a: f64) -> f64 {
    if f64::from(n) <= a {
        return 1.0;
    }
    let b = erlang_b(n, a);
    f64::from(n) * b / (f64::from(n) - a * (1.0 - b))
}

/// Share of tickets owned within `target` with `n` people, `a` Erlangs, service time `t`
/// (same unit as `target`).
pub fn service_level(n: u32, a: f64, t: f64, target: f64) -> f64 {
    if a <= 0.0 {
        return 1.0;
    }
    if f64::from(n) <= a {
        return 0.0;
    }
    1.0 - erlang_c(n, a) * (-(f64::from(n) - a) * target / t).exp()
}

/// Service levels are stated in whole percent: a level that rounds to the target meets
/// it (79.56 % meets 80 %, the textbook reading of Erlang C tables).
const LEVEL_PRECISION: f64 = 0.005;

/// The smallest staffing above `a` whose service level reaches `level` at whole-percent
/// precision (0 for no traffic).
pub fn staffing(a: f64, t: f64, target: f64, level: f64) -> u32 {
    if a <= 0.0 {
        return 0;
    }
    let mut n = a.floor() as u32 + 1;
    while service_level(n, a, t, target) < level - LEVEL_PRECISION {
        n += 1;
    }
    n
}

impl Assumptions {
    /// `W`: workload FTE of `minutes` of work a month.
    pub fn workload(&self, minutes: f64) -> f64 {
        minutes / 60.0 / (self.fte_hours_per_month * self.occupancy)
    }

    /// Erlangs of `tickets` a month at one triage each.
    fn erlangs(&self, tickets: f64) -> f64 {
        tickets / self.business_hours_per_month * (self.triage_min / 60.0)
    }

    /// `Q`: queue FTE of a user-facing desk receiving `tickets` a month, and its people.
    pub fn queue(&self, tickets: f64) -> (f64, u32) {
        let n = staffing(
            self.erlangs(tickets),
            self.triage_min,
            self.tto_target_min,
            self.service_level,
        );
        (self.people_to_fte(n), n)
    }

    fn people_to_fte(&self, n: u32) -> f64 {
        f64::from(n) * self.business_hours_per_month / self.fte_hours_per_month
    }

    /// Share owned within the target at a user-facing desk of `fte` receiving `tickets`.
    fn owned_in_time(&self, tickets: f64, fte: f64) -> f64 {
        let (_, n_queue) = self.queue(tickets);
        let present =
            (fte * self.fte_hours_per_month / self.business_hours_per_month + 1e-9).floor() as u32;
        service_level(
            n_queue.max(present),
            self.erlangs(tickets),
            self.triage_min,
            self.tto_target_min,
        )
    }
}

/// One option's figures (the JSON contract of `decide`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub option: Choice,
    pub group_tickets_per_month: f64,
    pub fte_group_workload: f64,
    pub fte_group_queue: f64,
    pub fte_group: f64,
    pub fte_schools: f64,
    pub fte_setup: f64,
    pub fte_total: f64,
    pub tto_service_level: f64,
    pub added_delay_bh: f64,
}

/// A user-facing desk: its FTE and (tickets, share in time) for the service level.
fn user_facing(a: &Assumptions, workload_min: f64, tickets: f64) -> (f64, f64, f64, f64) {
    let w = a.workload(workload_min);
    let (q, _) = a.queue(tickets);
    let fte = w.max(q);
    (w, q, fte, a.owned_in_time(tickets, fte))
}

/// The figures of one option.
pub fn evaluate(choice: Choice, m: &Measured, a: &Assumptions) -> Outcome {
    let (g, s) = (m.g(), m.s());
    let (o, f, t) = (a.onsite_share, a.central_aht_factor, a.triage_min);
    // (tickets, share owned in time) of every user-facing desk
    let mut facing: Vec<(f64, f64)> = Vec::new();
    let (group_tickets, w_g, q_g, fte_g, fte_schools, delay);
    match choice {
        Choice::Direct => {
            let (w, q, fte, sl) = user_facing(a, g * m.aht_g + m.m * g * t, g);
            facing.push((g, sl));
            let mut schools = 0.0;
            for sc in &m.schools {
                let (_, _, fte, sl) = user_facing(a, sc.s * m.aht_s + m.m * sc.s * t, sc.s);
                facing.push((sc.s, sl));
                schools += fte;
            }
            (group_tickets, w_g, q_g, fte_g, fte_schools, delay) = (g, w, q, fte, schools, 0.0);
        }
        Choice::NPlus1 => {
            let w = a.workload((1.0 - m.r) * g * m.aht_g);
            let mut schools = 0.0;
            for sc in &m.schools {
                let minutes = sc.s * m.aht_s + m.r * sc.g * m.aht_g + (1.0 - m.r) * sc.g * t;
                let (_, _, fte, sl) = user_facing(a, minutes, sc.s + sc.g);
                facing.push((sc.s + sc.g, sl));
                schools += fte;
            }
            (group_tickets, w_g, q_g, fte_g, fte_schools, delay) =
                ((1.0 - m.r) * g, w, 0.0, w, schools, m.hop_bh);
        }
        Choice::Central => {
            let pooled = g + s * (1.0 - o);
            let minutes = g * m.aht_g + s * (1.0 - o) * f * m.aht_s + s * o * t;
            let (w, q, fte, sl) = user_facing(a, minutes, pooled);
            facing.push((pooled, sl));
            let presence = a.onsite_presence * a.business_hours_per_month / a.fte_hours_per_month;
            let schools = m
                .schools
                .iter()
                .map(|sc| presence.max(a.workload(sc.s * o * m.aht_s)))
                .sum();
            (group_tickets, w_g, q_g, fte_g, fte_schools, delay) =
                (pooled + s * o, w, q, fte, schools, 0.0);
        }
    }
    let setup = match choice {
        Choice::Direct => a.setup_fte_months.direct,
        Choice::NPlus1 => a.setup_fte_months.n_plus_1,
        Choice::Central => a.setup_fte_months.central,
    } / a.horizon_months;
    let tickets: f64 = facing.iter().map(|(n, _)| n).sum();
    let tto = if tickets > 0.0 {
        facing.iter().map(|(n, sl)| n * sl).sum::<f64>() / tickets
    } else {
        1.0
    };
    Outcome {
        option: choice,
        group_tickets_per_month: group_tickets,
        fte_group_workload: w_g,
        fte_group_queue: q_g,
        fte_group: fte_g,
        fte_schools,
        fte_setup: setup,
        fte_total: fte_g + fte_schools + setup,
        tto_service_level: tto,
        added_delay_bh: delay,
    }
}

/// The three options.
pub fn evaluate_all(m: &Measured, a: &Assumptions) -> Vec<Outcome> {
    Choice::ALL.iter().map(|c| evaluate(*c, m, a)).collect()
}

/// The options from cheapest to dearest (by total FTE; ties in `Choice::ALL` order).
pub fn ranking(m: &Measured, a: &Assumptions) -> Vec<Choice> {
    let mut all = evaluate_all(m, a);
    all.sort_by(|x, y| x.fte_total.total_cmp(&y.fte_total));
    all.into_iter().map(|o| o.option).collect()
}

/// A volume multiplier at which the ranking of the options changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Crossover {
    /// Multiplier of every G_i and S_i (to 1e-4).
    pub k: f64,
    /// The group-service monthly volume G·k it means.
    pub group_volume: f64,
    pub ranking_below: Vec<Choice>,
    pub ranking_above: Vec<Choice>,
}

/// Where the ranking changes for k in [from, to]: a scan in steps of 0.01, each change
/// then narrowed by bisection to 1e-4.
pub fn crossovers(m: &Measured, a: &Assumptions, from: f64, to: f64) -> Vec<Crossover> {
    let rank = |k: f64| ranking(&m.scaled(k), a);
    let steps = ((to - from) / 0.01).round() as usize;
    let mut out = Vec::new();
    let mut lo = from;
    let mut lo_rank = rank(lo);
    for i in 1..=steps {
        let hi = from + (to - from) * i as f64 / steps as f64;
        let hi_rank = rank(hi);
        if hi_rank != lo_rank {
            let (mut a_k, mut b_k) = (lo, hi);
            while b_k - a_k > 1e-4 {
                let mid = (a_k + b_k) / 2.0;
                if rank(mid) == lo_rank {
                    a_k = mid;
                } else {
                    b_k = mid;
                }
            }
            out.push(Crossover {
                k: b_k,
                group_volume: m.g() * b_k,
                ranking_below: lo_rank.clone(),
                ranking_above: rank(b_k),
            });
        }
        lo = hi;
        lo_rank = hi_rank;
    }
    out
}

/// Total FTE of (direct, n_plus_1, central) with every volume multiplied by each k of
/// `from`, `from + step`, … up to `to`: the curves of the report's decision chart.
pub fn totals_over(
    m: &Measured,
    a: &Assumptions,
    from: f64,
    to: f64,
    step: f64,
) -> Vec<(f64, [f64; 3])> {
    let n = ((to - from) / step).round() as usize;
    (0..=n)
        .map(|i| {
            let k = from + step * i as f64;
            let all = evaluate_all(&m.scaled(k), a);
            (k, [all[0].fte_total, all[1].fte_total, all[2].fte_total])
        })
        .collect()
}

/// The multipliers of the sensitivity table.
pub const SENSITIVITY_K: [f64; 7] = [0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0];

/// One row of the sensitivity table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensitivity {
    pub k: f64,
    pub group_volume: f64,
    pub fte_direct: f64,
    pub fte_n_plus_1: f64,
    pub fte_central: f64,
    pub cheapest: Choice,
}

/// Total FTE of each option with every volume multiplied by each k.
pub fn sensitivity(m: &Measured, a: &Assumptions) -> Vec<Sensitivity> {
    SENSITIVITY_K
        .iter()
        .map(|k| {
            let scaled = m.scaled(*k);
            let all = evaluate_all(&scaled, a);
            Sensitivity {
                k: *k,
                group_volume: scaled.g(),
                fte_direct: all[0].fte_total,
                fte_n_plus_1: all[1].fte_total,
                fte_central: all[2].fte_total,
                cheapest: ranking(&scaled, a)[0],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, eps: f64, what: &str) {
        assert!((a - b).abs() <= eps, "{what}: {a} against {b}");
    }

    #[test]
    fn erlang_c_known_values() {
        close(erlang_c(11, 10.0), 0.6821, 5e-5, "C(11, 10)");
        // AHT 180 s, answer within 20 s, A = 10: 12 agents give 64.0 %, 13 give 79.56 %,
        // which is 80 % at whole-percent precision: 13 is the smallest staffing
        close(service_level(12, 10.0, 180.0, 20.0), 0.6402, 5e-5, "SL(12)");
        close(service_level(13, 10.0, 180.0, 20.0), 0.7956, 5e-5, "SL(13)");
        assert_eq!(staffing(10.0, 180.0, 20.0, 0.8), 13);
        assert_eq!(staffing(10.0, 180.0, 20.0, 0.85), 14);
        // a hundred Erlangs: no overflow, no NaN
        for n in 101..=130 {
            let c = erlang_c(n, 100.0);
            assert!(
                c.is_finite() && (0.0..=1.0).contains(&c),
                "C({n}, 100) = {c}"
            );
        }
        assert!(erlang_c(130, 100.0) < erlang_c(101, 100.0));
        assert_eq!(erlang_c(10, 10.0), 1.0);
    }

    fn worked_example(k: f64) -> Measured {
        Measured {
            schools: (1..=7)
                .map(|i| School {
                    org: format!("S{i}"),
                    g: 120.0 * k,
                    s: 500.0 * k,
                })
                .collect(),
            r: 0.6,
            aht_g: 30.0,
            aht_s: 25.0,
            hop_bh: 4.0,
            m: 0.05,
        }
    }

    #[test]
    fn the_worked_example_of_design_md() {
        close(
            Assumptions::default().fte_hours_per_month,
            107.1333,
            1e-4,
            "FTE hours",
        );
        // the example states its 107.13 FTE hours (and 210 business hours) a month
        let a = Assumptions {
            fte_hours_per_month: 107.13,
            ..Assumptions::default()
        };
        let t = |k: f64, c: Choice| evaluate(c, &worked_example(k), &a).fte_total;
        close(t(1.0, Choice::Direct), 22.51, 0.005, "direct");
        close(t(1.0, Choice::NPlus1), 22.65, 0.005, "n_plus_1");
        close(t(1.0, Choice::Central), 36.55, 0.005, "central");
        close(t(0.5, Choice::NPlus1), 14.79, 0.005, "n_plus_1, half");
        close(t(0.5, Choice::Direct), 16.38, 0.005, "direct, half");
        close(t(0.5, Choice::Central), 25.64, 0.005, "central, half");
        // by hand, direct at k = 1: group W(840·30 + 0.05·840·10) = 427 h ÷ 85.7067 h
        let d = evaluate(Choice::Direct, &worked_example(1.0), &a);
        close(
            d.fte_group_workload,
            427.0 / (a.fte_hours_per_month * 0.8),
            1e-9,
            "W",
        );
        close(
            d.fte_group_queue,
            210.0 / a.fte_hours_per_month,
            1e-9,
            "Q: one person",
        );
        assert_eq!(d.added_delay_bh, 0.0);
        assert_eq!(
            evaluate(Choice::NPlus1, &worked_example(1.0), &a).added_delay_bh,
            4.0
        );
    }

    #[test]
    fn the_ranking_turns_between_half_and_full_volume() {
        let a = Assumptions {
            fte_hours_per_month: 107.13,
            ..Assumptions::default()
        };
        let m = worked_example(1.0);
        assert_eq!(ranking(&m.scaled(0.5), &a)[0], Choice::NPlus1);
        assert_eq!(ranking(&m, &a)[0], Choice::Direct);
        let x = crossovers(&m, &a, 0.25, 4.0);
        let turn = x
            .iter()
            .find(|c| c.ranking_below[0] == Choice::NPlus1 && c.ranking_above[0] == Choice::Direct)
            .expect("a crossover from n_plus_1 to direct");
        assert!(turn.k > 0.5 && turn.k <= 1.0, "{turn:?}");
        close(turn.group_volume, 840.0 * turn.k, 1e-9, "G·k");
        // on each side of it, the ranking is the one reported
        assert_eq!(ranking(&m.scaled(turn.k - 2e-4), &a), turn.ranking_below);
        assert_eq!(ranking(&m.scaled(turn.k), &a), turn.ranking_above);
        let s = sensitivity(&m, &a);
        assert_eq!(s.len(), 7);
        assert_eq!(s[1].cheapest, Choice::NPlus1);
        assert_eq!(s[2].cheapest, Choice::Direct);
        close(s[2].fte_direct, 22.51, 0.005, "sensitivity k = 1");
    }
}
