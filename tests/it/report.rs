//! The monthly report: golden HTML for the hand-built lake in both languages, figures equal
//! to `kpi --format json`, escaping of hostile names, the page in a real headless Chromium,
//! and the PDF's text.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use ticketlake::config::Config;
use ticketlake::engine::localtime::{LocalDays, Month};
use ticketlake::lake::Lake;
use ticketlake::report::{self, Lang};
use ticketlake::sources::batch::TicketFields;

use super::common::*;

async fn rendered(lake: &Lake, month: &str, lang: Lang, pdf: bool) -> report::Rendered {
    let config = Config::default();
    let days = LocalDays::new(chrono_tz::Europe::Paris);
    let inputs = report::gather(lake, &config, &days, Month::parse(month).unwrap())
        .await
        .unwrap();
    report::render(&inputs, lang, pdf).unwrap()
}

/// The page without what differs between two runs: the lake's path and write times.
fn normalised(html: &str, lake_dir: &Path) -> String {
    let dir = lake_dir.to_str().unwrap();
    let mut out = html
        .replace(dir, "LAKE")
        .replace(&dir.replace('/', "&#x2f;"), "LAKE");
    // "2026-11-23 14:17:04 UTC": the time the test wrote the lake
    let mut from = 0;
    while let Some(i) = out[from..].find(" UTC</td>") {
        let end = from + i;
        let start = end - 19;
        out.replace_range(start..end, "YYYY-MM-DD HH:MM:SS");
        from = start + 19 + 9;
    }
    out
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// The value of every headline tile, as (key, data-value, shown text).
fn tiles(html: &str) -> Vec<(String, Option<f64>, String)> {
    html.split("<div class=\"tile\" data-key=\"")
        .skip(1)
        .map(|part| {
            let key = part.split('"').next().unwrap().to_string();
            let value = part
                .split("data-value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .ok();
            let shown = part
                .split("<div class=\"value\">")
                .nth(1)
                .unwrap()
                .split("</div>")
                .next()
                .unwrap()
                .replace("&#x2f;", "/");
            (key, value, shown)
        })
        .collect()
}

#[tokio::test]
async fn the_report_of_the_hand_built_lake_matches_its_golden_pages() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &super::kpi_hand::sources()).await;
    for lang in [Lang::Fr, Lang::En] {
        let html = rendered(&lake, "2026-04", lang, false).await.html;
        let page = normalised(&html, dir.path());
        let path = golden(&format!("report-2026-04.{}.html", lang.code()));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &page).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        if page != expected {
            let line = page
                .lines()
                .zip(expected.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "{} differs from the rendered page at line {} (review, then UPDATE_GOLDEN=1 cargo test):\n  got:      {}\n  expected: {}",
                path.display(),
                line + 1,
                page.lines().nth(line).unwrap_or(""),
                expected.lines().nth(line).unwrap_or("")
            );
        }
    }
}

#[tokio::test]
async fn the_headline_figures_are_those_of_the_kpis() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &super::kpi_hand::sources()).await;
    let html = rendered(&lake, "2026-04", Lang::En, false).await.html;
    let k = kpis(&lake, "2026-04", "2026-04").await;
    let sl = row(&k, "service_level", &[("month", json!("2026-04"))]);
    let created: f64 = k["volume"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| num(r, "tickets"))
        .sum();
    let backlog = row(&k, "backlog", &[("day", json!("2026-04-30"))]);
    let expected = [
        ("created", created, 12.0),
        ("resolved", num(sl, "resolved"), 10.0),
        ("backlog_end", num(backlog, "open_tickets"), 2.0),
        ("median_ttr", num(sl, "median_bh"), 5.5),
        ("sla_ttr", num(sl, "sla_ttr_rate"), 0.7),
        ("sla_tto", num(sl, "sla_tto_rate"), 8.0 / 9.0),
        (
            "reopen_rate",
            num(row(&k, "reopen_rate", &[]), "reopen_rate"),
            1.0 / 9.0,
        ),
        (
            "satisfaction",
            num(row(&k, "satisfaction", &[]), "satisfied_rate"),
            0.5,
        ),
    ];
    let shown = tiles(&html);
    assert_eq!(shown.len(), expected.len());
    for ((key, value, text), (ekey, from_kpi, by_hand)) in shown.iter().zip(expected) {
        assert_eq!(key, ekey);
        assert_eq!(value.unwrap(), from_kpi, "{key}: report against kpi");
        assert_close(from_kpi, by_hand, key);
        assert!(!text.is_empty());
    }
    // as people read them
    let text: Vec<&str> = shown.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(
        text,
        [
            "12", "10", "2", "5h 30m", "70.0%", "88.9%", "11.1%", "50.0%"
        ]
    );
    // March had 1 resolved ticket (T13) against 10 in April: +900 %
    assert!(html.contains("+900.0%"), "change against March");
    // a source without history is named, with what it means
    assert!(html.contains("s-nohistory provides no status history"));
    // one self-contained file: nothing fetched (the SVG namespace is a name, not a fetch)
    for outside in [
        "src=",
        "href=\"http",
        "@import",
        "url(",
        "<link",
        "<script",
        "@font-face",
    ] {
        assert!(
            !html.contains(outside),
            "the page refers outside itself: {outside}"
        );
    }
    // the appendix gives the command that reproduces the tiles
    assert!(html.contains("--from 2025-04 --to 2026-04 --kpi volume --kpi service_level"));
}

