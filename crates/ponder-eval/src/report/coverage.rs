//! The report's coverage section: pass@k at every k and the law of Large Language Monkeys
//! fitted to it (log c(k) ≈ a·k^b), as a line of text, a dashed curve on the coverage plot
//! and `coverage.csv`.

use crate::analysis::CurveSet;

use super::plots::Series;
use super::csv::{csv_line, f};
use super::Section;

/// One sentence stating the fit, or why there is none.
pub(super) fn law_line(c: &CurveSet) -> String {
    match &c.law {
        Some(l) => format!(
            "Coverage law (Brown et al. 2024) fitted over k = 1..{}: log c(k) ≈ a·k^b with a = {:.4}, b = {:.4}; \
             RMSE {:.4}, largest error {:.4} over {} values of k; it predicts c({}) = {:.1}% and c({}) = {:.1}%.",
            c.n,
            l.a,
            l.b,
            l.rmse,
            l.max_abs_error,
            l.n_points,
            c.n * 4,
            100.0 * l.predict((c.n * 4) as f64),
            c.n * 16,
            100.0 * l.predict((c.n * 16) as f64),
        ),
        None => format!(
            "Coverage law: not fitted (it needs at least two k = 1..{} with coverage strictly between 0 and 100%).",
            c.n
        ),
    }
}

/// The fitted law at every k of the curve, for the coverage plot.
pub(super) fn law_series(c: &CurveSet, label: String, color: usize) -> Option<Series> {
    let law = c.law?;
    let points = c.coverage.iter().map(|p| {
        let y = law.predict(p.k as f64);
        (p.k as f64, y, y, y)
    });
    Some(Series { label, points: points.collect(), color, dashed: true, band: false, markers: false })
}

/// `coverage.csv`: every k of every curve, with the law's value where it was fitted.
pub(super) fn csv(sections: &[Section<'_>]) -> String {
    let mut out = String::from("run,source,n,k,coverage,lo,hi,law\n");
    for s in sections {
        for c in &s.curves {
            for p in &c.coverage {
                out.push_str(&csv_line(&[
                    s.run.info.id.to_string(),
                    c.source.to_string(),
                    c.n.to_string(),
                    p.k.to_string(),
                    f(Some(p.coverage.mean)),
                    f(Some(p.coverage.lo)),
                    f(Some(p.coverage.hi)),
                    f(c.law.map(|l| l.predict(p.k as f64))),
                ]));
            }
        }
    }
    out
}
