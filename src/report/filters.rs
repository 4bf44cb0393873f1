//! Report stage: the template filters that format values for people, in French or
//! English (the template's `lang` variable chooses). They format, never compute. All of
//! them are registered by [`register`]; the same functions serve the charts' axes.

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind, State};

/// A report language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Fr,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> anyhow::Result<Lang> {
        match s {
            "fr" => Ok(Lang::Fr),
            "en" => Ok(Lang::En),
            other => anyhow::bail!("unknown report language '{other}' (fr or en)"),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }
}

/// French groups digits with a narrow no-break space and uses a decimal comma.
const NNBSP: char = '\u{202f}';

const MONTHS_FR: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const SHORT_FR: [&str; 12] = [
    "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.",
    "déc.",
];
const SHORT_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `1234.5` → `1 234,5` (fr) or `1,234.5` (en), with `decimals` digits after the point.
pub fn number(lang: Lang, v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let (sep, point) = match lang {
        Lang::Fr => (NNBSP, ','),
        Lang::En => (',', '.'),
    };
    let mut out = String::new();
    if v < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.push('−');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(sep);
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push(point);
        out.push_str(frac);
    }
    out
}

/// A rate (0.123) as a percentage: `12,3 %` / `12.3%`.
pub fn percent(lang: Lang, rate: f64, decimals: usize) -> String {
    let n = number(lang, rate * 100.0, decimals);
    match lang {
        Lang::Fr => format!("{n}{NNBSP}%"),
        Lang::En => format!("{n}%"),
    }
}

/// Hours as a duration: `3 h 20`, `45 min`, `126 h` (fr); `3h 20m`, `45m`, `126h` (en).
pub fn duration(lang: Lang, hours: f64) -> String {
    let minutes = (hours * 60.0).round() as i64;
    let (h, m) = (minutes / 60, minutes % 60);
    match lang {
        Lang::Fr if h == 0 => format!("{m}{NNBSP}min"),
        Lang::Fr if h >= 100 || m == 0 => format!("{}{NNBSP}h", number(lang, h as f64, 0)),
        Lang::Fr => format!("{h}{NNBSP}h{NNBSP}{m:02}"),
        Lang::En if h == 0 => format!("{m}m"),
        Lang::En if h >= 100 || m == 0 => format!("{}h", number(lang, h as f64, 0)),
        Lang::En => format!("{h}h {m:02}m"),
    }
}

/// `2026-10` → `octobre 2026` / `October 2026`; with `short`, `oct. 26` / `Oct 26`.
pub fn month(lang: Lang, ym: &str, short: bool) -> String {
    let parsed = ym
        .split_once('-')
        .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<usize>().ok()?)))
        .filter(|(_, m)| (1..=12).contains(m));
    let Some((y, m)) = parsed else {
        return ym.to_string();
    };
    match (lang, short) {
        (Lang::Fr, false) => format!("{} {y}", MONTHS_FR[m - 1]),
        (Lang::En, false) => format!("{} {y}", MONTHS_EN[m - 1]),
        (Lang::Fr, true) => format!("{} {:02}", SHORT_FR[m - 1], y % 100),
        (Lang::En, true) => format!("{} {:02}", SHORT_EN[m - 1], y % 100),
    }
}

/// A signed change: relative (`+12,3 %`) or in percentage points (`+1,2 pt`).
pub fn change(lang: Lang, value: f64, kind: &str) -> String {
    let sign = if value > 0.0 {
        "+"
    } else if value < 0.0 {
        "−"
    } else {
        "±"
    };
    let body = match kind {
        "points" => {
            let n = number(lang, (value * 100.0).abs(), 1);
            match lang {
                Lang::Fr => format!("{n}{NNBSP}pt"),
                Lang::En => format!("{n} pt"),
            }
        }
        _ => percent(lang, value.abs(), 1),
    };
    format!("{sign}{body}")
}

fn lang_of(state: &State) -> Lang {
    match state.lookup("lang").as_ref().and_then(Value::as_str) {
        Some("en") => Lang::En,
        _ => Lang::Fr,
    }
}

fn not_available(state: &State) -> String {
    state
        .lookup("t")
        .and_then(|t| t.get_attr("na").ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "n/a".into())
}

fn as_f64(v: &Value) -> Option<f64> {
    if v.is_none() || v.is_undefined() {
        return None;
    }
    f64::try_from(v.clone()).ok()
}

fn decimals(kwargs: &Kwargs, default: usize) -> Result<usize, Error> {
    let d: Option<usize> = kwargs.get("decimals")?;
    kwargs.assert_all_used()?;
    Ok(d.unwrap_or(default))
}

/// `{{ x|num }}`, `{{ x|num(decimals=1) }}`: a number (`n/a` for none).
fn num_filter(state: &State, v: Value, kwargs: Kwargs) -> Result<String, Error> {
    let d = decimals(&kwargs, 0)?;
    Ok(match as_f64(&v) {
        Some(x) => number(lang_of(state), x, d),
        None => not_available(state),
    })
}

