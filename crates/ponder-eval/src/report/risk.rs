//! The report's risk–coverage section: for each voting strategy, the accuracy among the
//! questions it answers against the fraction it answers, as the abstention threshold on
//! the winner's share of the vote (`abstain_below`) rises — the curve a user reads a
//! threshold off. Drawn, tabled at a few thresholds, and written to `risk.csv`.

use std::collections::BTreeMap;

use crate::analysis::Config;
use crate::store::OutcomeRow;

use super::csv::{csv_line, f};
use super::plots::Series;
use super::tables::Table;
use super::Section;

/// One threshold's point: answering only when the winner's share is at least `threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskPoint {
    pub threshold: f64,
    /// Fraction of the units answered.
    pub coverage: f64,
    /// Correct among the answered (`None` when none is).
    pub accuracy: Option<f64>,
    pub answered: usize,
    pub correct: usize,
}

/// A strategy's curve over its units (problems × seeds), one point per distinct confidence,
/// from the most confident only to every answered unit.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskCurve {
    pub config: Config,
    pub n_units: usize,
    pub points: Vec<RiskPoint>,
}

/// The curves of a run's voting strategies (those that stored a confidence). A unit that
/// gave no answer (no candidate had one, or the run's own `abstain_below` held it back)
/// is never answered, whatever the threshold.
pub fn curves(outcomes: &[OutcomeRow]) -> Vec<RiskCurve> {
    let mut by: BTreeMap<Config, Vec<(Option<f64>, bool, bool)>> = BTreeMap::new();
    for o in outcomes {
        let config = Config { strategy: o.key.strategy.clone(), budget: o.key.budget };
        by.entry(config).or_default().push((o.confidence, o.answer.is_some(), o.correct));
    }
    by.into_iter()
        .filter(|(_, units)| units.iter().any(|u| u.0.is_some()))
        .map(|(config, units)| {
            let mut thresholds: Vec<f64> = units.iter().filter(|u| u.1).filter_map(|u| u.0).collect();
            thresholds.sort_by(|a, b| b.total_cmp(a));
            thresholds.dedup();
            let n_units = units.len();
            let points = thresholds
                .into_iter()
                .map(|t| {
                    let answered: Vec<_> = units.iter().filter(|u| u.1 && u.0.is_some_and(|c| c >= t)).collect();
                    let correct = answered.iter().filter(|u| u.2).count();
                    RiskPoint {
                        threshold: t,
                        coverage: answered.len() as f64 / n_units as f64,
                        accuracy: (!answered.is_empty()).then(|| correct as f64 / answered.len() as f64),
                        answered: answered.len(),
                        correct,
                    }
                })
                .collect();
            RiskCurve { config, n_units, points }
        })
        .collect()
}

/// The point a threshold `t` gives: the lowest curve threshold at or above it.
fn at(c: &RiskCurve, t: f64) -> Option<&RiskPoint> {
    c.points.iter().rev().find(|p| p.threshold >= t)
}

/// Thresholds the table shows.
const TABLE_THRESHOLDS: [f64; 6] = [0.0, 0.5, 0.6, 0.7, 0.8, 0.9];

/// Per strategy, coverage / accuracy / wrong answers at a few thresholds.
pub(super) fn table(curves: &[RiskCurve]) -> Table {
    let mut header = vec!["strategy".to_string(), "units".to_string()];
    header.extend(TABLE_THRESHOLDS.iter().map(|t| format!("≥ {t:.1}: answered / accuracy / wrong")));
    let rows = curves
        .iter()
        .map(|c| {
            let mut row = vec![c.config.to_string(), c.n_units.to_string()];
            row.extend(TABLE_THRESHOLDS.iter().map(|&t| match at(c, t) {
                Some(p) => format!(
                    "{:.0}% / {} / {}",
                    100.0 * p.coverage,
                    p.accuracy.map_or("–".into(), |a| format!("{:.1}%", 100.0 * a)),
                    p.answered - p.correct
                ),
                None => "0% / – / 0".into(),
            }));
            row
        })
        .collect();
    Table { header, rows }
}

/// The plot's series: accuracy among answered against coverage.
pub(super) fn series(sections: &[Section<'_>]) -> Vec<Series> {
    let multi = sections.len() > 1;
    let mut out = Vec::new();
    for (ri, s) in sections.iter().enumerate() {
        for c in &s.risk {
            let points = c.points.iter().filter_map(|p| p.accuracy.map(|a| (p.coverage, a, a, a))).collect();
            let label = if multi { format!("{}: {}", s.label(), c.config) } else { c.config.to_string() };
            out.push(Series { label, points, color: out.len(), dashed: ri > 0, band: false, markers: true });
        }
    }
    out
}

/// `risk.csv`: every point of every curve.
pub(super) fn csv(sections: &[Section<'_>]) -> String {
    let mut out = String::from("run,strategy,budget,units,threshold,coverage,accuracy,answered,correct\n");
    for s in sections {
        for c in &s.risk {
            for p in &c.points {
                out.push_str(&csv_line(&[
                    s.run.info.id.to_string(),
                    c.config.strategy.clone(),
                    c.config.budget.to_string(),
                    c.n_units.to_string(),
                    f(Some(p.threshold)),
                    f(Some(p.coverage)),
                    f(p.accuracy),
                    p.answered.to_string(),
                    p.correct.to_string(),
                ]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UnitKey;
    use ponder_core::Usage;

    fn unit(i: usize, strategy: &str, confidence: Option<f64>, answered: bool, correct: bool) -> OutcomeRow {
        OutcomeRow {
            key: UnitKey { problem_id: format!("p{i}"), strategy: strategy.into(), budget: 8, seed: 0 },
            answer: answered.then(|| "x".to_string()),
            correct,
            abstained: !answered,
            stopped_early: false,
            n_samples: 8,
            n_failed: 0,
            chosen: None,
            usage: Usage::default(),
            confidence,
            dropped_unknown: false,
        }
    }

    #[test]
    fn the_curve_answers_the_most_confident_first() {
        let r = vec![
            unit(0, "sc", Some(1.0), true, true),
            unit(1, "sc", Some(0.75), true, true),
            unit(2, "sc", Some(0.75), true, false),
            unit(3, "sc", Some(0.5), true, false),
            unit(4, "sc", Some(0.3), false, false), // held back by the run's own threshold
            unit(0, "bon", None, true, true),
        ];
        let c = curves(&r);
        assert_eq!(c.len(), 1, "bon stored no confidence: no curve");
        assert_eq!(c[0].n_units, 5);
        let pts: Vec<(f64, f64, Option<f64>)> = c[0].points.iter().map(|p| (p.threshold, p.coverage, p.accuracy)).collect();
        assert_eq!(pts, vec![(1.0, 0.2, Some(1.0)), (0.75, 0.6, Some(2.0 / 3.0)), (0.5, 0.8, Some(0.5))]);
        assert_eq!(at(&c[0], 0.6).map(|p| p.threshold), Some(0.75));
        assert_eq!(at(&c[0], 0.0).map(|p| p.answered), Some(4), "every answered unit");
        assert!(at(&c[0], 1.01).is_none(), "nothing clears a threshold above every confidence");
    }
}
