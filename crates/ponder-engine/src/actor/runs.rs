//! A run: one generation of a sequence (a whole sample, or one step of a branch), the text
//! it produced so far, and why it ends — a stop string, a step delimiter, a length cap, a
//! full context or DeepConf's confidence stop — detected across token boundaries; and its
//! reasoning spans: the thinking tokens, and the thinking budget that forces the span closed.

use std::ops::Range;
use std::sync::Arc;

use llama_cpp_2::token::LlamaToken;
use ponder_core::confidence::GroupWindow;
use ponder_core::reasoning::ThinkingMarkers;
use ponder_core::{FinishReason, SamplingParams, TokenStats, TopLogprob};

pub(super) struct Run {
    pub params: Arc<SamplingParams>,
    delimiter: Option<Vec<u8>>,
    max_tokens: usize,
    /// Cap on the branch's generated tokens in total (sessions); `usize::MAX` for a sample.
    max_total: usize,
    n_generated: usize,
    bytes: Vec<u8>,
    logprobs: Vec<f32>,
    /// Each generated token's bytes in `bytes` (the end-of-generation token's range is
    /// empty); forced text lies between ranges, in no token.
    ranges: Vec<Range<usize>>,
    /// A probe reads these tokens' log-probabilities from its logits instead of sampling.
    pub probe: Option<Arc<Vec<LlamaToken>>>,
    /// Per generated token, when the params ask for them.
    stats: Vec<TokenStats>,
    /// Per generated token, its most likely alternatives, when the params ask for them.
    tops: Vec<Vec<TopLogprob>>,
    /// The running group of `params.confidence_stop`.
    group: Option<GroupWindow>,
    /// Reasoning spans, when the params name markers (samples only).
    spans: Option<SpanState>,
}

/// A sample's reasoning markers as the engine applies them (issue 14).
pub(crate) struct SpanSetup {
    pub markers: ThinkingMarkers,
    /// The prompt opened a span (the template wrote the open marker).
    pub starts_inside: bool,
    /// Thinking tokens after which an open span is forced closed.
    pub budget: Option<usize>,
    /// The close marker and the answer prefix, forced when the budget runs out.
    pub forced_tokens: Vec<LlamaToken>,
    pub forced_bytes: Vec<u8>,
}

/// Where a sample stands in its spans, found incrementally as tokens arrive.
struct SpanState {
    setup: Arc<SpanSetup>,
    /// Start of the open span's content in `bytes`; `None` outside a span.
    inside_since: Option<usize>,
    /// Markers before this byte have been seen.
    scanned: usize,
    /// Tokens generated inside spans so far (the budget's count).
    n_inside: usize,
    /// The budget has forced its text (once per sample).
    forced: bool,
}

impl SpanState {
    /// Follows the markers through the bytes appended at `from`, then counts the token
    /// ending at `bytes.len()` when a byte of it is inside a span still open.
    fn track(&mut self, bytes: &[u8], from: usize) {
        let (open, close) = (
            self.setup.markers.open.as_bytes(),
            self.setup.markers.close.as_bytes(),
        );
        let longest = open.len().max(close.len());
        let mut i = from.saturating_sub(longest - 1).max(self.scanned);
        loop {
            let (marker, opens) = if self.inside_since.is_some() {
                (close, false)
            } else {
                (open, true)
            };
            let Some(p) = find(bytes, marker, i) else {
                break;
            };
            i = p + marker.len();
            self.scanned = i;
            self.inside_since = opens.then_some(i);
        }
        if self.inside_since.is_some_and(|start| bytes.len() > start) {
            self.n_inside += 1;
        }
    }

    /// Whether the budget ends the open span now.
    fn budget_spent(&self) -> bool {
        !self.forced
            && self.inside_since.is_some()
            && self.setup.budget.is_some_and(|t| self.n_inside >= t)
    }
}

/// Where the sequence stands after a token is appended.
#[derive(Debug, Clone, Copy)]
pub(super) struct Position {
    /// Tokens the branch generated in all its runs.
    pub total_generated: usize,
    /// Tokens in the sequence.
    pub n_tokens: usize,
    /// Most tokens one sequence may hold.
    pub n_ctx_seq: usize,
}

/// What a finished run produced.
pub(super) struct Output {
    pub text: String,
    pub n_tokens: usize,
    pub token_logprobs: Vec<f32>,
    pub token_bytes: Vec<Vec<u8>>,
    pub token_stats: Vec<TokenStats>,
    pub top_logprobs: Vec<Vec<TopLogprob>>,
    /// Thinking tokens, when the run followed reasoning spans.
    pub n_thinking: Option<usize>,
}

