//! Reasoning spans: a reasoning model writes its thinking between markers
//! (`<think>`…`</think>`) and its answer after them (issue 14, item 4). Extraction and
//! voting read only the answer; usage counts the thinking tokens apart; a thinking budget
//! ends an open span at T tokens by forcing the close marker and an answer prefix.
//!
//! One rule splits a text, [`ThinkingMarkers::spans`]:
//! - no marker at all: no thinking, the whole text is the answer;
//! - the answer is the text after the last close marker; a text that ends inside an
//!   unclosed span has no answer (the model never got to it);
//! - thinking is every span's content; an open marker inside a span changes nothing;
//! - a close marker outside any span closes a span that began where the previous span
//!   ended, or at the start (templates that put the open marker in the prompt);
//! - text before the first open marker, when an open marker comes first, is neither.
//!
//! Markers are whole strings; a marker split across tokens is found once its last byte
//! arrives. The budget may end a span mid-word: the forced close goes in where it stands.

use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{GenError, Sample, SamplingParams, Usage};

/// What the model writes around its thinking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThinkingMarkers {
    pub open: String,
    pub close: String,
}

impl Default for ThinkingMarkers {
    fn default() -> Self {
        Self {
            open: "<think>".into(),
            close: "</think>".into(),
        }
    }
}

/// The answer prefix forced after the close marker when a thinking budget runs out: it
/// makes the model state its answer at once, in words the default extractor reads
/// ("final answer: X").
pub const DEFAULT_ANSWER_PREFIX: &str = "\n\nFinal answer: ";

/// A text cut at its reasoning spans (byte ranges into it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spans {
    /// Content of each span, markers excluded, in order.
    pub thinking: Vec<Range<usize>>,
    /// The text after the last close marker; `None` when the text ends inside a span.
    pub answer: Option<Range<usize>>,
}

/// A text's thinking and answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split<'a> {
    /// Every span's content, concatenated.
    pub thinking: String,
    /// `None` when the text ends inside a span.
    pub answer: Option<&'a str>,
}

impl ThinkingMarkers {
    /// `<think>`/`</think>` when a chat template writes them (Qwen3, DeepSeek-R1 and the
    /// models tuned after them), else `None`.
    pub fn detect(template: &str) -> Option<ThinkingMarkers> {
        let m = ThinkingMarkers::default();
        (template.contains(&m.open) && template.contains(&m.close)).then_some(m)
    }

    /// The spans of `text` (see the module's rules).
    pub fn spans(&self, text: &str) -> Spans {
        self.spans_from(text.as_bytes(), false)
    }

    /// The spans of a generated text whose prompt ended inside a span when
    /// `starts_inside` (its first bytes are thinking until a close marker).
    pub fn spans_from(&self, text: &[u8], starts_inside: bool) -> Spans {
        let (open, close) = (self.open.as_bytes(), self.close.as_bytes());
        let mut thinking = Vec::new();
        // Start of the open span, if inside one; end of the last marker outside.
        let mut inside = starts_inside.then_some(0);
        let mut last_end = 0;
        let mut i = 0;
        while i < text.len() {
            let rest = &text[i..];
            if !close.is_empty() && rest.starts_with(close) {
                let start = inside.take().unwrap_or(last_end);
                if i > start {
                    thinking.push(start..i);
                }
                i += close.len();
                last_end = i;
            } else if inside.is_none() && !open.is_empty() && rest.starts_with(open) {
                i += open.len();
                inside = Some(i);
            } else {
                i += 1;
            }
        }
        let answer = match inside {
            Some(start) => {
                if text.len() > start {
                    thinking.push(start..text.len());
                }
                None
            }
            None => Some(last_end..text.len()),
        };
        Spans { thinking, answer }
    }

    /// `text`'s thinking and answer.
    pub fn split<'a>(&self, text: &'a str) -> Split<'a> {
        let spans = self.spans(text);
        // Spans start and end at marker boundaries or the ends of the text, so they fall on
        // character boundaries.
        let thinking = spans.thinking.iter().map(|r| &text[r.clone()]).collect();
        Split {
            thinking,
            answer: spans.answer.map(|r| &text[r]),
        }
    }

    /// The answer part of `text`: `None` when it ends inside a span.
    pub fn answer<'a>(&self, text: &'a str) -> Option<&'a str> {
        self.spans(text).answer.map(|r| &text[r])
    }

    /// Whether `prompt` leaves the model inside a span (its template opened one).
    pub fn ends_inside(&self, prompt: &str) -> bool {
        self.spans(prompt).answer.is_none()
    }

    /// Generated tokens that are thinking: those with a byte inside a span's content.
    /// `tokens` are the byte ranges of the generated tokens in `text` (forced text, which
    /// no token covers, may lie between them).
    pub fn thinking_tokens(
        &self,
        text: &[u8],
        tokens: &[Range<usize>],
        starts_inside: bool,
    ) -> usize {
        let spans = self.spans_from(text, starts_inside).thinking;
        tokens
            .iter()
            .filter(|t| spans.iter().any(|s| t.start < s.end && s.start < t.end))
            .count()
    }
}

