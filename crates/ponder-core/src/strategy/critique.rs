//! Critique and refine (Self-Refine, Madaan et al. 2023, arXiv:2303.17651; optillm's
//! critique loop; the critic of Archon, Saad-Falcon et al. 2024, arXiv:2409.15254): a
//! critic writes feedback on the current answer, the generator revises it with that
//! feedback, for `n` rounds on top of any base strategy. Budget unit: n rounds of two
//! samples (a critique and a revision), plus the base's own budget.
//! 1 run the base spec (default: one sample) and take its chosen answer
//! 2 the critic, under its own system prompt, reads the conversation with that answer as
//!   the model's turn and writes feedback (no candidate: its tokens count in the usage)
//! 3 the generator, shown its answer and the feedback, writes a corrected answer: the next
//!   answer in the chain
//! 4 repeat n times; answer with the last revision, a vote over the chain or the member
//!   the outcome scorer rates highest, as revise does (`keep`).
//!
//! The critic is the same generator for now; its system prompt sets its requests apart.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::layer::{self, Layer, non_empty, spec_or_shorthand, under_system, validate_base};
use super::revise::{Chain, Keep};
use super::spec::{check_n, ConfigError, Needs, StrategyConfig, StrategySpec};
use super::{Ctx, Outcome, Strategy, StrategyError};
use crate::generator::{SampleRequest, SamplingParams};
use crate::{Message, Problem};

/// The critic's system prompt: what sets its requests apart from the generator's.
pub const CRITIC_SYSTEM: &str = "You are a strict reviewer. You do not solve the problem yourself: \
    you check a proposed answer and point out every mistake in it.";

/// What the critic is asked, after the answer it reviews.
pub const CRITIC_PROMPT: &str = "Review the answer above step by step. List each mistake and how to fix it. \
    If it is correct, say so.";

/// What the generator is asked after the feedback.
pub const CRITIQUE_REVISE_PROMPT: &str = "Use the feedback to correct your answer. \
    Then give the complete final answer again, in the same format.";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CritiqueConfig {
    /// Critique-and-revise rounds.
    pub n: usize,
    /// The strategy whose answer the first critique reads (a spec or its shorthand).
    #[serde(deserialize_with = "spec_or_shorthand")]
    pub base: Box<StrategySpec>,
    pub keep: Keep,
    /// The critic's system prompt.
    pub critic_system: String,
    /// What the critic is asked after the answer.
    pub critic_prompt: String,
    /// What the generator is asked after the feedback.
    pub prompt: String,
}

impl Default for CritiqueConfig {
    fn default() -> Self {
        Self {
            n: 1,
            base: Box::new(StrategySpec::default_of("single").expect("single exists")),
            keep: Keep::Last,
            critic_system: CRITIC_SYSTEM.into(),
            critic_prompt: CRITIC_PROMPT.into(),
            prompt: CRITIQUE_REVISE_PROMPT.into(),
        }
    }
}

impl StrategyConfig for CritiqueConfig {
    fn name(&self) -> &'static str {
        "critique"
    }
    fn about(&self) -> &'static str {
        "critique and refine (Self-Refine; Archon's critic): a critic reviews the answer, the model revises with its feedback, n rounds on a base spec"
    }
    fn budget(&self) -> usize {
        2 * self.n + self.base.budget()
    }
    fn budget_unit(&self) -> &'static str {
        "rounds (n) of a critique and a revision + the base's budget"
    }
    fn needs(&self) -> Needs {
        self.keep.needs(self.base.needs())
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)?;
        for (field, text) in [("critic_system", &self.critic_system), ("critic_prompt", &self.critic_prompt), ("prompt", &self.prompt)] {
            non_empty(field, text)?;
        }
        validate_base(&self.base, self.name(), "n")
    }
    fn base(&self) -> Option<&StrategySpec> {
        Some(&self.base)
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        layer::build(self, &self.base, sampling)
    }
}

pub type Critique = Layer<CritiqueConfig>;

impl Layer<CritiqueConfig> {
    /// Step 2: the critic's request on `answer`.
    fn critic_request(&self, messages: &[Message], answer: &str, first_index: usize) -> SampleRequest {
        let mut conversation = messages.to_vec();
        conversation.push(Message::assistant(answer));
        conversation.push(Message::user(self.config.critic_prompt.clone()));
        let messages = under_system(&self.config.critic_system, &conversation);
        SampleRequest { messages, n: 1, params: self.sampling.clone(), first_index }
    }

    /// Step 3: the generator's request to revise `answer` given `feedback`.
    fn revise_request(&self, messages: &[Message], answer: &str, feedback: &str, first_index: usize) -> SampleRequest {
        let mut conversation = messages.to_vec();
        conversation.push(Message::assistant(answer));
        conversation.push(Message::user(format!("A reviewer's feedback on your answer:\n\n{}\n\n{}", feedback.trim(), self.config.prompt)));
        SampleRequest { messages: conversation, n: 1, params: self.sampling.clone(), first_index }
    }
}