impl Run {
    /// A whole sample: it ends at `params.max_tokens` with `Length`.
    pub fn sample(params: Arc<SamplingParams>) -> Self {
        let max_tokens = params.max_tokens as usize;
        Self::new(params, None, max_tokens, usize::MAX)
    }

    /// One step of a branch: it ends at the delimiter, or at `max_step_tokens` with
    /// `StepEnd` (the branch may go on), or at `max_total` generated tokens with `Length`.
    pub fn step(params: Arc<SamplingParams>, delimiter: Option<Vec<u8>>, max_step_tokens: usize, max_total: usize) -> Self {
        Self::new(params, delimiter, max_step_tokens, max_total)
    }

    /// One forward pass reading `candidates`' log-probabilities.
    pub fn probe(candidates: Arc<Vec<LlamaToken>>) -> Self {
        let mut run = Self::new(Arc::new(SamplingParams::greedy()), None, 1, 1);
        run.probe = Some(candidates);
        run
    }

    fn new(params: Arc<SamplingParams>, delimiter: Option<Vec<u8>>, max_tokens: usize, max_total: usize) -> Self {
        let group = params.confidence_stop.map(|c| GroupWindow::new(c.window as usize));
        Self {
            params,
            delimiter,
            max_tokens,
            max_total,
            n_generated: 0,
            bytes: Vec::new(),
            logprobs: Vec::new(),
            ranges: Vec::new(),
            probe: None,
            stats: Vec::new(),
            tops: Vec::new(),
            group,
            spans: None,
        }
    }

    /// Records the most likely tokens at the position the next [`Run::accept`] fills.
    pub fn record_top(&mut self, top: Vec<TopLogprob>) {
        self.tops.push(top);
    }

    /// Follows reasoning spans: counts thinking tokens and applies the budget.
    pub fn with_spans(mut self, setup: Arc<SpanSetup>) -> Self {
        let inside_since = setup.starts_inside.then_some(0);
        self.spans = Some(SpanState {
            setup,
            inside_since,
            scanned: 0,
            n_inside: 0,
            forced: false,
        });
        self
    }

    /// Tokens to feed after the one just accepted, when the thinking budget forced the
    /// span closed; their text is already in the run's bytes.
    pub fn forced(&self) -> Option<&[LlamaToken]> {
        // Forced text is the only thing after the last token's bytes.
        let just_forced = self.ranges.last().is_some_and(|r| r.end < self.bytes.len());
        self.spans
            .as_ref()
            .filter(|_| just_forced)
            .map(|s| s.setup.forced_tokens.as_slice())
    }

    /// Generated tokens inside reasoning spans so far, when the run follows them (forced
    /// tokens are in no token's bytes and never count).
    pub fn thinking_tokens(&self) -> Option<usize> {
        let s = self.spans.as_ref()?;
        Some(
            s.setup
                .markers
                .thinking_tokens(&self.bytes, &self.ranges, s.setup.starts_inside),
        )
    }

    /// Takes a sampled token: its log-probability, its stats when asked for, and its bytes
    /// (`None` for the end-of-generation token, which ends the run). Returns why the run
    /// ends after it, if it does.
    pub fn accept(&mut self, logprob: f32, stats: Option<TokenStats>, piece: Option<&[u8]>, at: Position) -> Option<FinishReason> {
        self.n_generated += 1;
        self.logprobs.push(logprob);
        // DeepConf's online stop: the group of the latest tokens fell below the threshold.
        let mut low_confidence = false;
        if let Some(st) = stats {
            self.stats.push(st);
            if let (Some(g), Some(stop)) = (self.group.as_mut(), self.params.confidence_stop) {
                low_confidence = g.push(st.confidence).is_some_and(|m| m < stop.threshold);
            }
        }
        let from = self.bytes.len();
        let finish = match piece {
            None => Some(FinishReason::Eos),
            Some(piece) => {
                self.bytes.extend_from_slice(piece);
                self.ends_after(from, at).or(low_confidence.then_some(FinishReason::LowConfidence))
            }
        };
        self.ranges.push(from..self.bytes.len());
        if let Some(spans) = self.spans.as_mut() {
            spans.track(&self.bytes, from);
            if finish.is_none() && spans.budget_spent() {
                // The budget may cut a word in two: the close goes in where the span stands.
                if at.n_tokens + spans.setup.forced_tokens.len() >= at.n_ctx_seq {
                    return Some(FinishReason::ContextFull);
                }
                self.bytes.extend_from_slice(&spans.setup.forced_bytes);
                spans.forced = true;
                spans.inside_since = None;
                spans.scanned = self.bytes.len();
            }
        }
        finish
    }

