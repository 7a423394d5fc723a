//! Sequential revision (Snell et al. 2024, "Scaling LLM Test-Time Compute Optimally…", §6):
//! the model rewrites its previous answer, given it, for `n` rounds, on top of any base
//! strategy. Budget unit: n revisions, plus the base's own budget.
//! 1 run the base spec (default: one sample) and take its chosen answer
//! 2 show the model the conversation with that answer as its own turn, then ask it to
//!   check and correct it; its reply is the next answer in the chain
//! 3 repeat n times; answer with the last revision, a majority over the chain (`vote`,
//!   which Snell et al. found better than the last on their revision model), or the chain
//!   member the outcome scorer rates highest (`best`, their verifier-selected variant).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::layer::{self, Layer, non_empty, after_base, spec_or_shorthand, validate_base};
use super::spec::{check_n, ConfigError, Needs, StrategyConfig, StrategySpec};
use super::{best_index, candidate, decided, position_of, score, tally, Candidate, Ctx, Outcome, Strategy, StrategyError};
use crate::generator::{SampleRequest, SamplingParams};
use crate::{Message, Problem, Usage};

/// Which member of the revision chain answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keep {
    /// The last revision.
    #[default]
    Last,
    /// A majority vote over the base's answer and every revision.
    Vote,
    /// The member the outcome scorer rates highest.
    Best,
}

impl Keep {
    /// What a chain on a base with `base` needs: a scorer too, to keep the best.
    pub(super) fn needs(self, base: Needs) -> Needs {
        Needs { scorer: base.scorer || self == Keep::Best, ..base }
    }
}

/// The request for each revision: after the previous answer, as the user's turn.
pub const REVISE_PROMPT: &str = "Check your answer above step by step. If you find a mistake, correct it. \
    Then give the complete final answer again, in the same format.";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviseConfig {
    /// Revision rounds.
    pub n: usize,
    /// The strategy whose answer the first revision starts from (a spec or its shorthand).
    #[serde(deserialize_with = "spec_or_shorthand")]
    pub base: Box<StrategySpec>,
    pub keep: Keep,
    /// What the model is asked after each previous answer.
    pub prompt: String,
}

impl Default for ReviseConfig {
    fn default() -> Self {
        Self { n: 2, base: Box::new(StrategySpec::default_of("single").expect("single exists")), keep: Keep::Last, prompt: REVISE_PROMPT.into() }
    }
}

impl StrategyConfig for ReviseConfig {
    fn name(&self) -> &'static str {
        "revise"
    }
    fn about(&self) -> &'static str {
        "sequential revision (Snell et al. 2024): the model corrects its previous answer n times, on top of a base spec"
    }
    fn budget(&self) -> usize {
        self.n + self.base.budget()
    }
    fn budget_unit(&self) -> &'static str {
        "revisions (n) + the base's budget"
    }
    fn needs(&self) -> Needs {
        self.keep.needs(self.base.needs())
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)?;
        non_empty("prompt", &self.prompt)?;
        validate_base(&self.base, self.name(), "n")
    }
    fn base(&self) -> Option<&StrategySpec> {
        Some(&self.base)
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        layer::build(self, &self.base, sampling)
    }
}

pub type Revise = Layer<ReviseConfig>;

#[async_trait]
impl Strategy for Layer<ReviseConfig> {
    fn name(&self) -> &str {
        "revise"
    }
    fn budget(&self) -> usize {
        self.config.budget()
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let base = self.base.solve(problem, messages, ctx).await?;
        let mut chain = Chain::start(base, self.base.budget())?;
        for round in 0..self.config.n {
            let mut conversation = messages.to_vec();
            conversation.push(Message::assistant(chain.last().text.clone()));
            conversation.push(Message::user(self.config.prompt.clone()));
            let req = SampleRequest { messages: conversation, n: 1, params: self.sampling.clone(), first_index: chain.next + round };
            // A failed revision ends the chain: what it has is kept.
            if !chain.extend(req, ctx).await? {
                break;
            }
        }
        chain.decide(self.name(), self.config.keep, problem, ctx).await
    }
}