#[tokio::test]
async fn the_decision_section_shows_the_figures_of_decide() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &super::kpi_hand::sources()).await;
    let html = rendered(&lake, "2026-04", Lang::En, false).await.html;
    let out = Command::new(bin())
        .args(["decide", "--lake", dir.path().to_str().unwrap()])
        .args(["--from", "2025-05", "--to", "2026-04", "--format", "json"])
        .output()
        .unwrap();
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (label, key) in [
        ("Total FTE", "fte_total"),
        ("Group desk FTE", "fte_group"),
        ("School desks FTE", "fte_schools"),
        ("Tickets owned within target", "tto_service_level"),
    ] {
        let row = html
            .split(&format!("<tr><td>{label}</td>"))
            .nth(1)
            .unwrap_or_else(|| panic!("no row {label}"))
            .split("</tr>")
            .next()
            .unwrap();
        let shown: Vec<f64> = row
            .split("data-value=\"")
            .skip(1)
            .map(|v| v.split('"').next().unwrap().parse().unwrap())
            .collect();
        let decided: Vec<f64> = d["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o[key].as_f64().unwrap())
            .collect();
        // (serde_json parses floats to within an ulp or two, not exactly)
        assert_eq!(shown.len(), 3, "{label}");
        for (a, b) in shown.iter().zip(&decided) {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                "{label}: {shown:?} against {decided:?}"
            );
        }
    }
    // the sentence names the cheapest option with its total
    let cheapest = cheapest(&d);
    let name = match cheapest["option"].as_str().unwrap() {
        "direct" => "Direct access",
        "n_plus_1" => "N+1 behind schools",
        _ => "Central desk",
    };
    let total = format!("{:.2} FTE", cheapest["fte_total"].as_f64().unwrap());
    assert!(
        html.contains(&format!("favour &quot;{name}&quot;: {total}")),
        "{name} {total}"
    );
}

/// The decision of the report: volumes and r added up from its trend's KPI rows when the
/// trend holds the window, the other inputs queried as `decide` does.
#[tokio::test]
async fn the_report_decides_as_decide_does_over_the_same_window() {
    let dir = tempfile::tempdir().unwrap();
    let hand = write_lake(&dir.path().join("hand"), &super::kpi_hand::sources()).await;
    let generated = fixtures_lake(
        &dir.path().join("generated"),
        &["--tickets", "6000", "--start", "2025-01", "--months", "14"],
    );
    let days = LocalDays::new(chrono_tz::Europe::Paris);
    // windows of 12 and 6 months are inside the 13 months of the trend, 24 is not
    for (lake, month) in [(&hand, "2026-04"), (&generated, "2026-02")] {
        let month = Month::parse(month).unwrap();
        for window in [12, 6, 24] {
            let mut config = Config::default();
            config.decision.window_months = window;
            let inputs = report::gather(lake, &config, &days, month).await.unwrap();
            let ctx = ticketlake::engine::session(lake, &config).await.unwrap();
            let from = month.plus(1 - window as i32);
            let decided = ticketlake::kpi::decision::compute(
                &ctx,
                &config,
                &days,
                Some(from),
                Some(month),
                &[],
            )
            .await
            .unwrap();
            assert_eq!(inputs.decision, decided, "{month}, {window} months");
            assert_eq!(
                decided.measured.r.source, "data",
                "{month}, {window} months"
            );
        }
    }
}

#[tokio::test]
async fn a_month_without_data_shows_na_with_the_reason_never_zero() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &super::kpi_hand::sources()).await;
    let html = rendered(&lake, "2026-07", Lang::Fr, false).await.html;
    let t = tiles(&html);
    let median = t.iter().find(|(k, _, _)| k == "median_ttr").unwrap();
    assert_eq!(median.1, None);
    assert_eq!(median.2, "n/a");
    assert!(html.contains("aucun ticket résolu dans le mois"));
    let sat = t.iter().find(|(k, _, _)| k == "satisfaction").unwrap();
    assert_eq!(sat.2, "n/a");
    assert!(html.contains("aucune réponse à l’enquête"));
}

fn hostile() -> Vec<SourceData> {
    const EVIL: &str = "<script>alert(1)</script>\"";
    let mut tickets: Vec<TicketFields<'static>> = Vec::new();
    for (id, at) in [("1", "2026-04-06 09:00"), ("2", "2026-04-08 09:00")] {
        tickets.push(TicketFields {
            service: EVIL,
            service_scope: "group",
            category: Some("#set page(width: 1cm) *x* \"cat\""),
            ..ticket(id, at)
        });
    }
    vec![SourceData {
        id: "s-evil",
        tickets,
        events: Vec::new(),
    }]
}