    /// Whether the run ends after the piece appended at `from`.
    fn ends_after(&self, from: usize, at: Position) -> Option<FinishReason> {
        for stop in &self.params.stop {
            let b = stop.as_bytes();
            if !b.is_empty() && find(&self.bytes, b, from.saturating_sub(b.len() - 1)).is_some() {
                return Some(FinishReason::Stop(stop.clone()));
            }
        }
        if let Some(d) = &self.delimiter {
            // A step ends with the token that completes the delimiter; leading delimiters
            // (before any other text) do not end an empty step.
            let scan = from.saturating_sub(d.len() - 1);
            if let Some(p) = find(&self.bytes, d, scan) {
                if self.bytes[..p].iter().any(|c| !c.is_ascii_whitespace()) {
                    return Some(FinishReason::StepEnd);
                }
            }
        }
        if at.total_generated >= self.max_total {
            return Some(FinishReason::Length);
        }
        if self.n_generated >= self.max_tokens {
            // A step cut at its length cap may go on; a whole sample at its cap is done.
            return Some(if self.max_total == usize::MAX { FinishReason::Length } else { FinishReason::StepEnd });
        }
        if at.n_tokens >= at.n_ctx_seq {
            return Some(FinishReason::ContextFull);
        }
        None
    }

    /// The run's text (cut before a stop string, which the tokens keep) and per-token record.
    pub fn output(self, finish: &FinishReason) -> Output {
        let n_thinking = self.thinking_tokens();
        let mut bytes = self.bytes;
        let token_bytes: Vec<Vec<u8>> = self
            .ranges
            .iter()
            .map(|r| bytes[r.clone()].to_vec())
            .collect();
        if let FinishReason::Stop(stop) = finish {
            if let Some(p) = find(&bytes, stop.as_bytes(), 0) {
                bytes.truncate(p);
            }
        }
        Output {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            n_tokens: self.n_generated,
            token_logprobs: self.logprobs,
            token_bytes,
            token_stats: self.stats,
            top_logprobs: self.tops,
            n_thinking,
        }
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

#[cfg(test)]
mod tests {
    use ponder_core::ConfidenceStop;

    use super::*;

    fn params(stop: &[&str], max_tokens: u32) -> Arc<SamplingParams> {
        Arc::new(SamplingParams { stop: stop.iter().map(|s| s.to_string()).collect(), max_tokens, ..SamplingParams::default() })
    }

    /// Feeds `pieces` (`None`: end of generation) one token at a time, the sequence starting
    /// with `n_prompt` tokens; returns the token that ended the run, why, and its output.
    fn feed(mut run: Run, pieces: &[Option<&str>], n_prompt: usize, n_ctx_seq: usize) -> Option<(usize, FinishReason, Output)> {
        for (i, piece) in pieces.iter().enumerate() {
            let at = Position { total_generated: i + 1, n_tokens: n_prompt + i + 1, n_ctx_seq };
            if let Some(f) = run.accept(-0.5, None, piece.map(str::as_bytes), at) {
                let out = run.output(&f);
                return Some((i, f, out));
            }
        }
        None
    }

    /// A sample over `pieces`: the index of the token that ended it, why, and its text.
    fn check(stop: &[&str], pieces: &[&str], expected: Option<(usize, FinishReason, &str)>) {
        let pieces: Vec<Option<&str>> = pieces.iter().map(|&p| Some(p)).collect();
        let got = feed(Run::sample(params(stop, 100)), &pieces, 3, 1000).map(|(i, f, out)| (i, f, out.text));
        assert_eq!(got, expected.map(|(i, f, t)| (i, f, t.to_string())), "stops {stop:?}, pieces {pieces:?}");
    }

    fn stop(s: &str) -> FinishReason {
        FinishReason::Stop(s.into())
    }

    #[test]
    fn a_stop_split_across_tokens_ends_at_the_token_that_completes_it() {
        check(&["o\nW"], &["Hel", "lo", "\n", "Wor", "ld"], Some((3, stop("o\nW"), "Hell")));
        check(&["ab"], &["xa", "b"], Some((1, stop("ab"), "x")));
        check(&["abc"], &["a", "b", "c", "d"], Some((2, stop("abc"), "")));
        check(&["abc"], &["a", "b", "x", "c"], None);
    }

    #[test]
    fn a_stop_in_the_first_token_ends_the_run_with_empty_text() {
        check(&["END"], &["END", "more"], Some((0, stop("END"), "")));
        check(&["E"], &["xE"], Some((0, stop("E"), "x")));
    }

    #[test]
    fn with_several_stops_the_first_listed_that_appears_wins() {
        check(&["zz", "b", "a"], &["xab"], Some((0, stop("b"), "xa")));
        check(&["", "q"], &["a", "q"], Some((1, stop("q"), "a")));
    }

    #[test]
    fn the_token_record_keeps_the_stop_and_eos_adds_no_bytes() {
        let (i, f, out) = feed(Run::sample(params(&["!"], 10)), &[Some("hi"), Some(" there!"), None], 1, 100).unwrap();
        assert_eq!((i, f, out.text.as_str()), (1, stop("!"), "hi there"));
        assert_eq!(out.token_bytes, vec![b"hi".to_vec(), b" there!".to_vec()]);
        let (i, f, out) = feed(Run::sample(params(&[], 10)), &[Some("a"), None], 1, 100).unwrap();
        assert_eq!((i, f, out.text.as_str(), out.n_tokens), (1, FinishReason::Eos, "a", 2));
        assert_eq!(out.token_bytes, vec![b"a".to_vec(), Vec::new()]);
        assert_eq!(out.token_logprobs, vec![-0.5, -0.5]);
    }

    #[test]
    fn a_sample_ends_at_max_tokens_with_length_or_at_a_full_context() {
        check(&[], &["a", "b", "c", "d"], None);
        let pieces = [Some("a"); 5];
        let (i, f, _) = feed(Run::sample(params(&[], 3)), &pieces, 2, 100).unwrap();
        assert_eq!((i, f), (2, FinishReason::Length));
        // The sequence (2 prompt tokens) fills its context at its fourth token.
        let (i, f, _) = feed(Run::sample(params(&[], 10)), &pieces, 2, 6).unwrap();
        assert_eq!((i, f), (3, FinishReason::ContextFull));
        // A stop wins over the length cap on the same token.
        let (i, f, _) = feed(Run::sample(params(&["a"], 1)), &pieces, 2, 100).unwrap();
        assert_eq!((i, f), (0, stop("a")));
    }

    fn step(delimiter: &str, max_step: usize, max_total: usize) -> Run {
        Run::step(params(&[], 100), Some(delimiter.as_bytes().to_vec()), max_step, max_total)
    }

    #[test]
    fn a_step_ends_with_the_token_that_completes_its_delimiter() {
        let pieces = [Some("Step"), Some(" 1.\n"), Some("\nNext"), Some("\n\n")];
        let (i, f, out) = feed(step("\n\n", 10, 100), &pieces, 2, 100).unwrap();
        // The delimiter stays in the step's text.
        assert_eq!((i, f, out.text.as_str()), (2, FinishReason::StepEnd, "Step 1.\n\nNext"));
    }

    #[test]
    fn leading_delimiters_do_not_end_an_empty_step() {
        let pieces = [Some("\n\n"), Some(" \n\n"), Some("x"), Some("\n"), Some("\n")];
        let (i, f, out) = feed(step("\n\n", 10, 100), &pieces, 2, 100).unwrap();
        assert_eq!((i, f, out.text.as_str()), (4, FinishReason::StepEnd, "\n\n \n\nx\n\n"));
    }

    #[test]
    fn a_step_at_its_cap_may_go_on_but_the_branch_total_is_final() {
        let pieces = [Some("a"); 5];
        let (i, f, _) = feed(step("\n\n", 2, 100), &pieces, 2, 100).unwrap();
        assert_eq!((i, f), (1, FinishReason::StepEnd));
        // `total_generated` counts the branch's earlier steps too: here from 1.
        let (i, f, _) = feed(step("\n\n", 10, 3), &pieces, 2, 100).unwrap();
        assert_eq!((i, f), (2, FinishReason::Length));
        let (i, f, _) = feed(step("\n\n", 3, 3), &pieces, 2, 100).unwrap();
        assert_eq!((i, f), (2, FinishReason::Length));
    }

    #[test]
    fn a_probe_is_one_greedy_token() {
        let run = Run::probe(Arc::new(vec![LlamaToken(3)]));
        assert!(run.params.is_greedy());
        assert_eq!(run.probe.as_deref(), Some(&vec![LlamaToken(3)]));
    }

    fn spans(budget: Option<usize>, starts_inside: bool) -> Arc<SpanSetup> {
        let forced = "</think>\n\nFinal answer: ";
        Arc::new(SpanSetup {
            markers: ThinkingMarkers::default(),
            starts_inside,
            budget,
            forced_tokens: vec![LlamaToken(7); 4],
            forced_bytes: forced.as_bytes().to_vec(),
        })
    }

    /// Feeds `pieces`, returning the index of each token after which text was forced.
    fn feed_spans(run: &mut Run, pieces: &[&str]) -> Vec<usize> {
        let mut forced_after = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let at = Position {
                total_generated: i + 1,
                n_tokens: 10 + i + 1,
                n_ctx_seq: 1000,
            };
            assert_eq!(run.accept(-0.5, None, Some(piece.as_bytes()), at), None);
            if run.forced().is_some() {
                forced_after.push(i);
            }
        }
        forced_after
    }

    #[test]
    fn thinking_tokens_are_those_inside_the_markers_even_split_across_tokens() {
        let mut run = Run::sample(params(&[], 100)).with_spans(spans(None, false));
        let pieces = [
            "Hi ", "<th", "ink>", "Let", " me", " see</", "think", ">", "7",
        ];
        assert_eq!(feed_spans(&mut run, &pieces), Vec::<usize>::new());
        // "Let", " me", " see</" hold bytes of the span's content.
        assert_eq!(run.thinking_tokens(), Some(3));
        let out = run.output(&FinishReason::Eos);
        assert_eq!(
            (out.text.as_str(), out.n_thinking),
            ("Hi <think>Let me see</think>7", Some(3))
        );
    }

    #[test]
    fn the_budget_closes_the_span_mid_word_and_the_answer_follows() {
        let mut run = Run::sample(params(&[], 100)).with_spans(spans(Some(3), false));
        // The third thinking token is half a word: the budget cuts it there.
        let pieces = ["<think>", "Let", " us", " compu", "te", "7"];
        assert_eq!(feed_spans(&mut run, &pieces), vec![3]);
        let out = run.output(&FinishReason::Eos);
        assert_eq!(out.text, "<think>Let us compu</think>\n\nFinal answer: te7");
        assert_eq!(out.n_thinking, Some(3));
        // The forced text is in no token: the record holds the generated tokens only.
        assert_eq!(out.token_bytes.concat(), b"<think>Let us compute7".to_vec());
        assert_eq!(out.n_tokens, 6);
    }

    #[test]
    fn a_span_the_prompt_opened_counts_from_the_first_token_and_the_budget_forces_once() {
        let mut run = Run::sample(params(&[], 100)).with_spans(spans(Some(2), true));
        let pieces = ["a", "b", "c", "<think>", "d", "e", "f"];
        assert_eq!(feed_spans(&mut run, &pieces), vec![1]);
        // A span reopened after the forced close is counted but no longer cut.
        assert_eq!(run.thinking_tokens(), Some(5));
        // A span closed before the budget is spent forces nothing.
        let mut run = Run::sample(params(&[], 100)).with_spans(spans(Some(2), true));
        assert_eq!(
            feed_spans(&mut run, &["a", "</think>", "b", "c", "d"]),
            Vec::<usize>::new()
        );
        assert_eq!(run.thinking_tokens(), Some(1));
    }

    #[test]
    fn forcing_that_would_overflow_the_context_ends_the_sample_instead() {
        let mut run = Run::sample(params(&[], 100)).with_spans(spans(Some(1), true));
        let at = Position {
            total_generated: 1,
            n_tokens: 97,
            n_ctx_seq: 100,
        };
        assert_eq!(
            run.accept(-0.5, None, Some(b"x"), at),
            Some(FinishReason::ContextFull)
        );
    }

    #[test]
    fn low_group_confidence_ends_a_sample_after_a_full_window() {
        let params = Arc::new(SamplingParams {
            token_stats_k: 5,
            confidence_stop: Some(ConfidenceStop { window: 2, threshold: 1.0 }),
            ..SamplingParams::default()
        });
        let mut run = Run::sample(params);
        let at = |i: usize| Position { total_generated: i, n_tokens: 10 + i, n_ctx_seq: 100 };
        let stats = |confidence: f32| Some(TokenStats { confidence, entropy: 0.0 });
        assert_eq!(run.accept(-1.0, stats(0.1), Some(b"a"), at(1)), None);
        assert_eq!(run.accept(-1.0, stats(3.0), Some(b"b"), at(2)), None);
        assert_eq!(run.accept(-1.0, stats(0.2), Some(b"c"), at(3)), None);
        assert_eq!(run.accept(-1.0, stats(0.2), Some(b"d"), at(4)), Some(FinishReason::LowConfidence));
        assert_eq!(run.output(&FinishReason::LowConfidence).token_stats.len(), 4);
    }
}
