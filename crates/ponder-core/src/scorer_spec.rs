//! [`ScorerSpec`]: a scorer as data, and the one builder every surface uses. Pure scorers
//! are built here; model-backed ones come from a [`ScorerModels`] the caller implements
//! (the CLI loads a PRM or judge model, the gateway has its reward server), so the CLI
//! and the gateway resolve a name the same way, and a process scorer scores whole
//! candidates for best-of-N through [`ProcessAsOutcome`] wherever it is used.

use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::process::{ProcessAsOutcome, ProcessScorer, PromptFn, SelfEval, StepCheck};
use crate::scorer::{CheckerScorer, MeanLogprob, OutcomeScorer};
use crate::{Checker, Generator};

/// A scorer by name; `ponder strategies --json` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScorerSpec {
    /// Mean token log-probability of the candidate (outcome).
    MeanLogprob,
    /// The dataset's own checker against the gold answer (outcome; evaluation only).
    Checker,
    /// The policy model's own p(Yes) that the last step is correct (process).
    SelfEval,
    /// Exact step checker for problems with reference intermediate results (process).
    StepCheck,
    /// A GGUF causal LM as token-probability process reward model (process, model-backed).
    Prm,
    /// An instruct model's p(Yes) as judge (process, model-backed).
    Judge,
    /// A reward model behind an OpenAI-compatible server (outcome, model-backed).
    Reward,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScorerSpecError {
    #[error("unknown scorer {name:?} (known: {known})")]
    Unknown { name: String, known: String },
    /// Needs something this surface does not have; the reason says what.
    #[error("scorer {scorer} {reason}")]
    Unavailable { scorer: String, reason: String },
}

/// The scorers a strategy runs with: an outcome scorer (best-of-N) and, for process
/// scorers, the process scorer itself (search).
#[derive(Clone, Default)]
pub struct Scorers {
    pub outcome: Option<Arc<dyn OutcomeScorer>>,
    pub process: Option<Arc<dyn ProcessScorer>>,
}

/// What the model-backed scorers are made from; each surface implements the ones it has.
pub trait ScorerModels {
    fn prm(&self) -> Result<Arc<dyn ProcessScorer>, String> {
        Err("needs a PRM model (ponder solve/eval --prm-model)".into())
    }
    fn judge(&self) -> Result<Arc<dyn ProcessScorer>, String> {
        Err("needs a judge model (ponder solve/eval --judge-model)".into())
    }
    fn reward(&self) -> Result<Arc<dyn OutcomeScorer>, String> {
        Err("needs a reward model server (`[reward]` in the `ponder serve` config)".into())
    }
}

/// What a scorer may be built with besides models.
pub struct ScorerEnv {
    /// The gold-answer checker, when there is a gold answer.
    pub checker: Option<Arc<dyn Checker>>,
    /// The policy model, for process scorers judging whole candidates.
    pub generator: Arc<dyn Generator>,
    /// How a problem is put to the model (the candidates' own prompt).
    pub prompt: PromptFn,
    /// Self-evaluation's question, when not the default.
    pub self_eval_question: Option<String>,
}

impl ScorerSpec {
    /// Every scorer's name (serde's).
    pub fn names() -> Vec<String> {
        [Self::MeanLogprob, Self::Checker, Self::SelfEval, Self::StepCheck, Self::Prm, Self::Judge, Self::Reward]
            .iter()
            .map(|s| s.name())
            .collect()
    }

    pub fn name(&self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }

    /// Judges partial solutions step by step (the search strategies need one).
    pub fn is_process(&self) -> bool {
        matches!(self, Self::SelfEval | Self::StepCheck | Self::Prm | Self::Judge)
    }

    /// The scorers, the pure ones built here and the others from `models`.
    pub fn build(&self, env: &ScorerEnv, models: &dyn ScorerModels) -> Result<Scorers, ScorerSpecError> {
        let unavailable = |reason: String| ScorerSpecError::Unavailable { scorer: self.name(), reason };
        let process: Arc<dyn ProcessScorer> = match self {
            Self::MeanLogprob => return Ok(Scorers { outcome: Some(Arc::new(MeanLogprob)), process: None }),
            Self::Checker => {
                let checker = env.checker.clone().ok_or_else(|| unavailable("needs a gold answer (a dataset, or --gold)".into()))?;
                return Ok(Scorers { outcome: Some(Arc::new(CheckerScorer(checker))), process: None });
            }
            Self::Reward => return Ok(Scorers { outcome: Some(models.reward().map_err(unavailable)?), process: None }),
            Self::SelfEval => {
                let mut s = SelfEval::default();
                if let Some(q) = &env.self_eval_question {
                    s.question = q.clone();
                }
                Arc::new(s)
            }
            Self::StepCheck => Arc::new(StepCheck),
            Self::Prm => models.prm().map_err(unavailable)?,
            Self::Judge => models.judge().map_err(unavailable)?,
        };
        let outcome = ProcessAsOutcome { scorer: process.clone(), generator: env.generator.clone(), prompt: env.prompt.clone() };
        Ok(Scorers { outcome: Some(Arc::new(outcome)), process: Some(process) })
    }
}

impl FromStr for ScorerSpec {
    type Err = ScorerSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.trim().into()))
            .map_err(|_| ScorerSpecError::Unknown { name: s.into(), known: Self::names().join(", ") })
    }
}

impl std::fmt::Display for ScorerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_known() {
        for name in ScorerSpec::names() {
            assert_eq!(name.parse::<ScorerSpec>().unwrap().to_string(), name);
        }
        let e = "logprob".parse::<ScorerSpec>().unwrap_err().to_string();
        assert_eq!(e, "unknown scorer \"logprob\" (known: mean-logprob, checker, self-eval, step-check, prm, judge, reward)");
    }

    #[test]
    fn pure_scorers_build_here_and_process_ones_also_score_candidates() {
        struct NoModels;
        impl ScorerModels for NoModels {}
        let env = ScorerEnv {
            checker: None,
            generator: Arc::new(crate::testing::ScriptedGenerator::new(Vec::new())),
            prompt: Arc::new(|p| vec![crate::Message::user(p.question.clone())]),
            self_eval_question: None,
        };
        let s = ScorerSpec::SelfEval.build(&env, &NoModels).unwrap();
        assert_eq!(s.outcome.map(|o| o.name().to_string()).as_deref(), Some("self-eval"));
        assert!(s.process.is_some());
        let s = ScorerSpec::MeanLogprob.build(&env, &NoModels).unwrap();
        assert!(s.process.is_none() && s.outcome.is_some());
        let e = ScorerSpec::Reward.build(&env, &NoModels).err().unwrap().to_string();
        assert!(e.starts_with("scorer reward needs a reward model server"), "{e}");
        assert!(ScorerSpec::Checker.build(&env, &NoModels).is_err());
    }
}