#[tokio::test]
async fn hostile_names_are_text_in_the_html_and_the_pdf() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &hostile()).await;
    let r = rendered(&lake, "2026-04", Lang::En, true).await;
    assert!(!r.html.contains("<script>alert"), "markup in the page");
    assert!(!r.html.contains("<script"), "no script at all in the page");
    assert!(
        r.html
            .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;&quot;"),
        "escaped service name"
    );
    let pdf = dir.path().join("r.pdf");
    std::fs::write(&pdf, r.pdf.unwrap()).unwrap();
    let text = pdftotext(&pdf);
    assert!(text.contains("<script>alert(1)</script>\""), "{text}");
    assert!(text.contains("#set page(width: 1cm) *x* \"cat\""), "{text}");
}

fn pdftotext(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext (Debian package poppler-utils; .ci/run installs it)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Text without any kind of space, for comparing figures across HTML and PDF.
fn squeezed(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[tokio::test]
async fn the_pdf_shows_the_headline_figures_of_the_html() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &super::kpi_hand::sources()).await;
    for lang in [Lang::Fr, Lang::En] {
        let r = rendered(&lake, "2026-04", lang, true).await;
        let pdf = r.pdf.unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let path = dir.path().join(format!("r.{}.pdf", lang.code()));
        std::fs::write(&path, &pdf).unwrap();
        let text = pdftotext(&path);
        let flat = squeezed(&text);
        for (key, _, shown) in tiles(&r.html) {
            assert!(
                flat.contains(&squeezed(&shown)),
                "{key} '{shown}' not in the PDF text"
            );
        }
        // headers on every page, page numbers, the table of contents
        let pages = text.split('\u{c}').filter(|p| !p.trim().is_empty()).count();
        assert!(pages >= 5, "{pages} pages");
        let month = if lang == Lang::Fr {
            "avril 2026"
        } else {
            "April 2026"
        };
        for (i, page) in text.split('\u{c}').take(pages).enumerate() {
            assert!(page.contains(month), "page {} has no period header", i + 1);
            assert!(
                squeezed(page).contains(&format!("{}/{pages}", i + 1)),
                "page {} has no number",
                i + 1
            );
        }
        let contents = if lang == Lang::Fr {
            "Sommaire"
        } else {
            "Contents"
        };
        assert!(text.contains(contents));
    }
}

/// Chromium, headless, as the machine's user runs it (root needs --no-sandbox).
fn chromium(args: &[&str], profile: &Path) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium (Debian package chromium; .ci/run installs it)")
}

#[tokio::test]
async fn the_page_renders_in_headless_chromium_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &super::kpi_hand::sources()).await;
    let html = rendered(&lake, "2026-04", Lang::Fr, false).await.html;
    // The page itself has no script; the test adds one that records errors and measures
    // every chart once the page is laid out, and writes both into the DOM.
    let probe_head = "<script>window.__errors=[];addEventListener('error',e=>__errors.push(String(e.message)));</script>";
    let probe_end = "<script>addEventListener('load',()=>{const s=[...document.querySelectorAll('figure svg')].map(x=>{const r=x.getBoundingClientRect();return [x.parentElement.id,r.width,r.height]});const p=document.createElement('pre');p.id='probe';p.textContent=JSON.stringify({errors:__errors,svgs:s});document.body.appendChild(p)});</script>";
    let probed = html
        .replacen("<head>", &format!("<head>{probe_head}"), 1)
        .replacen("</body>", &format!("{probe_end}</body>"), 1);
    let page = dir.path().join("page.html");
    std::fs::write(&page, probed).unwrap();
    let url = format!("file://{}", page.display());
    let profile = dir.path().join("profile");
    let out = chromium(
        &["--virtual-time-budget=5000", "--dump-dom", &url],
        &profile,
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json = dom
        .split("<pre id=\"probe\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or_else(|| panic!("no probe result: {stderr}"))
        .replace("&quot;", "\"");
    let probe: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(probe["errors"], json!([]), "JavaScript errors");
    assert!(!stderr.contains("Uncaught"), "{stderr}");
    let svgs = probe["svgs"].as_array().unwrap();
    assert_eq!(svgs.len(), 10, "{svgs:?}");
    for s in svgs {
        assert!(
            s[1].as_f64().unwrap() > 300.0 && s[2].as_f64().unwrap() > 100.0,
            "chart with no size: {s}"
        );
    }

    // a screenshot of the page is not blank
    let shot = dir.path().join("shot.png");
    let out = chromium(
        &[
            "--window-size=1200,1600",
            &format!("--screenshot={}", shot.display()),
            &format!("file://{}", page.display()),
        ],
        &profile,
    );
    assert!(shot.exists(), "{}", String::from_utf8_lossy(&out.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let colours: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    let inked = pixels.iter().filter(|p| p[..3] != [255, 255, 255]).count();
    assert!(colours.len() > 50, "{} colours", colours.len());
    assert!(
        inked * 10 > pixels.len(),
        "{inked} of {} pixels inked",
        pixels.len()
    );
}
