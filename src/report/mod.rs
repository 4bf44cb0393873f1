//! Report stage: the monthly governance report, HTML (one self-contained file) and PDF
//! (Typst, in-process), in French or English. It reads the KPIs through the KPI registry
//! (the figures are those of `ticketlake kpi`) and the lake's state files; it never writes
//! the lake.
//!
//! Templates, the style sheet and the message catalogues live in `reports/` and are
//! compiled into the binary.

pub mod charts;
pub mod data;
pub mod filters;
pub mod pdf;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use futures::TryStreamExt;
use minijinja::{AutoEscape, Environment, Value as JValue};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use serde_json::Value;

pub use data::{Freshness, Inputs};
pub use filters::Lang;

use crate::config::Config;
use crate::engine::localtime::{LocalDays, Month};
use crate::kpi::{self, Period};
use crate::lake::Lake;

/// The templates, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html.j2", include_str!("../../reports/base.html.j2")),
    (
        "report.html.j2",
        include_str!("../../reports/report.html.j2"),
    ),
    (
        "partials/tile.html.j2",
        include_str!("../../reports/partials/tile.html.j2"),
    ),
    (
        "partials/table.html.j2",
        include_str!("../../reports/partials/table.html.j2"),
    ),
    (
        "partials/figure.html.j2",
        include_str!("../../reports/partials/figure.html.j2"),
    ),
    (
        "partials/note.html.j2",
        include_str!("../../reports/partials/note.html.j2"),
    ),
    ("report.typ.j2", include_str!("../../reports/report.typ.j2")),
];

/// The message catalogues: every word of the report.
const CATALOGUES: &[(&str, &str)] = &[
    ("fr", include_str!("../../reports/i18n/fr.toml")),
    ("en", include_str!("../../reports/i18n/en.toml")),
];

/// The words of one language, as the templates see them (`t.tile.created`…).
pub fn catalogue(lang: Lang) -> Result<Value> {
    let (_, text) = CATALOGUES
        .iter()
        .find(|(code, _)| *code == lang.code())
        .context("no catalogue")?;
    let table: toml::Table =
        toml::from_str(text).with_context(|| format!("reports/i18n/{}.toml", lang.code()))?;
    Ok(serde_json::to_value(table)?)
}

/// Escapes text for Typst markup: every ASCII punctuation character is backslash-escaped
/// (so `#`, `[`, `*`, `$`, `<`, `/`… are text, never code), line breaks become spaces.
pub fn typst_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_ascii_punctuation() => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The template environment: templates, filters, and escaping by output (HTML for
/// `*.html.j2`, Typst markup for `*.typ.j2`).
pub fn environment() -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".typ.j2") {
            AutoEscape::Custom("typst".into())
        } else if name.ends_with(".html.j2") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(|out, state, value| {
        if let AutoEscape::Custom(name) = state.auto_escape()
            && name == "typst"
        {
            if value.is_safe() {
                return out.write_str(&value.to_string()).map_err(Into::into);
            }
            if value.is_none() || value.is_undefined() {
                return Ok(());
            }
            return out
                .write_str(&typst_escape(&value.to_string()))
                .map_err(Into::into);
        }
        minijinja::escape_formatter(out, state, value)
    });
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    filters::register(&mut env);
    Ok(env)
}

/// Reads the KPIs and the sources' freshness for a report on `month`.
pub async fn gather<'a>(
    lake: &Lake,
    config: &'a Config,
    days: &LocalDays,
    month: Month,
) -> Result<Inputs<'a>> {
    let ctx = crate::engine::session(lake, config).await?;
    let trend_period = Period::new(month.plus(-data::TREND_BEFORE), month)?;
    let month_period = Period::new(month, month)?;
    let jobs = data::TREND_KPIS
        .iter()
        .map(|n| (*n, trend_period))
        .chain(data::MONTH_KPIS.iter().map(|n| (*n, month_period)));
    let results = kpi::side_by_side(&ctx, lake, days, jobs).await?;
    let (trend, current) = results.split_at(data::TREND_KPIS.len());
    let trend = kpi::to_json(trend)?;
    // the decision over the window that ends with the report's month; its volumes and r
    // are added up from the trend's rows when the trend holds the window
    let window = Period::new(month.plus(1 - config.decision.window_months as i32), month)?;
    let known = match window.from >= trend_period.from {
        true => kpi::decision::from_kpis(&trend, window),
        false => serde_json::Map::new(),
    };
    let decision = kpi::decision::compute_knowing(
        &ctx,
        config,
        days,
        Some(window.from),
        Some(window.to),
        &[],
        known,
    )
    .await?;
    let mut freshness = Vec::new();
    for source in lake.sources().await? {
        let state = lake.state(&source).await?;
        freshness.push(Freshness {
            quarantined: quarantined(lake, &source).await?,
            history_unavailable: state.as_ref().and_then(|s| s.history_unavailable.clone()),
            last_run: state.as_ref().map(|s| {
                s.last_run
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }),
            watermark: state
                .as_ref()
                .and_then(|s| s.watermark)
                .map(|w| w.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            source,
        });
    }
    Ok(Inputs {
        month,
        trend,
        current: kpi::to_json(current)?,
        freshness,
        lake: lake.location.clone(),
        config,
        decision,
    })
}

