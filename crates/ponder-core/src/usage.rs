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
    /// Of `completion`, the tokens generated and then thrown away before their sample or
    /// branch ended on its own (issue 14): samples still running when their stream was
    /// cancelled (`FinishReason::Cancelled`), stopped one by one (`Stopped`) or by a
    /// `ConfidenceStop` (`LowConfidence`), and branches of a step session released while
    /// not ended on their own (their last step ended `StepEnd` or `LowConfidence`, or they
    /// never ran). A forked branch holds its parent's tokens up to the fork: a generated
    /// token counts once, when the last branch holding it is released unended (branches
    /// released together go in the order given). Tokens a `rollback` removes are not
    /// counted. Counted by the backend where it knows them, never estimated: an aborted
    /// HTTP request's tokens are in `unreported` instead.
    #[serde(default)]
    pub dropped: u64,
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
            dropped: self.dropped + o.dropped,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_count_adds_up_and_dropped_defaults_for_old_records() {
        let a = Usage { prompt_computed: 1, prompt_reused: 2, completion: 30, scorer_passes: 4, wall_ms: 5, unreported: 6, thinking: 7, thinking_uncounted: 8, dropped: 9 };
        let b = Usage { completion: 10, dropped: 3, ..Usage::default() };
        let sum = a + b;
        assert_eq!((sum.completion, sum.dropped, sum.thinking, sum.unreported), (40, 12, 7, 6));
        assert_eq!([a, b, b].into_iter().sum::<Usage>().dropped, 15);
        let mut c = a;
        c += b;
        assert_eq!(c, sum);
        // Usage stored before issue 14 has no `dropped`.
        let old: Usage = serde_json::from_str(r#"{"prompt_computed":1,"prompt_reused":0,"completion":2,"scorer_passes":0,"wall_ms":0}"#).unwrap();
        assert_eq!(old.dropped, 0);
        assert_eq!(serde_json::to_value(b).unwrap()["dropped"], 3);
    }
}