/// `--think-markers OPEN,CLOSE`; [`MarkersChoice`] also reads `none` and `auto`.
impl FromStr for ThinkingMarkers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(',') {
            Some((open, close)) if !open.is_empty() && !close.is_empty() && !close.contains(',') => {
                Ok(ThinkingMarkers { open: open.into(), close: close.into() })
            }
            _ => Err(format!("thinking markers must be OPEN,CLOSE (e.g. '<think>,</think>'), none or auto, got {s:?}")),
        }
    }
}

impl std::fmt::Display for ThinkingMarkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{}", self.open, self.close)
    }
}

/// Where a run's markers come from: the model's chat template (`auto`), nowhere
/// (`none`), or the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MarkersChoice {
    #[default]
    Auto,
    None,
    Given(ThinkingMarkers),
}

impl MarkersChoice {
    /// The markers to use, given what the model's template says (`detected`).
    pub fn resolve(&self, detected: Option<ThinkingMarkers>) -> Option<ThinkingMarkers> {
        match self {
            MarkersChoice::Auto => detected,
            MarkersChoice::None => None,
            MarkersChoice::Given(m) => Some(m.clone()),
        }
    }
}

impl FromStr for MarkersChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(MarkersChoice::Auto),
            "none" => Ok(MarkersChoice::None),
            other => other.parse().map(MarkersChoice::Given),
        }
    }
}

/// What a user asked of reasoning spans (`--think-markers`, `--thinking-budget`,
/// `--answer-prefix`; the gateway's `ponder.think_markers`, `ponder.thinking_budget`,
/// `ponder.answer_prefix`), before the model is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThinkingRequest {
    pub markers: MarkersChoice,
    pub budget: Option<u32>,
    pub answer_prefix: Option<String>,
}

impl ThinkingRequest {
    /// What samples are asked to do, given the markers the model's template writes.
    pub fn resolve(&self, detected: Option<ThinkingMarkers>) -> Result<Option<Thinking>, String> {
        let Some(markers) = self.markers.resolve(detected) else {
            if self.budget.is_some() {
                return Err("a thinking budget needs reasoning markers: the model's chat template writes none, so name them (OPEN,CLOSE)".into());
            }
            return Ok(None);
        };
        let t = Thinking {
            budget: self.budget,
            answer_prefix: self
                .answer_prefix
                .clone()
                .unwrap_or_else(default_answer_prefix),
            ..Thinking::new(markers)
        };
        t.validate()?;
        Ok(Some(t))
    }
}

/// What a sample request asks of reasoning spans: count the thinking tokens between
/// `markers`, and with a `budget`, end a span after that many tokens by forcing
/// `markers.close` and `answer_prefix` and letting the model answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thinking {
    pub markers: ThinkingMarkers,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u32>,
    #[serde(default = "default_answer_prefix")]
    pub answer_prefix: String,
}

/// For a backend that reports tokens but cannot follow spans while generating (HTTP, raw
/// completions): the sample's thinking tokens from its token bytes, into the sample and
/// into `usage` (`thinking_uncounted` where they cannot be told).
pub fn count_reported(params: &SamplingParams, sample: &mut Sample, usage: &mut Usage) {
    let Some(t) = &params.thinking else { return };
    sample.n_thinking = t.count_reported(&sample.token_bytes);
    match sample.n_thinking {
        Some(n) => usage.thinking += n as u64,
        None => usage.thinking_uncounted += 1,
    }
}

/// Refuses a thinking budget on a backend that cannot force text into a running sample.
pub fn refuse_budget(params: &SamplingParams, backend: &str) -> Result<(), GenError> {
    match params.thinking.as_ref().and_then(|t| t.budget) {
        Some(_) => Err(GenError::Unsupported(format!(
            "a thinking budget on {backend} (it forces the close marker into a running sample; the in-process engine's chat path does)"
        ))),
        None => Ok(()),
    }
}

fn default_answer_prefix() -> String {
    DEFAULT_ANSWER_PREFIX.into()
}

impl Thinking {
    pub fn new(markers: ThinkingMarkers) -> Self {
        Thinking {
            markers,
            budget: None,
            answer_prefix: default_answer_prefix(),
        }
    }

    /// The text a budget forces into a sample: the close marker, then the answer prefix.
    pub fn forced_text(&self) -> String {
        format!("{}{}", self.markers.close, self.answer_prefix)
    }

