//! Report stage: the charts, drawn with plotters as SVG (no fonts needed: the viewer or
//! Typst picks the real font). Charts only draw what they are given; every word on them
//! (title, axis descriptions, legend) comes from the caller, every number from the KPIs.

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

/// Chart size in SVG pixels; the HTML scales it to the page width, Typst to the column.
const WIDTH: u32 = 760;
const HEIGHT: u32 = 320;

/// Colours with well-separated lightness, so that series stay apart in greyscale print
/// (dark to light: navy, orange, teal, plum, olive, sky, brick, sand).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0x1f, 0x3a, 0x68),
    RGBColor(0xe8, 0x8a, 0x2e),
    RGBColor(0x2a, 0x9d, 0x8f),
    RGBColor(0x7b, 0x3f, 0x8c),
    RGBColor(0x9a, 0xa6, 0x3c),
    RGBColor(0x8e, 0xc5, 0xe8),
    RGBColor(0xa8, 0x3a, 0x32),
    RGBColor(0xe9, 0xd8, 0xa6),
];

/// One series: a label for the legend, a colour, one value per category (None: no data).
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    pub values: Vec<Option<f64>>,
}

/// The words of one chart.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// Read by screen readers and shown as a tooltip (`<title>`).
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
}

/// How the y axis shows its values.
pub type YFormat<'a> = &'a dyn Fn(f64) -> String;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

fn finish(svg: String, labels: &Labels) -> String {
    // plotters writes a viewBox (the page scales the chart); add a title for screen readers.
    let title = labels
        .title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    svg.replacen("<svg ", "<svg role=\"img\" ", 1).replacen(
        '>',
        &format!("><title>{title}</title>"),
        1,
    )
}

/// plotters' integer ranges include their end: categories 0..n are `0..n - 1`.
fn last_index(n: usize) -> i32 {
    (n as i32 - 1).max(0)
}

/// The top of the y axis: room above the highest value for the legend, one line per
/// entry (a legend entry is about a tenth of the plot's height).
fn y_top(max: f64, entries: usize) -> f64 {
    let max = if max <= 0.0 { 1.0 } else { max };
    max * (1.12 + 0.11 * entries as f64)
}

fn text_style() -> TextStyle<'static> {
    ("sans-serif", 13)
        .into_font()
        .color(&RGBColor(0x33, 0x33, 0x33))
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(0xbb, 0xbb, 0xbb))
        .label_font(text_style())
        .draw()
        .map_err(err)
}

/// The chart frame shared by every chart: white, margins, room for the axes' labels.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
) -> Result<ChartBuilder<'a, 'b, SVGBackend<'b>>> {
    root.fill(&WHITE).map_err(err)?;
    let mut builder = ChartBuilder::on(root);
    builder
        .margin(10)
        .x_label_area_size(44)
        .y_label_area_size(64);
    Ok(builder)
}

/// The axes, their labels and descriptions, and light horizontal grid lines.
fn mesh<X, Y>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, Y>>,
    labels: &Labels,
    x_labels: usize,
    x_ticks: u32,
    x_fmt: &dyn Fn(&X::ValueType) -> String,
    y_fmt: &dyn Fn(&Y::ValueType) -> String,
) -> Result<()>
where
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
{
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(x_labels)
        .set_tick_mark_size(LabelAreaPosition::Bottom, x_ticks)
        .x_label_formatter(x_fmt)
        .y_label_formatter(y_fmt)
        .x_desc(labels.x_desc.as_str())
        .y_desc(labels.y_desc.as_str())
        .label_style(text_style())
        .axis_desc_style(text_style())
        .light_line_style(RGBColor(0xee, 0xee, 0xee))
        .draw()
        .map_err(err)
}