/// Records held in a source's quarantine: one JSON line each.
async fn quarantined(lake: &Lake, source: &str) -> Result<u64> {
    let prefix = ObjectPath::from(format!("_quarantine/{source}"));
    let objects: Vec<_> = lake.store.list(Some(&prefix)).try_collect().await?;
    let mut n = 0;
    for o in objects {
        let bytes = lake.store.get(&o.location).await?.bytes().await?;
        n += bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count() as u64;
    }
    Ok(n)
}

/// One report, rendered in one language.
pub struct Rendered {
    pub html: String,
    pub pdf: Option<Vec<u8>>,
}

/// Renders the HTML page (and the PDF when asked) in one language.
pub fn render(inputs: &Inputs, lang: Lang, with_pdf: bool) -> Result<Rendered> {
    let words = catalogue(lang)?;
    let (ctx, charts) = data::build(inputs, lang, &words)?;
    let env = environment()?;
    let mut jctx = JValue::from(minijinja::value::Serde(&ctx));
    let html = env
        .get_template("report.html.j2")?
        .render(minijinja::context! { charts => JValue::from(minijinja::value::Serde(&charts)), ..jctx.clone() })
        .context("rendering the HTML report")?;
    let pdf = if with_pdf {
        let chart_names: Vec<&String> = charts.keys().collect();
        jctx = minijinja::context! { charts => JValue::from(minijinja::value::Serde(&chart_names)), ..jctx };
        let document = env
            .get_template("report.typ.j2")?
            .render(jctx)
            .context("rendering the Typst document")?;
        Some(pdf::render(&document, &charts)?)
    } else {
        None
    };
    Ok(Rendered { html, pdf })
}

/// The output formats of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Html,
    Pdf,
}

/// `<out>/ticketlake-YYYY-MM.<lang>.<ext>`.
pub fn file_name(out: &Path, month: Month, lang: Lang, ext: &str) -> PathBuf {
    out.join(format!("ticketlake-{month}.{}.{ext}", lang.code()))
}

/// Renders and writes the report files; their paths. Each file is written to a temporary
/// name and renamed, so a reader never sees half a report.
pub fn write(inputs: &Inputs, lang: Lang, formats: &[Format], out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let rendered = render(inputs, lang, formats.contains(&Format::Pdf))?;
    let mut written = Vec::new();
    let mut put = |ext: &str, bytes: &[u8]| -> Result<()> {
        let path = file_name(out, inputs.month, lang, ext);
        let tmp = path.with_extension(format!("{ext}.tmp"));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    if formats.contains(&Format::Html) {
        put("html", rendered.html.as_bytes())?;
    }
    if let Some(pdf) = &rendered.pdf {
        put("pdf", pdf)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Value::Object(map) = v {
            for (k, x) in map {
                keys(x, &format!("{prefix}{k}."), out);
            }
        } else {
            out.push(prefix.trim_end_matches('.').to_string());
        }
    }

    #[test]
    fn both_catalogues_have_the_same_keys() {
        let (mut fr, mut en) = (Vec::new(), Vec::new());
        keys(&catalogue(Lang::Fr).unwrap(), "", &mut fr);
        keys(&catalogue(Lang::En).unwrap(), "", &mut en);
        fr.sort();
        en.sort();
        assert_eq!(fr, en);
        assert!(fr.len() > 100, "{} keys", fr.len());
    }

    #[test]
    fn typst_markup_is_escaped() {
        assert_eq!(
            typst_escape("#set [x] *b* $1"),
            "\\#set \\[x\\] \\*b\\* \\$1"
        );
        assert_eq!(typst_escape("a\nb"), "a b");
        assert_eq!(typst_escape("Poste de travail"), "Poste de travail");
    }
}