#[async_trait]
impl Strategy for Layer<CritiqueConfig> {
    fn name(&self) -> &str {
        "critique"
    }
    fn budget(&self) -> usize {
        self.config.budget()
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let base = self.base.solve(problem, messages, ctx).await?;
        let mut chain = Chain::start(base, self.base.budget())?;
        let mut critiques = 0;
        for round in 0..self.config.n {
            // The critic's sample, then the revision's: two indices a round.
            let index = chain.next + 2 * round;
            let answer = chain.last().text.clone();
            // A failed critique or revision ends the chain: what it has is kept.
            let Some(feedback) = chain.draw(self.critic_request(messages, &answer, index), ctx).await? else { break };
            critiques += 1;
            if !chain.extend(self.revise_request(messages, &answer, &feedback.text, index + 1), ctx).await? {
                break;
            }
        }
        let mut outcome = chain.decide(self.name(), self.config.keep, problem, ctx).await?;
        *outcome.counts.entry("critiques".into()).or_default() += critiques;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::executor::block_on;

    use super::*;
    use crate::testing::{answer_ctx, problem_42, Choice, ScriptedGenerator};
    use crate::Role;

    /// The base answers "answer: 41". The critic (recognised by its system prompt) says
    /// "add one to N"; the reviser, shown that feedback, answers N+1, and without feedback
    /// it answers nothing it recognises. Every request's kind is logged in order.
    fn critic_and_reviser(log: Arc<Mutex<Vec<String>>>) -> ScriptedGenerator {
        ScriptedGenerator::new(vec![Choice::new("answer: 41", 1.0, -1.0)]).with_reply(move |m: &[Message]| {
            let [.., prev, ask] = m else { return None };
            let n: i64 = prev.content.rsplit_once("answer: ")?.1.parse().ok()?;
            if m[0].role == Role::System && m[0].content.starts_with(CRITIC_SYSTEM) && ask.content == CRITIC_PROMPT {
                log.lock().unwrap().push("critic".into());
                return Some(format!("wrong: add one to {n}"));
            }
            let feedback = ask.content.strip_suffix(CRITIQUE_REVISE_PROMPT)?;
            let m: i64 = feedback.rsplit_once("add one to ")?.1.trim().parse().ok()?;
            log.lock().unwrap().push(format!("revise {m}"));
            Some(format!("answer: {}", m + 1))
        })
    }

    fn solve(spec: &str, ctx: &Ctx<'_>) -> Outcome {
        let spec: StrategySpec = spec.parse().unwrap();
        block_on(spec.build(SamplingParams::default()).unwrap().solve(&problem_42(), &[Message::user("q")], ctx)).unwrap()
    }

    #[test]
    fn the_critic_speaks_first_and_its_feedback_reaches_the_reviser() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let g = critic_and_reviser(log.clone());
        let o = solve("critique@2", &answer_ctx(&g));
        assert_eq!(*log.lock().unwrap(), ["critic", "revise 41", "critic", "revise 42"]);
        let texts: Vec<&str> = o.candidates.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["answer: 41", "answer: 42", "answer: 43"], "critiques are no candidates");
        assert_eq!((o.answer.as_deref(), o.chosen), (Some("43"), Some(2)));
        let indices: Vec<usize> = o.candidates.iter().map(|c| c.index).collect();
        assert_eq!(indices, [0, 2, 4], "a critique and a revision per round, after the base's sample");
        // Usage is every call's: the base, two critiques of five words, two revisions.
        assert_eq!(o.usage.completion, 2 + 2 * 5 + 2 * 2);
        assert_eq!((g.started(), o.counts["critiques"], o.n_failed), (5, 2, 0));
        assert_eq!(solve("critique@2", &answer_ctx(&g)).usage, o.usage, "deterministic");
    }

    #[test]
    fn keep_vote_counts_the_chain_and_a_failed_critique_ends_it() {
        let g = critic_and_reviser(Arc::default());
        let o = solve(r#"critique@2{keep = "vote", base = "sc@3"}"#, &answer_ctx(&g));
        assert_eq!(o.candidates.len(), 5, "three base samples, two revisions");
        let counts: Vec<(&str, usize)> = o.votes.iter().map(|v| (v.answer.as_str(), v.count)).collect();
        assert_eq!(counts, [("41", 1), ("42", 1), ("43", 1)], "the vote is over the chain, not the base's samples");
        assert_eq!(o.answer.as_deref(), Some("41"), "a tie goes to the earliest");

        // The first critique (index 1, after the one base sample) fails: only the base answers.
        let g = critic_and_reviser(Arc::default()).failing(vec![1]);
        let o = solve("critique@2", &answer_ctx(&g));
        assert_eq!((o.candidates.len(), o.n_failed, o.counts["critiques"]), (1, 1, 0));
        assert_eq!(o.answer.as_deref(), Some("41"));
    }

    #[test]
    fn budget_and_bad_fields_are_named() {
        let spec: StrategySpec = r#"critique@3{base = "sc@4"}"#.parse().unwrap();
        assert_eq!(spec.budget(), 2 * 3 + 4);
        assert_eq!(spec.to_string(), r#"critique@3{ base = "sc@4" }"#);
        for (bad, field) in [(r#"critique{critic_prompt = ""}"#, "critic_prompt"), (r#"critique{base = "critique"}"#, "base"), ("critique@0", "n")] {
            let e = bad.parse::<StrategySpec>().unwrap_err();
            assert!(matches!(&e, StrategyError::InvalidConfig { field: f, .. } if f == field), "{bad}: {e}");
        }
    }
}
