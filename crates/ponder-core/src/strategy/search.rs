//! What the step-level search strategies (beam, DVTS, particle filtering, particle Gibbs,
//! A*) share: their configuration and the bookkeeping of branches in a step session.

use serde::{Deserialize, Serialize};

use crate::generator::{BranchId, FinishReason, SamplingParams, Step, StepParams};
use crate::process::{Aggregate, Partial};

use super::{Candidate, Ctx};

/// How particle filtering draws the next generation of particles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resampling {
    /// N independent draws from the weights.
    #[default]
    Multinomial,
    /// One uniform offset, N evenly spaced points (lower variance).
    Systematic,
}

/// How particle filtering picks the answer among the finished particles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinalPick {
    /// The particle with the highest weight.
    #[default]
    Argmax,
    /// A particle drawn in proportion to its weight (the paper's posterior sample).
    Sample,
}

/// Configuration of the search strategies; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    /// Ends a step (kept in its text). Default: a blank line.
    pub delimiter: String,
    /// Most tokens in one step; a longer step is cut there (and may go on next step).
    pub max_step_tokens: u32,
    /// Beam search and DVTS: children per kept beam (M). Beam keeps N/M beams; DVTS runs
    /// N/M subtrees.
    pub beam_width: usize,
    /// Most steps before every live branch is stopped.
    pub max_steps: usize,
    /// How a branch's step scores become one score.
    pub aggregate: Aggregate,
    /// Particle filtering: resampling scheme.
    pub resampling: Resampling,
    /// Particle filtering: resample only when the effective sample size falls below this
    /// fraction of the particle count (1.0: every step).
    pub ess_threshold: f64,
    /// Particle filtering: softmax temperature on the log-weights.
    pub pf_temperature: f64,
    pub final_pick: FinalPick,
    /// Particle Gibbs: sweeps (each a particle filtering run with a reference trajectory).
    pub sweeps: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            delimiter: "\n\n".into(),
            max_step_tokens: 128,
            beam_width: 4,
            max_steps: 40,
            aggregate: Aggregate::Last,
            resampling: Resampling::Multinomial,
            ess_threshold: 1.0,
            pf_temperature: 1.0,
            final_pick: FinalPick::Argmax,
            sweeps: 2,
        }
    }
}

impl SearchConfig {
    /// Step parameters for a solution capped at `sampling.max_tokens` tokens in total.
    pub fn step_params(&self, sampling: &SamplingParams) -> StepParams {
        StepParams {
            sampling: sampling.clone(),
            delimiter: (!self.delimiter.is_empty()).then(|| self.delimiter.clone()),
            max_step_tokens: self.max_step_tokens.min(sampling.max_tokens).max(1),
            max_total_tokens: sampling.max_tokens.max(1),
        }
    }
}

/// One branch of a search: its steps, their scores and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub branch: BranchId,
    pub steps: Vec<String>,
    pub scores: Vec<f64>,
    pub n_tokens: usize,
    /// Sum of chosen-token logprobs, for the candidate's mean logprob.
    pub logprob_sum: f64,
    /// `Some` once the branch ended (anything but a step end).
    pub finish: Option<FinishReason>,
}

impl Track {
    pub fn new(branch: BranchId) -> Self {
        Self { branch, steps: Vec::new(), scores: Vec::new(), n_tokens: 0, logprob_sum: 0.0, finish: None }
    }

    /// A copy for a forked branch.
    pub fn fork_as(&self, branch: BranchId) -> Self {
        Self { branch, ..self.clone() }
    }

    pub fn push(&mut self, step: Step) {
        self.n_tokens += step.n_tokens;
        self.logprob_sum += step.token_logprobs.iter().map(|&x| f64::from(x)).sum::<f64>();
        if step.is_final() {
            self.finish = Some(step.finish);
        }
        self.steps.push(step.text);
    }

    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    pub fn text(&self) -> String {
        self.steps.concat()
    }

    pub fn partial(&self) -> Partial<'_> {
        Partial { branch: self.branch, steps: &self.steps, finished: self.is_finished() }
    }

    /// The aggregate of its step scores.
    pub fn score(&self, aggregate: Aggregate) -> f64 {
        aggregate.apply(&self.scores)
    }

    /// The candidate this track is, at position `index` of the outcome.
    pub fn candidate(&self, index: usize, aggregate: Aggregate, ctx: &Ctx<'_>) -> Candidate {
        let text = self.text();
        let answer = (ctx.extract)(&text);
        let key = answer.as_deref().map(|a| ctx.equivalence.key(a));
        Candidate {
            index,
            text,
            answer,
            key,
            n_tokens: self.n_tokens,
            mean_logprob: (self.n_tokens > 0).then(|| self.logprob_sum / self.n_tokens as f64),
            finish: self.finish.clone().unwrap_or(FinishReason::Length),
            score: Some(self.score(aggregate)),
        }
    }
}