/// `{{ rate|pct }}`: a rate as a percentage, one decimal by default.
fn pct_filter(state: &State, v: Value, kwargs: Kwargs) -> Result<String, Error> {
    let d = decimals(&kwargs, 1)?;
    Ok(match as_f64(&v) {
        Some(x) => percent(lang_of(state), x, d),
        None => not_available(state),
    })
}

/// `{{ hours|duration }}`: hours as `3 h 20`.
fn duration_filter(state: &State, v: Value) -> String {
    match as_f64(&v) {
        Some(x) => duration(lang_of(state), x),
        None => not_available(state),
    }
}

/// `{{ "2026-10"|month }}` → `octobre 2026`; `{{ m|month(short=true) }}` → `oct. 26`.
fn month_filter(state: &State, v: Value, kwargs: Kwargs) -> Result<String, Error> {
    let short: Option<bool> = kwargs.get("short")?;
    kwargs.assert_all_used()?;
    let s = v
        .as_str()
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "month: not a YYYY-MM string"))?;
    Ok(month(lang_of(state), s, short.unwrap_or(false)))
}

/// `{{ value|change("points") }}`: a signed change; `relative` (default) or `points`.
fn change_filter(state: &State, v: Value, kind: Option<String>) -> String {
    match as_f64(&v) {
        Some(x) => change(lang_of(state), x, kind.as_deref().unwrap_or("relative")),
        None => not_available(state),
    }
}

/// `{{ cell|fmt(kind) }}`: a table cell by its column's kind: `int`, `num1`, `num2`, `pct`,
/// `hours`, `score`, `month`, `text`.
fn fmt_filter(state: &State, v: Value, kind: String) -> Result<String, Error> {
    let lang = lang_of(state);
    if kind == "text" {
        return Ok(if v.is_none() || v.is_undefined() {
            "—".into()
        } else {
            v.to_string()
        });
    }
    if kind == "month" {
        return Ok(v
            .as_str()
            .map(|s| month(lang, s, false))
            .unwrap_or_default());
    }
    let Some(x) = as_f64(&v) else {
        return Ok(not_available(state));
    };
    Ok(match kind.as_str() {
        "int" => number(lang, x, 0),
        "num1" | "score" => number(lang, x, 1),
        "num2" => number(lang, x, 2),
        "pct" => percent(lang, x, 1),
        "hours" => duration(lang, x),
        other => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("fmt: unknown kind '{other}'"),
            ));
        }
    })
}

/// `{{ t.sentence|fill(n=3, who="x") }}`: a catalogue sentence with its `{name}` holes
/// filled by already formatted values.
fn fill_filter(text: String, kwargs: Kwargs) -> Result<String, Error> {
    let mut out = text;
    for key in kwargs.args() {
        let v: Value = kwargs.get(key)?;
        out = out.replace(&format!("{{{key}}}"), &v.to_string());
    }
    Ok(out)
}

/// Registers every report filter.
pub fn register(env: &mut Environment) {
    env.add_filter("num", num_filter);
    env.add_filter("pct", pct_filter);
    env.add_filter("duration", duration_filter);
    env.add_filter("month", month_filter);
    env.add_filter("change", change_filter);
    env.add_filter("fmt", fmt_filter);
    env.add_filter("fill", fill_filter);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_and_english_numbers() {
        assert_eq!(number(Lang::Fr, 1234.5, 1), "1\u{202f}234,5");
        assert_eq!(number(Lang::En, 1234.5, 1), "1,234.5");
        assert_eq!(number(Lang::Fr, 1234567.0, 0), "1\u{202f}234\u{202f}567");
        assert_eq!(number(Lang::En, 999.0, 0), "999");
        assert_eq!(number(Lang::En, -0.04, 1), "0.0");
        assert_eq!(number(Lang::En, -12.0, 0), "−12");
        assert_eq!(percent(Lang::Fr, 0.123, 1), "12,3\u{202f}%");
        assert_eq!(percent(Lang::En, 0.123, 1), "12.3%");
    }

    #[test]
    fn durations_months_and_changes() {
        assert_eq!(
            duration(Lang::Fr, 3.0 + 20.0 / 60.0),
            "3\u{202f}h\u{202f}20"
        );
        assert_eq!(duration(Lang::En, 3.0 + 20.0 / 60.0), "3h 20m");
        assert_eq!(duration(Lang::Fr, 0.75), "45\u{202f}min");
        assert_eq!(duration(Lang::Fr, 126.2), "126\u{202f}h");
        assert_eq!(duration(Lang::En, 1234.0), "1,234h");
        assert_eq!(month(Lang::Fr, "2026-10", false), "octobre 2026");
        assert_eq!(month(Lang::En, "2026-10", false), "October 2026");
        assert_eq!(month(Lang::Fr, "2026-02", true), "févr. 26");
        assert_eq!(change(Lang::Fr, 0.1234, "relative"), "+12,3\u{202f}%");
        assert_eq!(change(Lang::En, -0.012, "points"), "−1.2 pt");
        assert_eq!(change(Lang::En, 0.0, "relative"), "±0.0%");
    }
}
