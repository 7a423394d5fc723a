//! Reward models served over HTTP (vLLM's pooling, classify and score endpoints) as an
//! outcome scorer.

use std::time::Duration;

use async_trait::async_trait;
use ponder_core::scorer::{OutcomeScorer, ScoreError, Scores};
use ponder_core::strategy::Candidate;
use ponder_core::{Problem, Usage};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Which endpoint scores a (question, answer) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RewardApi {
    /// `POST /pooling` on `question\n\nanswer`: the last number of the pooled output (a
    /// reward head's scalar, or the last step's "good" probability of a PRM).
    Pooling,
    /// `POST /classify`: the last class's probability (the positive class of a 2-way head).
    Classify,
    /// `POST /score` with `text_1` = question and `text_2` = the answers (cross-encoders).
    Score,
}

/// An outcome scorer backed by a reward model on an OpenAI-style server.
#[derive(Clone)]
pub struct RewardScorer {
    http: reqwest::Client,
    /// Base URL with the API prefix, e.g. `http://127.0.0.1:8000/v1` (vLLM serves these
    /// endpoints at the root too; give the root then).
    pub url: String,
    pub model: String,
    pub api: RewardApi,
    pub api_key: Option<String>,
    name: String,
}

impl RewardScorer {
    pub fn new(url: impl Into<String>, model: impl Into<String>, api: RewardApi, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder().timeout(timeout).build().map_err(|e| e.to_string())?;
        let model = model.into();
        Ok(Self { http, url: url.into().trim_end_matches('/').to_string(), name: format!("reward:{model}"), model, api, api_key: None })
    }

    fn fail(&self, reason: impl Into<String>) -> ScoreError {
        ScoreError::Failed { scorer: self.name.clone(), reason: reason.into() }
    }
}

/// The last number in a (possibly nested) JSON value.
fn last_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Array(a) => a.iter().rev().find_map(last_number),
        _ => None,
    }
}

#[async_trait]
impl OutcomeScorer for RewardScorer {
    fn name(&self) -> &str {
        &self.name
    }

    async fn score(&self, problem: &Problem, candidates: &[Candidate]) -> Result<Scores, ScoreError> {
        if candidates.is_empty() {
            return Ok(Scores::default());
        }
        let pairs: Vec<String> = candidates.iter().map(|c| format!("{}\n\n{}", problem.question, c.text)).collect();
        let (path, body) = match self.api {
            RewardApi::Pooling => ("/pooling", json!({ "model": self.model, "input": pairs })),
            RewardApi::Classify => ("/classify", json!({ "model": self.model, "input": pairs })),
            RewardApi::Score => (
                "/score",
                json!({ "model": self.model, "text_1": problem.question, "text_2": candidates.iter().map(|c| &c.text).collect::<Vec<_>>() }),
            ),
        };
        let mut req = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| self.fail(format!("{path}: {e}")))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.fail(format!("{path}: reading the body: {e}")))?;
        if !status.is_success() {
            return Err(self.fail(format!("{path} answered {status}: {}", String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>())));
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| self.fail(format!("{path}: invalid JSON: {e}")))?;
        let mut data = v.get("data").and_then(Value::as_array).cloned().ok_or_else(|| self.fail(format!("{path}: no data")))?;
        data.sort_by_key(|d| d.get("index").and_then(Value::as_u64).unwrap_or(0));
        let values = data
            .iter()
            .map(|d| {
                let x = match self.api {
                    RewardApi::Pooling => d.get("data").and_then(last_number),
                    RewardApi::Classify => d.get("probs").and_then(last_number),
                    RewardApi::Score => d.get("score").and_then(Value::as_f64),
                };
                x.ok_or_else(|| self.fail(format!("{path}: an entry without a score: {d}")))
            })
            .collect::<Result<Vec<f64>, _>>()?;
        let prompt = v.pointer("/usage/prompt_tokens").and_then(Value::as_u64).unwrap_or(0);
        let usage = Usage { prompt_computed: prompt, scorer_passes: candidates.len() as u64, ..Usage::default() };
        Ok(Scores { values, usage })
    }
}
