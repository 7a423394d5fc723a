//! Exact cost accounting: every call reports what it computed, never an estimate.

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

/// What a call cost. Counted by the backend, summed by strategies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt (or re-fed) tokens the model actually computed.
    pub prompt_computed: u64,
    /// Prompt tokens served from cache or shared KV cells instead of being computed.
    pub prompt_reused: u64,
    /// Tokens generated (sampled), including those of samples cancelled midway.
    pub completion: u64,
    /// Scorer forward passes (reward-model or self-evaluation calls).
    pub scorer_passes: u64,
    /// Wall-clock milliseconds of the call.
    pub wall_ms: u64,
    /// Calls cancelled before their server reported what they computed (HTTP backends:
    /// an aborted request has no `usage`). Their tokens are in no count above, which are
    /// then lower bounds; 0 means every count is exact. Counted, never estimated.
    #[serde(default)]
    pub unreported: u64,
    /// Of `completion`, the tokens generated inside reasoning spans (issue 14), for the
    /// samples whose request named thinking markers; 0 without markers.
    #[serde(default)]
    pub thinking: u64,
    /// Samples with thinking markers whose thinking tokens the backend could not count
    /// (a server that returns no tokens): `thinking` is then a lower bound. Never guessed.
    #[serde(default)]
    pub thinking_uncounted: u64,
}

impl Usage {
    /// All tokens the model computed: prompt computed plus completion.
    pub fn computed_tokens(&self) -> u64 {
        self.prompt_computed + self.completion
    }

    /// Every count is exact (no call went unreported).
    pub fn is_exact(&self) -> bool {
        self.unreported == 0
    }

    /// Sum of two usages of calls that ran one after the other (wall times add).
    pub fn then(self, other: Usage) -> Usage {
        self + other
    }
}

impl Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            prompt_computed: self.prompt_computed + o.prompt_computed,
            prompt_reused: self.prompt_reused + o.prompt_reused,
            completion: self.completion + o.completion,
            scorer_passes: self.scorer_passes + o.scorer_passes,
            wall_ms: self.wall_ms + o.wall_ms,
            unreported: self.unreported + o.unreported,
            thinking: self.thinking + o.thinking,
            thinking_uncounted: self.thinking_uncounted + o.thinking_uncounted,
        }
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        *self = *self + o;
    }
}

impl std::iter::Sum for Usage {
    fn sum<I: Iterator<Item = Usage>>(iter: I) -> Usage {
        iter.fold(Usage::default(), Add::add)
    }
}
