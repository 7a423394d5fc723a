//! Coverage at every k and the scaling law of Large Language Monkeys (Brown et al. 2024):
//! coverage c(k), the chance that one of k samples is right, follows
//! log c(k) ≈ a·k^b (a < 0, b < 0) over orders of magnitude of k.
//!
//! The law is fitted by least squares on log(−log c) = log(−a) + b·log k over the k whose
//! mean coverage is strictly between 0 and 1 (the transform needs both), the same
//! linearisation the paper uses; the fit's error is reported on the coverage scale.

use serde::Serialize;

use crate::curves::{bootstrap, pass_at_k, Estimate};

/// Coverage at one k, with its bootstrap interval over problems.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CoverageAt {
    pub k: usize,
    pub coverage: Estimate,
}

/// log c(k) ≈ a·k^b, fitted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CoverageLaw {
    pub a: f64,
    pub b: f64,
    /// Root mean squared error of exp(a·k^b) against the measured coverage, over the fitted k.
    pub rmse: f64,
    /// The largest absolute error over the fitted k.
    pub max_abs_error: f64,
    /// How many k the fit used.
    pub n_points: usize,
}

impl CoverageLaw {
    /// The law's coverage at `k`.
    pub fn predict(&self, k: f64) -> f64 {
        (self.a * k.powf(self.b)).exp()
    }
}

/// Unbiased pass@k at every k = 1..=n for problems given as (samples, correct) with at least
/// `n` samples each, with `level` bootstrap intervals (`n_boot` resamples) over problems.
pub fn coverage_curve(problems: &[(usize, usize)], n: usize, n_boot: usize, level: f64, seed: u64) -> Vec<CoverageAt> {
    (1..=n)
        .map(|k| {
            let per: Vec<f64> = problems.iter().map(|&(m, c)| pass_at_k(m, c, k)).collect();
            CoverageAt { k, coverage: bootstrap(&per, n_boot, level, seed ^ (k as u64) << 16) }
        })
        .collect()
}

/// The law fitted to mean coverages; `None` when fewer than two k have 0 < c < 1.
pub fn fit(points: &[CoverageAt]) -> Option<CoverageLaw> {
    let xy: Vec<(f64, f64, f64)> = points
        .iter()
        .filter(|p| p.coverage.mean > 0.0 && p.coverage.mean < 1.0)
        .map(|p| ((p.k as f64).ln(), (-(p.coverage.mean.ln())).ln(), p.coverage.mean))
        .collect();
    if xy.len() < 2 {
        return None;
    }
    let n = xy.len() as f64;
    let (mx, my) = (xy.iter().map(|p| p.0).sum::<f64>() / n, xy.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = xy.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let b = xy.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
    let a = -(my - b * mx).exp();
    let law = CoverageLaw { a, b, rmse: 0.0, max_abs_error: 0.0, n_points: xy.len() };
    let errors: Vec<f64> = xy.iter().map(|&(lx, _, c)| law.predict(lx.exp()) - c).collect();
    Some(CoverageLaw {
        rmse: (errors.iter().map(|e| e * e).sum::<f64>() / n).sqrt(),
        max_abs_error: errors.iter().fold(0.0, |m, e| m.max(e.abs())),
        ..law
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(k: usize, c: f64) -> CoverageAt {
        CoverageAt { k, coverage: Estimate { mean: c, lo: c, hi: c } }
    }

    #[test]
    fn recovers_an_exact_law() {
        let (a, b) = (-1.2, -0.45);
        let points: Vec<CoverageAt> = (1..=64).map(|k| at(k, (a * (k as f64).powf(b)).exp())).collect();
        let law = fit(&points).expect("fits");
        assert!((law.a - a).abs() < 1e-9 && (law.b - b).abs() < 1e-9, "{law:?}");
        assert!(law.rmse < 1e-12 && law.max_abs_error < 1e-12, "{law:?}");
        assert_eq!(law.n_points, 64);
    }

    #[test]
    fn skips_zero_and_full_coverage_and_needs_two_points() {
        let points = [at(1, 0.0), at(2, 0.3), at(4, 0.5), at(8, 1.0)];
        assert_eq!(fit(&points).expect("two usable points").n_points, 2);
        assert!(fit(&[at(1, 0.0), at(2, 0.4), at(4, 1.0)]).is_none());
    }

    #[test]
    fn coverage_at_every_k_is_the_unbiased_estimate() {
        // Two problems of 4 samples: 1 right and 0 right.
        let curve = coverage_curve(&[(4, 1), (4, 0)], 4, 200, 0.95, 1);
        let means: Vec<f64> = curve.iter().map(|p| p.coverage.mean).collect();
        assert_eq!(curve.iter().map(|p| p.k).collect::<Vec<_>>(), [1, 2, 3, 4]);
        for (k, m) in (1..=4).zip(means) {
            assert!((m - (k as f64 / 4.0) / 2.0).abs() < 1e-12, "k={k}: {m}");
        }
    }
}
