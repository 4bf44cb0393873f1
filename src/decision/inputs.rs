//! Decision stage: the measured inputs, from the rows of `queries/decision/` (already
//! computed; nothing here runs a query), each falling back to its config value when the
//! lake cannot give it; and the whole comparison as the JSON contract of `decide`.

use serde::Serialize;
use serde_json::Value;

use super::{
    Assumptions, Crossover, Measured, Outcome, School, Sensitivity, SetupMonths, crossovers,
    evaluate_all, sensitivity,
};
use crate::config::DecisionConfig;

/// The org of the group's own staff: reported beside the comparison, left out of it.
pub const GROUP_ORG: &str = "GROUP";

/// A measured value and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Provenance {
    pub value: f64,
    /// `data` (measured in the lake) or `config` (the fallback of `[decision.fallback]`).
    pub source: &'static str,
}

fn pick(measured: Option<f64>, fallback: f64) -> Provenance {
    match measured.filter(|v| v.is_finite()) {
        Some(value) => Provenance {
            value,
            source: "data",
        },
        None => Provenance {
            value: fallback,
            source: "config",
        },
    }
}

/// The `measured` object of the contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeasuredInputs {
    pub r: Provenance,
    pub aht_g: Provenance,
    pub aht_s: Provenance,
    pub hop_bh: Provenance,
    pub m: Provenance,
    /// Monthly means per school (every org but the group's own).
    pub per_school: Vec<School>,
    /// The group's own staff as requesters, beside the comparison.
    pub group_org: Option<School>,
}

impl MeasuredInputs {
    /// The model's inputs.
    pub fn model(&self) -> Measured {
        Measured {
            schools: self.per_school.clone(),
            r: self.r.value,
            aht_g: self.aht_g.value,
            aht_s: self.aht_s.value,
            hop_bh: self.hop_bh.value,
            m: self.m.value,
        }
    }
}

fn first<'v>(rows: &'v Value, name: &str) -> Option<&'v Value> {
    rows.get(name)?.as_array()?.first()
}

fn num(row: Option<&Value>, key: &str) -> Option<f64> {
    row?.get(key)?.as_f64()
}

/// Reads the decision inputs' rows (`kpi::decision_inputs`) over `months` months; `orgs`
/// are the config's organisations, so that a school without tickets still counts.
pub fn measured(
    rows: &Value,
    months: u32,
    orgs: &[String],
    fallback: &crate::config::DecisionFallback,
) -> MeasuredInputs {
    let months = f64::from(months.max(1));
    let volumes: Vec<&Value> = rows
        .get("volumes")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut ids: Vec<String> = orgs.to_vec();
    for v in &volumes {
        if let Some(org) = v.get("org").and_then(Value::as_str)
            && !ids.iter().any(|o| o == org)
        {
            ids.push(org.to_string());
        }
    }
    let school_of = |org: &str| {
        let row = volumes
            .iter()
            .find(|v| v.get("org").and_then(Value::as_str) == Some(org));
        School {
            org: org.to_string(),
            g: num(row.copied(), "group_tickets").unwrap_or(0.0) / months,
            s: num(row.copied(), "school_tickets").unwrap_or(0.0) / months,
        }
    };
    let aht = first(rows, "aht");
    MeasuredInputs {
        r: pick(num(first(rows, "r"), "r"), fallback.r),
        aht_g: pick(num(aht, "aht_g"), fallback.aht_g),
        aht_s: pick(num(aht, "aht_s"), fallback.aht_s),
        hop_bh: pick(num(first(rows, "hop_bh"), "hop_bh"), fallback.hop_bh),
        m: pick(num(first(rows, "m"), "m"), fallback.m),
        per_school: ids
            .iter()
            .filter(|o| *o != GROUP_ORG)
            .map(|o| school_of(o))
            .collect(),
        group_org: ids
            .iter()
            .any(|o| o == GROUP_ORG)
            .then(|| school_of(GROUP_ORG)),
    }
}

/// The assumptions actually used: the config's, with the business hours a month.
pub fn assumptions(config: &DecisionConfig, business_hours_per_month: f64) -> Assumptions {
    Assumptions {
        triage_min: config.triage_min,
        onsite_share: config.onsite_share,
        onsite_presence: config.onsite_presence,
        central_aht_factor: config.central_aht_factor,
        setup_fte_months: SetupMonths {
            direct: config.setup_fte_months.direct,
            n_plus_1: config.setup_fte_months.n_plus_1,
            central: config.setup_fte_months.central,
        },
        horizon_months: config.horizon_months,
        fte_hours_per_month: config.fte_hours_per_month,
        occupancy: config.occupancy,
        tto_target_min: config.tto_target_min,
        service_level: config.service_level,
        business_hours_per_month: config
            .business_hours_per_month
            .unwrap_or(business_hours_per_month),
    }
}

/// The window of months measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub from: String,
    pub to: String,
    pub months: u32,
}

/// The whole comparison: the JSON contract of `decide --format json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub window: Window,
    pub measured: MeasuredInputs,
    pub assumptions: Assumptions,
    pub options: Vec<Outcome>,
    pub crossovers: Vec<Crossover>,
    pub sensitivity: Vec<Sensitivity>,
}

/// Compares the options: figures, crossovers for k in [0.25, 4], sensitivity.
pub fn decide(window: Window, measured: MeasuredInputs, assumptions: Assumptions) -> Decision {
    let model = measured.model();
    Decision {
        options: evaluate_all(&model, &assumptions),
        crossovers: crossovers(&model, &assumptions, 0.25, 4.0),
        sensitivity: sensitivity(&model, &assumptions),
        window,
        measured,
        assumptions,
    }
}