/// A revision chain on top of a base outcome: the base's chosen answer, then each
/// revision (revise and critique grow it, and answer from it by [`Keep`]).
pub(super) struct Chain {
    base: Outcome,
    members: Vec<Candidate>,
    /// The first sample index after the base's.
    pub next: usize,
    usage: Usage,
    n_failed: usize,
}

impl Chain {
    /// The chain holding the base's chosen answer (else its first candidate).
    pub fn start(base: Outcome, base_budget: usize) -> Result<Chain, StrategyError> {
        let first = base.chosen.or((!base.candidates.is_empty()).then_some(0));
        let Some(first) = first.map(|i| base.candidates[i].clone()) else {
            return Err(StrategyError::InsufficientCandidates { attempted: base_budget, why: None });
        };
        let next = after_base(&base, base_budget);
        Ok(Chain { usage: base.usage, n_failed: base.n_failed, members: vec![first], next, base })
    }

    pub fn last(&self) -> &Candidate {
        self.members.last().expect("the chain starts with the base's answer")
    }

    /// Draws one sample for `req`, its usage counted; returns whether it came (it is then
    /// the chain's newest member, when `keep`).
    pub async fn draw(&mut self, req: SampleRequest, ctx: &Ctx<'_>) -> Result<Option<Candidate>, StrategyError> {
        let got = ctx.generator.sample(req).await?.collect().await?;
        self.usage += got.usage;
        self.n_failed += got.failures.len();
        Ok(got.samples.into_iter().next().map(|s| candidate(s, ctx)))
    }

    /// Draws the next revision into the chain; false when it failed.
    pub async fn extend(&mut self, req: SampleRequest, ctx: &Ctx<'_>) -> Result<bool, StrategyError> {
        let got = self.draw(req, ctx).await?;
        let came = got.is_some();
        self.members.extend(got);
        Ok(came)
    }