/// Bars stacked per category (months, orgs…), one layer per series.
pub fn stacked_bars(
    categories: &[String],
    series: &[Series],
    labels: &Labels,
    y_fmt: YFormat,
) -> Result<String> {
    let n = categories.len();
    let totals: Vec<f64> = (0..n)
        .map(|i| series.iter().filter_map(|s| s.values[i]).sum())
        .collect();
    let top = y_top(totals.iter().copied().fold(0.0, f64::max), series.len());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let mut chart = frame(&root)?
            .build_cartesian_2d((0..last_index(n)).into_segmented(), 0.0..top)
            .map_err(err)?;
        let x_fmt = |x: &SegmentValue<i32>| match x {
            SegmentValue::CenterOf(i) => categories.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        let y_label = |y: &f64| y_fmt(*y);
        mesh(&mut chart, labels, n, 5, &x_fmt, &y_label)?;
        let mut base = vec![0.0; n];
        for s in series {
            let color = s.color;
            let bars: Vec<Rectangle<(SegmentValue<i32>, f64)>> = (0..n)
                .filter_map(|i| {
                    let v = s.values[i].filter(|v| *v > 0.0)?;
                    let (y0, y1) = (base[i], base[i] + v);
                    base[i] = y1;
                    let mut r = Rectangle::new(
                        [
                            (SegmentValue::Exact(i as i32), y0),
                            (SegmentValue::Exact(i as i32 + 1), y1),
                        ],
                        color.filled(),
                    );
                    r.set_margin(0, 0, 6, 6);
                    Some(r)
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        legend(&mut chart)?;
        root.present().map_err(err)?;
    }
    Ok(finish(svg, labels))
}

/// Bars side by side per category, one per series, with an optional target per category
/// drawn as a dark tick across the group.
pub fn grouped_bars(
    categories: &[String],
    series: &[Series],
    targets: &[Option<f64>],
    target_label: &str,
    labels: &Labels,
    y_fmt: YFormat,
) -> Result<String> {
    let n = categories.len();
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .chain(targets.iter().flatten())
        .copied()
        .fold(0.0, f64::max);
    let top = y_top(max, series.len() + 1);
    let k = series.len().max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let mut chart = frame(&root)?
            .build_cartesian_2d(0.0..n as f64, 0.0..top)
            .map_err(err)?;
        let x_fmt = |x: &f64| {
            let i = (x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                categories.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let y_label = |y: &f64| y_fmt(*y);
        mesh(&mut chart, labels, 2 * n + 1, 5, &x_fmt, &y_label)?;
        for (j, s) in series.iter().enumerate() {
            let color = s.color;
            let bars: Vec<Rectangle<(f64, f64)>> = (0..n)
                .filter_map(|i| {
                    let v = s.values[i]?;
                    let x0 = i as f64 + 0.1 + 0.8 * j as f64 / k;
                    let x1 = x0 + 0.8 / k;
                    let mut r = Rectangle::new([(x0, 0.0), (x1, v)], color.filled());
                    r.set_margin(0, 0, 1, 1);
                    Some(r)
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        let dark = RGBColor(0x11, 0x11, 0x11);
        let ticks: Vec<PathElement<(f64, f64)>> = targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let t = (*t)?;
                Some(PathElement::new(
                    vec![(i as f64 + 0.05, t), (i as f64 + 0.95, t)],
                    dark.stroke_width(3),
                ))
            })
            .collect();
        if !ticks.is_empty() {
            chart
                .draw_series(ticks)
                .map_err(err)?
                .label(target_label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 12, y)], dark.stroke_width(3))
                });
        }
        legend(&mut chart)?;
        root.present().map_err(err)?;
    }
    Ok(finish(svg, labels))
}

fn marker<DB: DrawingBackend>(
    j: usize,
    (x, y): (i32, i32),
    color: RGBColor,
) -> DynElement<'static, DB, (i32, i32)> {
    match j % 4 {
        0 => Circle::new((x, y), 4, color.filled()).into_dyn(),
        1 => TriangleMarker::new((x, y), 5, color.filled()).into_dyn(),
        2 => Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], color.filled()).into_dyn(),
        _ => Cross::new((x, y), 4, color.stroke_width(2)).into_dyn(),
    }
}

/// Lines over categories (months), with a distinct marker shape per series so that they
/// stay apart in greyscale. `y_max` fixes the top of the axis (1.0 for rates).
pub fn lines(
    categories: &[String],
    series: &[Series],
    y_max: Option<f64>,
    labels: &Labels,
    y_fmt: YFormat,
) -> Result<String> {
    let n = categories.len();
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .fold(0.0, f64::max);
    let top = y_top(y_max.unwrap_or(max), series.len());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let mut chart = frame(&root)?
            .build_cartesian_2d((0..last_index(n)).into_segmented(), 0.0..top)
            .map_err(err)?;
        let x_fmt = |x: &SegmentValue<i32>| match x {
            SegmentValue::CenterOf(i) => categories.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        let y_label = |y: &f64| {
            if y_max.is_some_and(|m| *y > m + 1e-9) {
                String::new()
            } else {
                y_fmt(*y)
            }
        };
        mesh(&mut chart, labels, n, 5, &x_fmt, &y_label)?;
        for (j, s) in series.iter().enumerate() {
            let color = s.color;
            let points: Vec<(SegmentValue<i32>, f64)> = (0..n)
                .filter_map(|i| Some((SegmentValue::CenterOf(i as i32), s.values[i]?)))
                .collect();
            // one segment per run of consecutive months with data
            let mut runs: Vec<Vec<(SegmentValue<i32>, f64)>> = Vec::new();
            let mut last: Option<i32> = None;
            for p in &points {
                let SegmentValue::CenterOf(i) = p.0 else {
                    continue;
                };
                if last != Some(i - 1) {
                    runs.push(Vec::new());
                }
                runs.last_mut().expect("a run").push(p.clone());
                last = Some(i);
            }
            // a lone month is its marker alone (a one-point line is no line)
            for run in runs.into_iter().filter(|r| r.len() > 1) {
                chart
                    .draw_series(LineSeries::new(run, color.stroke_width(2)))
                    .map_err(err)?;
            }
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|p| EmptyElement::at(p.clone()) + marker(j, (0, 0), color)),
                )
                .map_err(err)?
                .label(s.label.as_str())
                .legend(move |(x, y)| EmptyElement::at((x + 6, y)) + marker(j, (0, 0), color));
        }
        legend(&mut chart)?;
        root.present().map_err(err)?;
    }
    Ok(finish(svg, labels))
}

