//! The fLaws analysis written out: `flaws.json`, `flaws.md` and `flaws.svg` (accuracy,
//! wrong answers and abstentions of verified resampling against k, with coverage as the
//! ceiling and a reference model's single-sample accuracy as a line).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::plots::{self, Plot, Series, XScale};
use crate::flaws::FlawsReport;
use crate::Error;

/// Another model on the same problems: what one of its samples scores, and its verifier's
/// false-positive rate.
#[derive(Debug, Clone, Serialize)]
pub struct Reference {
    pub label: String,
    pub report: FlawsReport,
}

#[derive(Serialize)]
struct Json<'a> {
    label: &'a str,
    report: &'a FlawsReport,
    reference: Option<&'a Reference>,
}

/// Writes the three files into `out` (created if missing); returns their paths.
pub fn write(label: &str, report: &FlawsReport, reference: Option<&Reference>, out: &Path) -> Result<Vec<PathBuf>, Error> {
    let werr = |p: &Path, e: &dyn std::fmt::Display| Error::Write { path: p.display().to_string(), reason: e.to_string() };
    std::fs::create_dir_all(out).map_err(|e| werr(out, &e))?;
    let paths = [out.join("flaws.json"), out.join("flaws.md"), out.join("flaws.svg")];
    let json = serde_json::to_string_pretty(&Json { label, report, reference }).map_err(|e| werr(&paths[0], &e))?;
    let files = [json + "\n", markdown(label, report, reference), svg(label, report, reference)?];
    for (p, text) in paths.iter().zip(files) {
        std::fs::write(p, text).map_err(|e| werr(p, &e))?;
    }
    Ok(paths.to_vec())
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn rate(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |x| format!("{x:.3}"))
}

/// The Markdown summary: rates, the curve at every k, the best k per cost.
pub fn markdown(label: &str, r: &FlawsReport, reference: Option<&Reference>) -> String {
    let mut m = format!(
        "### Verified resampling, replayed: {label}\n\n{} problems, {} candidates. Verifier (visible tests) against the \
         truth (hidden tests): false-positive rate {}, true-positive rate {}. Single-sample accuracy {}.\n\n",
        r.n_problems,
        r.n_candidates,
        rate(r.false_positive_rate),
        rate(r.true_positive_rate),
        pct(r.single_sample_accuracy)
    );
    if let Some(x) = reference {
        let _ = writeln!(
            m,
            "Reference {}: single-sample accuracy {} on the same problems, its verifier false-positive rate {} \
             ({} candidates).\n",
            x.label,
            pct(x.report.single_sample_accuracy),
            rate(x.report.false_positive_rate),
            x.report.n_candidates
        );
    }
    m.push_str("| k | correct [95% CI] | wrong | abstain | coverage pass@k | mean samples drawn |\n|---:|---|---:|---:|---:|---:|\n");
    for p in &r.curve {
        let _ = writeln!(
            m,
            "| {} | {} [{}, {}] | {} | {} | {} | {:.2} |",
            p.k,
            pct(p.correct.mean),
            pct(p.correct.lo),
            pct(p.correct.hi),
            pct(p.wrong.mean),
            pct(p.abstain.mean),
            pct(p.coverage.mean),
            p.mean_samples
        );
    }
    m.push_str("\n| wrong answer costs | abstention costs | best k | utility at best k | utility at the largest k |\n|---:|---:|---:|---:|---:|\n");
    for b in &r.best_k {
        let _ = writeln!(
            m,
            "| {} ({}× an abstention) | {} | {} | {:.3} | {:.3} |",
            b.wrong_cost, b.wrong_over_abstain, b.abstain_cost, b.k, b.utility, b.utility_at_max_k
        );
    }
    m.push_str("\nA correct answer earns 1. Draws are replayed in sample order from the run's stored samples.\n");
    m
}

fn svg(label: &str, r: &FlawsReport, reference: Option<&Reference>) -> Result<String, Error> {
    let line = |f: &dyn Fn(&crate::flaws::ResamplePoint) -> crate::curves::Estimate| -> Vec<(f64, f64, f64, f64)> {
        r.curve.iter().map(|p| {
            let e = f(p);
            (p.k as f64, e.mean, e.lo, e.hi)
        })
        .collect()
    };
    let mut series = vec![
        Series { label: "correct (verified resampling)".into(), points: line(&|p| p.correct), color: 0, dashed: false, band: true, markers: true },
        Series { label: "coverage pass@k (a perfect verifier)".into(), points: line(&|p| p.coverage), color: 2, dashed: true, band: false, markers: false },
        Series { label: "wrong (false positives)".into(), points: line(&|p| p.wrong), color: 3, dashed: false, band: false, markers: true },
        Series { label: "abstained".into(), points: line(&|p| p.abstain), color: 7, dashed: true, band: false, markers: false },
    ];
    if let Some(x) = reference {
        let y = x.report.single_sample_accuracy;
        let ends = [r.curve.first(), r.curve.last()];
        series.push(Series {
            label: format!("{}: one sample", x.label),
            points: ends.iter().flatten().map(|p| (p.k as f64, y, y, y)).collect(),
            color: 1,
            dashed: true,
            band: false,
            markers: false,
        });
    }
    let title = format!("Verified resampling with visible tests: {label}");
    plots::svg(&Plot { title: &title, x_label: "most samples drawn, k (log scale)", y_label: "share of problems", x_scale: XScale::Log2, series: &series })
}
