//! Reasoning spans on a real model (issue 14): Qwen2.5-Coder-0.5B, asked to think in
//! `<think>` tags, follows; the engine counts the tokens between the markers, and a
//! thinking budget forces the close marker and the answer prefix into the sample.

use std::sync::OnceLock;

use ponder_core::reasoning::{Thinking, ThinkingMarkers, DEFAULT_ANSWER_PREFIX};
use ponder_core::{Generator, Message, Sample, SampleRequest, SamplingParams, Usage};
use ponder_engine::Engine;

use super::{block, model_path, uncached};

fn qwen() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::load(model_path("qwen2.5-coder-0.5b"), uncached()).expect("Qwen2.5-Coder loads")
    })
}

fn think(budget: Option<u32>) -> SamplingParams {
    SamplingParams {
        max_tokens: 40,
        thinking: Some(Thinking {
            budget,
            ..Thinking::new(ThinkingMarkers::default())
        }),
        ..SamplingParams::greedy()
    }
}

fn one(params: SamplingParams) -> (Sample, Usage) {
    let messages =
        vec![Message::user("What is 17*23? Reply in the form: <think>your step-by-step reasoning</think> then the answer.")];
    let req = SampleRequest {
        messages,
        n: 1,
        params,
        first_index: 0,
    };
    let got = block(async { qwen().sample(req).await.unwrap().collect().await.unwrap() });
    (
        got.samples.into_iter().next().expect("one sample"),
        got.usage,
    )
}

/// Tokens of `text` by the model's own tokenizer: the independent count.
fn retokenized(text: &str) -> usize {
    qwen()
        .model()
        .vocab()
        .tokenize(text.as_bytes(), false, false)
        .len()
}

/// The text between the first open marker and the first close marker after it.
fn between_markers(text: &str) -> &str {
    let start = text.find("<think>").expect("the model opened a span") + "<think>".len();
    let end = start + text[start..].find("</think>").expect("the span is closed");
    &text[start..end]
}

#[test]
fn thinking_tokens_are_the_tokens_between_the_markers() {
    let (s, usage) = one(think(None));
    let thought = between_markers(&s.text);
    assert!(!thought.is_empty(), "{:?}", s.text);
    assert_eq!(s.n_thinking, Some(retokenized(thought)), "{:?}", s.text);
    assert_eq!(usage.thinking, s.n_thinking.unwrap() as u64);
    assert!(usage.thinking < usage.completion && usage.thinking_uncounted == 0);
}

#[test]
fn a_thinking_budget_of_8_forces_the_close_and_the_model_answers() {
    let (free, free_usage) = one(think(None));
    let (s, usage) = one(think(Some(8)));
    assert!(
        free.n_thinking.unwrap() > 8,
        "the unbudgeted sample thinks longer: {:?}",
        free.text
    );
    assert_eq!(s.n_thinking, Some(8), "{:?}", s.text);
    let forced = format!("</think>{DEFAULT_ANSWER_PREFIX}");
    let (before, answer) = s
        .text
        .split_once(&forced)
        .expect("the forced close and prefix are in the text");
    assert!(
        !answer.trim().is_empty(),
        "the model answers after the prefix: {:?}",
        s.text
    );
    // The budget may cut a word: what was thought is exactly the 8 generated tokens.
    assert_eq!(
        retokenized(between_markers(&format!("{before}</think>"))),
        8,
        "{:?}",
        s.text
    );
    // Forced tokens are fed as prompt, never generated: the same prompt (no cache) plus them.
    let n_forced = retokenized(&forced) as u64;
    assert_eq!(usage.prompt_computed, free_usage.prompt_computed + n_forced);
    assert_eq!(usage.completion, s.n_tokens as u64);
    assert_eq!(
        s.token_bytes.concat().len() + forced.len(),
        s.text.len(),
        "forced text is in no token"
    );
}
