//! Server defaults and limits, from a TOML file (`ponder serve --config FILE`).
//!
//! ```toml
//! model = "smollm2-135m"          # the id served in /v1/models (default: the model's name)
//!
//! [defaults]                      # what a request gets when it does not say
//! strategy = "sc"                 # a spec: "pf@8", or a table, below
//! budget = 8                      # n of a spec that leaves it out
//! # strategy = { strategy = "pf", n = 8, resampling = "systematic" }
//! max_tokens = 256
//! temperature = 0.7
//!
//! [limits]                        # enforced before any generation
//! max_budget = 64                 # samples per request
//! max_tokens = 2048               # tokens per sample
//! max_total_tokens = 131072       # budget x max_tokens per request
//! max_body_bytes = 1048576
//! request_timeout_s = 600
//!
//! [[keys]]                        # optional: without keys the server is open
//! key = "sk-local-1"
//! token_budget = 1000000          # optional: prompt + completion tokens this key may spend
//!
//! [upstream]                      # optional: an OpenAI-compatible server instead of the engine
//! endpoints = [{ url = "http://127.0.0.1:8000/v1", max_concurrency = 32 }]
//!
//! [reward]                        # optional: a reward model for `scorer = "reward"`
//! url = "http://127.0.0.1:8001/v1"
//! model = "my-reward-model"
//! api = "pooling"                 # pooling | classify | score
//! ```

use std::path::Path;

use ponder_http::{HttpConfig, RewardApi};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// A strategy spec (ponder-core's `StrategySpec`): a shorthand string or a table.
    pub strategy: serde_json::Value,
    pub budget: usize,
    pub max_tokens: u32,
    pub temperature: f32,
    pub top_p: f32,
    /// Scorer for bon / weighted-bon (and search): `mean-logprob`, `self-eval` or `reward`.
    pub scorer: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Self { strategy: "sc".into(), budget: 8, max_tokens: 256, temperature: 0.7, top_p: 1.0, scorer: "mean-logprob".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_budget: usize,
    pub max_tokens: u32,
    pub max_total_tokens: u64,
    pub max_body_bytes: usize,
    pub max_messages: usize,
    pub request_timeout_s: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_budget: 64,
            max_tokens: 2048,
            max_total_tokens: 131_072,
            max_body_bytes: 1 << 20,
            max_messages: 512,
            request_timeout_s: 600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub key: String,
    /// Tokens (prompt + completion, as `usage` counts them) the key may spend; none: unlimited.
    #[serde(default)]
    pub token_budget: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardConfig {
    pub url: String,
    pub model: String,
    pub api: RewardApi,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default = "default_reward_timeout")]
    pub timeout_s: u64,
}

fn default_reward_timeout() -> u64 {
    120
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The model id clients name; default: the loaded model's name (or the upstream's).
    pub model: Option<String>,
    pub defaults: Defaults,
    pub limits: Limits,
    pub keys: Vec<KeyConfig>,
    pub upstream: Option<HttpConfig>,
    pub reward: Option<RewardConfig>,
    /// Let a request choose its upstream server with the `x-ponder-upstream` header (an
    /// index or an endpoint's URL, as its_hub's endpoint header does); off, the header is
    /// ignored and requests go by their prompt.
    pub allow_upstream_header: bool,
}

impl ServerConfig {
    pub fn load(path: &Path) -> Result<ServerConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let cfg: ServerConfig = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), String> {
        let l = &self.limits;
        if l.max_budget == 0 || l.max_tokens == 0 || l.max_body_bytes == 0 || l.request_timeout_s == 0 {
            return Err("limits must be positive".into());
        }
        let d = &self.defaults;
        if d.budget == 0 || d.budget > l.max_budget {
            return Err(format!("defaults.budget {} must be in 1..={}", d.budget, l.max_budget));
        }
        if d.max_tokens == 0 || d.max_tokens > l.max_tokens {
            return Err(format!("defaults.max_tokens {} must be in 1..={}", d.max_tokens, l.max_tokens));
        }
        let spec = ponder_core::strategy::StrategySpec::from_value(d.strategy.clone(), Some(d.budget))
            .map_err(|e| format!("defaults.strategy: {e}"))?;
        if spec.budget() > l.max_budget {
            return Err(format!("defaults.strategy: budget {} must be in 1..={}", spec.budget(), l.max_budget));
        }
        d.scorer.parse::<ponder_core::scorer_spec::ScorerSpec>().map_err(|e| format!("defaults.scorer: {e}"))?;
        if self.keys.iter().any(|k| k.key.trim().is_empty()) {
            return Err("an API key is empty".into());
        }
        if let Some(u) = &self.upstream {
            u.validate().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' ').to_string() + "\n")
            .collect();
        let cfg: ServerConfig = toml::from_str(&example).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.keys[0].token_budget, Some(1_000_000));
        assert_eq!(cfg.upstream.unwrap().endpoints[0].max_concurrency, 32);
        assert_eq!(cfg.reward.unwrap().api, RewardApi::Pooling);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(toml::from_str::<ServerConfig>("[defaults]\nbudgett = 3").is_err());
        let mut cfg = ServerConfig::default();
        cfg.defaults.strategy = "telepathy".into();
        assert!(cfg.validate().unwrap_err().contains("telepathy"));
        let mut cfg = ServerConfig::default();
        cfg.defaults.budget = 1000;
        assert!(cfg.validate().is_err());
    }
}
