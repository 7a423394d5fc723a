//! A thinking budget over HTTP (issue 14). A server cannot force text into a sample it is
//! generating, so each budgeted sample runs as a step-wise session ([`HttpSession`]): it
//! is generated in steps no longer than the thinking tokens the budget has left (so no step
//! can overshoot it), and once its open span has spent the budget the close marker and the
//! answer prefix are appended as text and the rest continues from there. The forced text
//! is prompt to the server, which counts it (and its cached prefix) in its own usage.
//!
//! Counting thinking tokens needs each generated token's text: the server must return
//! completion logprobs (llama-server, vLLM and `ponder serve` do). The engine's rules hold:
//! the budget counts every token with a byte inside a span, forces once per sample, and may
//! cut a word or a half-written marker where it stands. In `continue_final_message` mode
//! the rendered prompt is unseen, so a span the template itself opens is not seen either.

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use ponder_core::reasoning::Thinking;
use ponder_core::{
    derive_seed, CancelToken, FinishReason, GenError, GenEvent, Message, Sample, SampleRequest, SampleStream,
    SamplingParams, StepParams, StepSession, Usage,
};
use tokio::sync::mpsc;

use crate::config::StepMode;
use crate::generator::HttpGenerator;
use crate::session::HttpSession;

/// Checks what a budget needs of the server before any request.
pub(crate) fn check(gen: &HttpGenerator, params: &SamplingParams) -> Result<(), GenError> {
    let url = &gen.shared.pool.endpoints[0].url;
    let caps = gen.caps();
    let tokens = match gen.step_mode() {
        StepMode::Completions => caps.completion_logprobs,
        StepMode::ContinueFinalMessage => caps.chat_logprobs,
        StepMode::None | StepMode::Auto => {
            return Err(GenError::Unsupported(format!(
                "a thinking budget over HTTP: it continues each sample after forcing the close marker, and the server at {url} \
                 offers neither prompt rendering (/apply-template) with completions nor continue_final_message"
            )))
        }
    };
    if !tokens {
        return Err(GenError::Unsupported(format!(
            "a thinking budget over HTTP: counting thinking tokens needs each token's text, and the server at {url} returns no logprobs"
        )));
    }
    if params.token_stats_k > 0 || params.top_logprobs > 0 || params.confidence_stop.is_some() {
        return Err(GenError::Unsupported(
            "a thinking budget over HTTP together with token statistics, top_logprobs or a confidence stop".into(),
        ));
    }
    Ok(())
}

/// `req`'s samples, each under the budget, all at once; a stream like any other.
pub(crate) fn sample(gen: &HttpGenerator, req: SampleRequest, thinking: Thinking) -> SampleStream {
    let cancel = CancelToken::default();
    let (tx, rx) = mpsc::unbounded_channel();
    let (gen, token) = (gen.clone(), cancel.clone());
    tokio::spawn(async move {
        let mut running: FuturesUnordered<_> = (req.first_index..req.first_index + req.n)
            .map(|index| {
                let seed = derive_seed(req.params.seed, index as u64);
                one(gen.clone(), &req.messages, &req.params, &thinking, seed, index, token.clone())
            })
            .collect();
        let mut usage = Usage::default();
        while let Some((result, u)) = running.next().await {
            usage += u;
            let event = match result {
                Ok(Some(sample)) => GenEvent::Sample(sample),
                Ok(None) => continue,
                Err((index, error)) => GenEvent::Failed { index, error },
            };
            if tx.send(event).is_err() {
                token.cancel();
            }
        }
        let _ = tx.send(GenEvent::Done(usage));
    });
    let events = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
    SampleStream::new(events, cancel)
}

/// What one sample has so far.
#[derive(Default)]
struct Sofar {
    text: String,
    /// Byte ranges of the generated tokens in `text` (forced text lies between them).
    tokens: Vec<std::ops::Range<usize>>,
    token_bytes: Vec<Vec<u8>>,
    token_logprobs: Vec<f32>,
    forced: bool,
}