    /// The thinking tokens of a sample whose backend reports its tokens' bytes but cannot
    /// follow spans while generating (HTTP). `None` — uncounted, not guessed — without
    /// token bytes, or when no marker appears: the prompt, rendered by the server, may
    /// have opened a span that the whole sample is then inside.
    pub fn count_reported(&self, token_bytes: &[Vec<u8>]) -> Option<usize> {
        let text = token_bytes.concat();
        let (open, close) = (self.markers.open.as_bytes(), self.markers.close.as_bytes());
        let has = |m: &[u8]| text.windows(m.len()).any(|w| w == m);
        if token_bytes.is_empty() || !(has(open) || has(close)) {
            return None;
        }
        let mut at = 0;
        let ranges: Vec<Range<usize>> = token_bytes
            .iter()
            .map(|t| {
                at += t.len();
                at - t.len()..at
            })
            .collect();
        Some(self.markers.thinking_tokens(&text, &ranges, false))
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.markers.open.is_empty() || self.markers.close.is_empty() {
            return Err("thinking markers must not be empty".into());
        }
        if self.budget == Some(0) {
            return Err("thinking_budget must be at least 1, got 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn check(text: &str, thinking: &str, answer: Option<&str>) {
        let got = ThinkingMarkers::default().split(text);
        assert_eq!(
            (got.thinking.as_str(), got.answer),
            (thinking, answer),
            "text {text:?}"
        );
    }

    #[test]
    fn a_closed_span_is_thinking_and_what_follows_is_the_answer() {
        check(
            "<think>2+2 is 4</think>The answer is 4",
            "2+2 is 4",
            Some("The answer is 4"),
        );
        check("no markers at all: 7", "", Some("no markers at all: 7"));
        check("<think></think>7", "", Some("7"));
    }

    #[test]
    fn without_a_closing_tag_everything_after_the_open_is_thinking_and_there_is_no_answer() {
        check(
            "<think>still going, maybe 42",
            "still going, maybe 42",
            None,
        );
        check("<think>", "", None);
        check("Sure. <think>hmm", "hmm", None);
    }

    #[test]
    fn with_several_spans_the_answer_follows_the_last_close_and_thinking_is_all_spans() {
        check(
            "<think>a</think>draft 1<think>b</think>final 7",
            "ab",
            Some("final 7"),
        );
        // An open marker inside a span is thinking text, not a nested span.
        check("<think>a<think>b</think>c", "a<think>b", Some("c"));
        // A span reopened after an answer and never closed: no answer.
        check("<think>a</think>7<think>b", "ab", None);
    }

    #[test]
    fn text_before_the_first_open_tag_is_neither_thinking_nor_answer() {
        check("Let me think. <think>x</think> 5", "x", Some(" 5"));
    }

    #[test]
    fn a_close_without_an_open_makes_everything_before_it_thinking() {
        // The template opened the span in the prompt.
        check(
            "reasoning here</think>The answer is 3",
            "reasoning here",
            Some("The answer is 3"),
        );
        check("a</think>b</think>c", "ab", Some("c"));
        check("</think>c", "", Some("c"));
    }

    #[test]
    fn a_prompt_that_opened_a_span_makes_the_generated_text_thinking_until_it_closes() {
        let m = ThinkingMarkers::default();
        assert!(m.ends_inside("<|im_start|>assistant\n<think>\n"));
        assert!(!m.ends_inside("<|im_start|>assistant\n"));
        assert!(!m.ends_inside("<think>old</think> turn"));
        let s = m.spans_from(b"never closed", true);
        let whole: Range<usize> = 0..12;
        assert_eq!((s.thinking, s.answer), (vec![whole], None));
        let s = m.spans_from(b"never closed", false);
        assert_eq!((s.thinking, s.answer), (vec![], Some(0..12)));
    }

    #[test]
    fn markers_of_other_models_work_the_same() {
        let m: ThinkingMarkers = "[THINK],[/THINK]".parse().unwrap();
        let s = m.split("[THINK]x[/THINK]y");
        assert_eq!((s.thinking.as_str(), s.answer), ("x", Some("y")));
    }

    #[test]
    fn a_token_is_thinking_when_a_byte_of_it_is_inside_a_span() {
        let m = ThinkingMarkers::default();
        // "<think>" "Hm" "m</" "think>" "7": the span is "Hmm"; "m</" straddles its end.
        let text = b"<think>Hmm</think>7";
        let tokens = [0..7, 7..9, 9..12, 12..18, 18..19];
        assert_eq!(m.thinking_tokens(text, &tokens, false), 2);
        // Tokens that hold only markers or answer are not thinking.
        assert_eq!(m.thinking_tokens(text, &[0..7, 10..18, 18..19], false), 0);
        // A forced close covered by no token, after a budget hit mid-word ("Hm|m").
        let text = b"<think>Hmm</think>\n\nFinal answer: 7";
        assert_eq!(
            m.thinking_tokens(text, &[0..7, 7..9, 9..10, 34..35], false),
            2
        );
    }

    #[test]
    fn markers_and_choices_parse() {
        assert_eq!(
            "<think>,</think>".parse::<ThinkingMarkers>(),
            Ok(ThinkingMarkers::default())
        );
        for bad in ["<think>", ",</think>", "<think>,", "a,b,c"] {
            assert!(bad.parse::<ThinkingMarkers>().is_err(), "{bad}");
        }
        assert_eq!("none".parse::<MarkersChoice>(), Ok(MarkersChoice::None));
        assert_eq!("auto".parse::<MarkersChoice>(), Ok(MarkersChoice::Auto));
        let detected = ThinkingMarkers::detect("{{ '<think>' }}...{{ '</think>' }}");
        assert_eq!(detected, Some(ThinkingMarkers::default()));
        assert_eq!(ThinkingMarkers::detect("{{ '<|im_start|>' }}"), None);
        assert_eq!(MarkersChoice::None.resolve(detected.clone()), None);
        assert_eq!(MarkersChoice::Auto.resolve(detected.clone()), detected);
        let given: ThinkingMarkers = "<r>,</r>".parse().unwrap();
        assert_eq!(
            MarkersChoice::Given(given.clone()).resolve(None),
            Some(given)
        );
    }

    #[test]
    fn a_budget_needs_markers_from_the_template_or_the_user() {
        let asked = ThinkingRequest {
            budget: Some(8),
            ..ThinkingRequest::default()
        };
        assert!(asked
            .resolve(None)
            .unwrap_err()
            .contains("needs reasoning markers"));
        let t = asked
            .resolve(Some(ThinkingMarkers::default()))
            .unwrap()
            .unwrap();
        assert_eq!(
            (t.budget, t.answer_prefix.as_str()),
            (Some(8), DEFAULT_ANSWER_PREFIX)
        );
        let off = ThinkingRequest {
            markers: MarkersChoice::None,
            ..ThinkingRequest::default()
        };
        assert_eq!(off.resolve(Some(ThinkingMarkers::default())), Ok(None));
    }

    #[test]
    fn a_budget_of_zero_is_refused() {
        let t = Thinking {
            budget: Some(0),
            ..Thinking::new(ThinkingMarkers::default())
        };
        assert_eq!(
            t.validate(),
            Err("thinking_budget must be at least 1, got 0".into())
        );
        assert_eq!(
            Thinking::new(ThinkingMarkers::default()).forced_text(),
            "</think>\n\nFinal answer: "
        );
    }

    #[test]
    fn reported_tokens_are_counted_when_a_marker_shows_where_thinking_is() {
        let t = Thinking::new(ThinkingMarkers::default());
        let toks = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(
            t.count_reported(&toks(&["<think>", "a", "b", "</think>", "7"])),
            Some(2)
        );
        assert_eq!(t.count_reported(&toks(&["a", "</think>", "7"])), Some(1));
        // No marker: the server's prompt may have opened a span; no tokens: nothing to count.
        assert_eq!(t.count_reported(&toks(&["a", "7"])), None);
        assert_eq!(t.count_reported(&[]), None);
    }

    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "<think>", "</think>", "<th", "ink>", "</", "a", "7", " ", "\n",
        ])
    }

    proptest! {
        /// Thinking, markers, preamble and answer never overlap, stay in order, and the
        /// answer is exactly what follows the last close marker.
        #[test]
        fn spans_are_ordered_disjoint_and_the_answer_follows_the_last_close(pieces in prop::collection::vec(piece(), 0..24)) {
            let text: String = pieces.concat();
            let m = ThinkingMarkers::default();
            let s = m.spans(&text);
            let after_last_close = text.rfind("</think>").map_or(0, |p| p + "</think>".len());
            let mut end = 0;
            for r in &s.thinking {
                prop_assert!(r.start >= end && r.end > r.start && r.end <= text.len());
                prop_assert!(!text[r.clone()].contains("</think>"));
                end = r.end;
            }
            match s.answer {
                Some(a) => {
                    prop_assert!(a.start >= end && a.end == text.len());
                    prop_assert!(!text[a.clone()].contains("</think>"));
                    prop_assert_eq!(a.start, after_last_close);
                }
                None => prop_assert!(text[after_last_close..].contains("<think>")),
            }
            // Every token's bytes are counted at most once.
            let tokens: Vec<Range<usize>> = (0..text.len()).map(|i| i..i + 1).collect();
            let in_spans: usize = s.thinking.iter().map(|r| r.len()).sum();
            prop_assert_eq!(m.thinking_tokens(text.as_bytes(), &tokens, false), in_spans);
        }
    }
}
