//! The report's plots, drawn by plotters into SVG strings (inlined in the HTML page).
//! Text is left to the browser: the SVG carries `<text>` elements, no font files.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::Error;

/// A line of points with an optional confidence band.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    /// (x, y, lo, hi)
    pub points: Vec<(f64, f64, f64, f64)>,
    /// Index into the palette.
    pub color: usize,
    pub dashed: bool,
    /// Draw a shaded band between lo and hi.
    pub band: bool,
    /// Draw a marker at each point.
    pub markers: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XScale {
    Linear,
    /// Log base 10 (cost axes).
    Log10,
    /// Log base 2 (k axes).
    Log2,
}

pub struct Plot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_scale: XScale,
    pub series: &'a [Series],
}

pub const WIDTH: u32 = 860;
pub const HEIGHT: u32 = 460;

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Write { path: "plot".into(), reason: e.to_string() }
}

/// The legend of `series` as HTML: a line swatch (dashed where the series is) and the label.
pub fn legend_html(series: &[Series]) -> String {
    let mut h = String::from("<ul class=\"legend\">");
    for s in series {
        let c = color(s.color);
        let dash = if s.dashed { " stroke-dasharray=\"7 5\"" } else { "" };
        h.push_str(&format!(
            "<li><svg width=\"28\" height=\"10\"><line x1=\"0\" y1=\"5\" x2=\"28\" y2=\"5\" stroke=\"rgb({},{},{})\" stroke-width=\"3\"{dash}/></svg>{}</li>",
            c.0,
            c.1,
            c.2,
            s.label.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
        ));
    }
    h.push_str("</ul>");
    h
}

/// Draws `plot` as an SVG document. Accuracy (y) is in [0, 1], shown as percent. Log
/// scales are drawn as a linear axis over log(x) labelled with x itself, so the ticks
/// stay readable however narrow the range.
pub fn svg(plot: &Plot<'_>) -> Result<String, Error> {
    let base = match plot.x_scale {
        XScale::Linear => None,
        XScale::Log10 => Some(10f64),
        XScale::Log2 => Some(2f64),
    };
    let tx = |x: f64| base.map_or(x, |b| x.max(1e-9).log(b));
    let series: Vec<Series> = plot
        .series
        .iter()
        .map(|s| Series { points: s.points.iter().map(|p| (tx(p.0), p.1, p.2, p.3)).collect(), ..s.clone() })
        .collect();
    let xs: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).filter(|x| x.is_finite()).collect();
    let (mut x0, mut x1) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    let pad = match plot.x_scale {
        XScale::Linear => ((x1 - x0) * 0.08).max(0.5),
        XScale::Log2 => 0.3,
        XScale::Log10 => ((x1 - x0) * 0.08).max(0.05),
    };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root, plot, &series, (x0 - pad)..(x1 + pad), base)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

fn draw(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    plot: &Plot<'_>,
    all: &[Series],
    x: std::ops::Range<f64>,
    base: Option<f64>,
) -> Result<(), Error> {
    let mut builder = ChartBuilder::on(root);
    builder.caption(plot.title, ("sans-serif", 20)).margin(14).x_label_area_size(46).y_label_area_size(62);
    let integers = base == Some(2.0) || plot.x_scale == XScale::Linear;
    let fmt_x = move |v: &f64| {
        let x = base.map_or(*v, |b| b.powf(*v));
        if integers {
            if (x - x.round()).abs() < 0.05 {
                format!("{}", x.round())
            } else {
                String::new()
            }
        } else if x >= 1e6 {
            format!("{:.1}M", x / 1e6)
        } else if x >= 1e4 {
            format!("{:.0}k", x / 1e3)
        } else if x >= 1e3 {
            format!("{:.1}k", x / 1e3)
        } else {
            format!("{x:.0}")
        }
    };
    let n_labels = if integers { ((x.end - x.start).ceil() as usize + 1).max(2) } else { 8 };
    let mut chart = builder.build_cartesian_2d(x, -0.02f64..1.02f64).map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(plot.x_label)
        .y_desc(plot.y_label)
        .x_labels(n_labels)
        .y_labels(11)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(232, 232, 232))
        .draw()
        .map_err(err)?;
    series(&mut chart, all)?;
    Ok(())
}

fn series<'a, X>(chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, RangedCoordf64>>, all: &[Series]) -> Result<(), Error>
where
    X: Ranged<ValueType = f64>,
{
    for s in all {
        let c = color(s.color);
        let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
        if s.band && s.points.len() > 1 {
            let mut poly: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.3)).collect();
            poly.extend(s.points.iter().rev().map(|p| (p.0, p.2)));
            chart.draw_series(std::iter::once(Polygon::new(poly, c.mix(0.15).filled()))).map_err(err)?;
        }
        let style = c.stroke_width(2);
        if s.dashed {
            chart.draw_series(DashedLineSeries::new(pts.clone(), 7, 5, style)).map_err(err)?;
        } else {
            chart.draw_series(LineSeries::new(pts.clone(), style)).map_err(err)?;
        }
        if s.markers {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled()))).map_err(err)?;
            // Confidence intervals as whiskers where there is no band.
            if !s.band {
                chart
                    .draw_series(
                        s.points.iter().filter(|p| p.3 > p.2).map(|p| PathElement::new(vec![(p.0, p.2), (p.0, p.3)], c.mix(0.6).stroke_width(1))),
                    )
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}