/// One budgeted sample: `Ok(None)` when cancelled before it finished (its usage still
/// counts), the sample's usage either way.
async fn one(
    gen: HttpGenerator,
    messages: &[Message],
    params: &SamplingParams,
    thinking: &Thinking,
    seed: u64,
    index: usize,
    cancel: CancelToken,
) -> (Result<Option<Sample>, (usize, GenError)>, Usage) {
    let mut session = match HttpSession::open(gen, messages, seed).await {
        Ok(s) => s,
        Err(e) => return (Err((index, e)), Usage::default()),
    };
    let result = run(&mut session, params, thinking, index, &cancel).await;
    let mut usage = session.usage();
    match &result {
        Ok(Some(s)) => usage.thinking += s.n_thinking.unwrap_or(0) as u64,
        // Cancelled midway: all this session generated was for a sample that never ended.
        Ok(None) => usage.dropped += usage.completion,
        Err(_) => {}
    }
    (result.map_err(|e| (index, e)), usage)
}

async fn run(
    session: &mut HttpSession,
    params: &SamplingParams,
    thinking: &Thinking,
    index: usize,
    cancel: &CancelToken,
) -> Result<Option<Sample>, GenError> {
    let budget = thinking.budget.unwrap_or(u32::MAX) as usize;
    let markers = &thinking.markers;
    let starts_inside = markers.ends_inside(session.prompt());
    let root = session.root();
    let sampling = SamplingParams { thinking: None, ..params.clone() };
    let max = params.max_tokens as usize;
    let mut s = Sofar::default();
    let finish = loop {
        if cancel.is_cancelled() {
            return Ok(None);
        }
        let n_inside = markers.thinking_tokens(s.text.as_bytes(), &s.tokens, starts_inside);
        let inside = markers.spans_from(s.text.as_bytes(), starts_inside).answer.is_none();
        if !s.forced && inside && n_inside >= budget {
            let forced = thinking.forced_text();
            session.append(root, &forced).await?;
            s.text.push_str(&forced);
            s.forced = true;
            continue;
        }
        let room = max - s.tokens.len();
        // Before the force, a step never holds more tokens than the budget has left, so the
        // span cannot run past it unseen.
        let step_len = if s.forced { room } else { budget.saturating_sub(n_inside).clamp(1, room.max(1)) };
        let params = StepParams {
            sampling: sampling.clone(),
            delimiter: None,
            max_step_tokens: step_len as u32,
            max_total_tokens: params.max_tokens,
        };
        let step = session.extend(&[root], &params).await?.pop().ok_or_else(|| GenError::Backend("a step returned nothing".into()))?;
        if step.token_bytes.len() != step.n_tokens || step.token_bytes.concat() != step.text.as_bytes() {
            return Err(GenError::Backend(format!(
                "a thinking budget over HTTP needs each token's text: the server reported {} tokens for {} generated",
                step.token_bytes.len(),
                step.n_tokens
            )));
        }
        let mut at = s.text.len();
        for b in &step.token_bytes {
            s.tokens.push(at..at + b.len());
            at += b.len();
        }
        s.text.push_str(&step.text);
        s.token_bytes.extend(step.token_bytes);
        s.token_logprobs.extend(step.token_logprobs);
        match step.finish {
            FinishReason::StepEnd if s.tokens.len() < max => {}
            FinishReason::StepEnd => break FinishReason::Length,
            other => break other,
        }
    };
    let n_thinking = markers.thinking_tokens(s.text.as_bytes(), &s.tokens, starts_inside);
    Ok(Some(Sample {
        index,
        n_tokens: s.tokens.len(),
        text: s.text,
        token_logprobs: s.token_logprobs,
        token_bytes: s.token_bytes,
        token_stats: Vec::new(),
        top_logprobs: Vec::new(),
        finish,
        n_thinking: Some(n_thinking),
    }))
}