/// A daily line (backlog), with the first day of each month labelled.
pub fn daily(
    days: &[chrono::NaiveDate],
    series: &[Series],
    month_label: &dyn Fn(chrono::NaiveDate) -> String,
    labels: &Labels,
    y_fmt: YFormat,
) -> Result<String> {
    use chrono::Datelike;
    let n = days.len();
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .fold(0.0, f64::max);
    let top = y_top(max, series.len());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let mut chart = frame(&root)?
            .build_cartesian_2d(0..n.max(1) as i32, 0.0..top)
            .map_err(err)?;
        // Short spans label every few days, long ones every month.
        let x_fmt = |x: &i32| match days.get(*x as usize) {
            Some(d) if n <= 31 => format!("{}", d.day()),
            Some(d) if d.day() == 1 => month_label(*d),
            _ => String::new(),
        };
        let y_label = |y: &f64| y_fmt(*y);
        mesh(
            &mut chart,
            labels,
            if n <= 31 { n / 2 + 1 } else { n },
            if n <= 31 { 5 } else { 0 },
            &x_fmt,
            &y_label,
        )?;
        for s in series {
            let color = s.color;
            let points: Vec<(i32, f64)> = (0..n)
                .filter_map(|i| Some((i as i32, s.values[i]?)))
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(err)?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 12, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart)?;
        root.present().map_err(err)?;
    }
    Ok(finish(svg, labels))
}

/// Curves over a numeric x axis (the decision's volume multiplier), with dashed vertical
/// marks (the crossovers) and a distinct marker shape per series every few points.
pub fn curves(
    xs: &[f64],
    series: &[Series],
    marks: &[f64],
    labels: &Labels,
    x_fmt: YFormat,
    y_fmt: YFormat,
) -> Result<String> {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .fold(0.0, f64::max);
    let top = y_top(max, series.len() + 1);
    let (x0, x1) = (
        xs.first().copied().unwrap_or(0.0),
        xs.last().copied().unwrap_or(1.0),
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let mut chart = frame(&root)?
            .build_cartesian_2d(x0..x1, 0.0..top)
            .map_err(err)?;
        let x_label = |x: &f64| x_fmt(*x);
        let y_label = |y: &f64| y_fmt(*y);
        mesh(&mut chart, labels, 10, 5, &x_label, &y_label)?;
        for (j, s) in series.iter().enumerate() {
            let color = s.color;
            let points: Vec<(f64, f64)> = xs
                .iter()
                .zip(&s.values)
                .filter_map(|(x, v)| Some((*x, (*v)?)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(err)?;
            chart
                .draw_series(
                    points
                        .iter()
                        .step_by(5)
                        .map(|p| EmptyElement::at(*p) + marker(j, (0, 0), color)),
                )
                .map_err(err)?
                .label(s.label.as_str())
                .legend(move |(x, y)| EmptyElement::at((x + 6, y)) + marker(j, (0, 0), color));
        }
        let dark = RGBColor(0x55, 0x55, 0x55);
        for k in marks {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(*k, 0.0), (*k, top)],
                    6,
                    4,
                    dark.stroke_width(1),
                ))
                .map_err(err)?;
        }
        // today's volumes
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(1.0, 0.0), (1.0, top)],
                RGBColor(0x11, 0x11, 0x11).stroke_width(2),
            )))
            .map_err(err)?;
        legend(&mut chart)?;
        root.present().map_err(err)?;
    }
    Ok(finish(svg, labels))
}
