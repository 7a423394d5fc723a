//! What a run cost: tokens (generated, prefill computed and reused), scorer passes, wall
//! time, a FLOPs estimate, dollars from an optional price table, and cost-of-pass (cost
//! per correctly solved problem).
//!
//! FLOPs are estimated as 2 × parameters × tokens the model computed (prompt computed plus
//! generated), the usual forward-pass approximation; reused prompt tokens cost nothing and
//! scorer passes are not included (their model may differ). Everything else is counted.

use std::path::Path;

use ponder_core::Usage;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Estimated forward-pass FLOPs: 2 × `n_params` × computed tokens. 0 when `n_params` is unknown.
pub fn flops(n_params: u64, usage: &Usage) -> f64 {
    2.0 * n_params as f64 * usage.computed_tokens() as f64
}

/// Prices of a hosted API, in dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Per million prompt tokens (a backend without prefix sharing bills computed and reused alike).
    pub prompt_per_million: f64,
    /// Per million generated tokens.
    pub completion_per_million: f64,
    /// Per million prompt tokens served from a provider's cache; defaults to the prompt price.
    #[serde(default)]
    pub cached_prompt_per_million: Option<f64>,
}

impl Prices {
    /// Reads a JSON price table:
    /// `{"prompt_per_million": 0.15, "completion_per_million": 0.6, "cached_prompt_per_million": 0.075}`.
    pub fn load(path: &Path) -> Result<Prices, Error> {
        let bad = |reason: String| Error::Prices { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let p: Prices = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        for (name, v) in [
            ("prompt_per_million", Some(p.prompt_per_million)),
            ("completion_per_million", Some(p.completion_per_million)),
            ("cached_prompt_per_million", p.cached_prompt_per_million),
        ] {
            if let Some(v) = v {
                if !v.is_finite() || v < 0.0 {
                    return Err(bad(format!("{name} must be a finite number >= 0, got {v}")));
                }
            }
        }
        Ok(p)
    }

    /// Dollars for `usage`: prompt tokens computed at the prompt price, reused at the cached
    /// price, generated at the completion price.
    pub fn dollars(&self, usage: &Usage) -> f64 {
        let cached = self.cached_prompt_per_million.unwrap_or(self.prompt_per_million);
        (usage.prompt_computed as f64 * self.prompt_per_million
            + usage.prompt_reused as f64 * cached
            + usage.completion as f64 * self.completion_per_million)
            / 1e6
    }
}

/// Totals of a set of outcomes and what they bought.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CostSummary {
    pub n_problems: usize,
    pub n_correct: usize,
    pub usage: Usage,
    pub flops: f64,
    /// `None` without a price table.
    pub dollars: Option<f64>,
}

impl CostSummary {
    pub fn new(n_params: u64, prices: Option<&Prices>, usages: &[Usage], n_correct: usize) -> CostSummary {
        let usage: Usage = usages.iter().copied().sum();
        CostSummary {
            n_problems: usages.len(),
            n_correct,
            usage,
            flops: flops(n_params, &usage),
            dollars: prices.map(|p| p.dollars(&usage)),
        }
    }

    fn per(&self, total: f64, n: usize) -> Option<f64> {
        (n > 0).then(|| total / n as f64)
    }

    /// Computed tokens (prompt computed + generated) per problem.
    pub fn tokens_per_problem(&self) -> Option<f64> {
        self.per(self.usage.computed_tokens() as f64, self.n_problems)
    }

    /// Computed tokens per correctly solved problem; `None` when nothing was solved
    /// (the cost of a pass is unbounded).
    pub fn tokens_per_pass(&self) -> Option<f64> {
        self.per(self.usage.computed_tokens() as f64, self.n_correct)
    }

    pub fn flops_per_problem(&self) -> Option<f64> {
        self.per(self.flops, self.n_problems)
    }

    pub fn flops_per_pass(&self) -> Option<f64> {
        self.per(self.flops, self.n_correct)
    }

    pub fn dollars_per_pass(&self) -> Option<f64> {
        self.dollars.and_then(|d| self.per(d, self.n_correct))
    }

    pub fn wall_s_per_pass(&self) -> Option<f64> {
        self.per(self.usage.wall_ms as f64 / 1000.0, self.n_correct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt_computed: u64, prompt_reused: u64, completion: u64) -> Usage {
        Usage {
            prompt_computed,
            prompt_reused,
            completion,
            scorer_passes: 1,
            wall_ms: 500,
            ..Usage::default()
        }
    }

    #[test]
    fn flops_and_cost_of_pass() {
        let u = [usage(100, 300, 50), usage(10, 390, 40)];
        let c = CostSummary::new(135_000_000, None, &u, 1);
        assert_eq!(c.usage.computed_tokens(), 200);
        assert_eq!(c.flops, 2.0 * 135e6 * 200.0);
        assert_eq!(c.tokens_per_problem(), Some(100.0));
        assert_eq!(c.tokens_per_pass(), Some(200.0));
        assert_eq!(c.flops_per_pass(), Some(2.0 * 135e6 * 200.0));
        assert_eq!(c.wall_s_per_pass(), Some(1.0));
        assert_eq!(CostSummary::new(1, None, &u, 0).tokens_per_pass(), None);
    }

    #[test]
    fn prices_from_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prices.json");
        std::fs::write(&path, r#"{"prompt_per_million": 1.0, "completion_per_million": 4.0, "cached_prompt_per_million": 0.5}"#).unwrap();
        let p = Prices::load(&path).unwrap();
        let d = p.dollars(&usage(1_000_000, 2_000_000, 500_000));
        assert!((d - (1.0 + 1.0 + 2.0)).abs() < 1e-12, "{d}");
        let c = CostSummary::new(0, Some(&p), &[usage(1_000_000, 0, 0)], 2);
        assert_eq!(c.dollars_per_pass(), Some(0.5));
        std::fs::write(&path, r#"{"prompt_per_million": -1, "completion_per_million": 4}"#).unwrap();
        assert!(Prices::load(&path).unwrap_err().to_string().contains("prompt_per_million must be"));
        std::fs::write(&path, r#"{"prompt": 1}"#).unwrap();
        assert!(Prices::load(&path).unwrap_err().to_string().contains("prices.json"));
    }
}