    /// The outcome: every sample stays (the base's, its chosen one heading the chain, and
    /// the revisions); `keep` picks the member that answers.
    pub async fn decide(self, name: &str, keep: Keep, problem: &Problem, ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let Chain { base, members: mut chain, mut usage, n_failed, .. } = self;
        if keep == Keep::Best {
            usage += score(problem, &mut chain, ctx, name).await?;
        }
        let (votes, speaker) = match keep {
            Keep::Last => (Vec::new(), chain.last().map(|c| c.index)),
            Keep::Vote => {
                let votes = tally(&chain, false);
                let first = votes.first().map(|v| v.first_index);
                (votes, first.or(chain.last().map(|c| c.index)))
            }
            Keep::Best => (Vec::new(), best_index(&chain).map(|i| chain[i].index)),
        };
        let (mut candidates, counts) = (base.candidates, base.counts);
        let mut chain = chain.into_iter();
        let head = chain.next().expect("the chain starts with the base's answer");
        if let Some(p) = position_of(&candidates, head.index) {
            candidates[p] = head; // scored, under keep = best
        }
        candidates.extend(chain);
        let chosen = speaker.and_then(|i| position_of(&candidates, i));
        Ok(Outcome { counts, ..decided(name, candidates, votes, chosen, (usage, n_failed, false)) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::executor::block_on;

    use super::*;
    use crate::scorer::CheckerScorer;
    use crate::testing::{answer_ctx, problem_42, Choice, ExactAnswers, ScriptedGenerator};
    use crate::GoldChecker;

    /// Base answers "answer: 41"; each revision of "answer: N" writes "so answer: N", and
    /// of "so answer: N" writes "answer: N+1" — but only when asked with the revise prompt
    /// after the previous answer as the model's own turn.
    fn reviser() -> ScriptedGenerator {
        ScriptedGenerator::new(vec![Choice::new("answer: 41", 1.0, -1.0)]).with_reply(|m: &[Message]| {
            let [.., prev, ask] = m else { return None };
            if ask.content != REVISE_PROMPT || prev.role != crate::Role::Assistant {
                return None;
            }
            let n: i64 = prev.content.rsplit_once("answer: ")?.1.parse().ok()?;
            Some(if prev.content.starts_with("so ") { format!("answer: {}", n + 1) } else { format!("so answer: {n}") })
        })
    }

    fn solve(spec: &str, ctx: &Ctx<'_>) -> Outcome {
        let spec: StrategySpec = spec.parse().unwrap();
        let strategy = spec.build(SamplingParams::default()).unwrap();
        block_on(strategy.solve(&problem_42(), &[Message::user("q")], ctx)).unwrap()
    }

    #[test]
    fn each_round_revises_the_previous_answer_and_the_last_one_answers() {
        let g = reviser();
        let o = solve("revise@3", &answer_ctx(&g));
        let texts: Vec<&str> = o.candidates.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["answer: 41", "so answer: 41", "answer: 42", "so answer: 42"]);
        assert_eq!((o.answer.as_deref(), o.chosen), (Some("42"), Some(3)));
        let indices: Vec<usize> = o.candidates.iter().map(|c| c.index).collect();
        assert_eq!(indices, [0, 1, 2, 3], "revisions are samples after the base's");
        // Usage is every layer's: one base sample and three revisions, word-tokens each.
        assert_eq!(o.usage.completion, 2 + 3 + 2 + 3);
        assert_eq!(g.started(), 4);
    }

    #[test]
    fn keep_vote_takes_the_chains_majority_and_keep_best_the_scorers_favourite() {
        let g = reviser();
        let o = solve(r#"revise@2{keep = "vote"}"#, &answer_ctx(&g));
        assert_eq!(o.answer.as_deref(), Some("41"), "41, 41, 42: {o:?}");
        assert_eq!((o.votes[0].count, o.votes[1].count), (2, 1));

        let checker = CheckerScorer(Arc::new(GoldChecker(ExactAnswers)));
        let ctx = Ctx { scorer: Some(&checker), ..answer_ctx(&g) };
        let o = solve(r#"revise@2{keep = "best"}"#, &ctx);
        assert_eq!(o.answer.as_deref(), Some("42"), "the gold answer scores 1: {o:?}");
        let scores: Vec<Option<f64>> = o.candidates.iter().map(|c| c.score).collect();
        assert_eq!(scores, [Some(0.0), Some(0.0), Some(1.0)], "every chain member scored");
        let e = block_on(r#"revise@2{keep = "best"}"#.parse::<StrategySpec>().unwrap().build(SamplingParams::default()).unwrap().solve(
            &problem_42(),
            &[Message::user("q")],
            &answer_ctx(&g),
        ))
        .unwrap_err();
        assert!(matches!(e, StrategyError::NeedsScorer(_)), "{e}");
    }

    #[test]
    fn the_base_may_be_any_spec_and_its_samples_stay_in_the_outcome() {
        let g = reviser();
        let o = solve(r#"revise@1{base = "sc@3"}"#, &answer_ctx(&g));
        assert_eq!(o.candidates.len(), 4, "three base samples, one revision");
        assert_eq!(o.candidates[3].index, 3);
        assert_eq!(o.answer.as_deref(), Some("41"));
        assert_eq!(o.candidates[o.chosen.unwrap()].text, "so answer: 41");
        let spec: StrategySpec = r#"revise@2{base = "sc@3"}"#.parse().unwrap();
        assert_eq!(spec.budget(), 5);
        let round_trip: StrategySpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(round_trip, spec);
    }

    #[test]
    fn bad_bases_are_named() {
        for (bad, field) in [(r#"revise{base = {strategy = "sc", n = 0}}"#, "base: budget"), (r#"revise{base = "revise"}"#, "base")] {
            let e = bad.parse::<StrategySpec>().unwrap_err().to_string();
            assert!(e.contains(field), "{bad}: {e}");
        }
        let e = r#"revise{prompt = " "}"#.parse::<StrategySpec>().unwrap_err().to_string();
        assert!(e.contains("prompt"), "{e}");
    }
}
