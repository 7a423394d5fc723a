//! Streamed answers: progress events while the strategy runs (samples, votes, early stops,
//! samples and branches dropped before their end, search steps), then the chosen answer as
//! ordinary chunks, the usage chunk and `[DONE]`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ponder_core::answer::{AnswerPattern, Equivalence};
use ponder_core::strategy::{tally, Candidate, Outcome};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::app::{now, AppState};
use crate::error::ApiError;
use crate::observe::Progress;
use crate::request::{Kind, ProgressMode, Request};
use crate::response::{decide, extract, openai_usage, ponder_field, tool_calls_json, EQUIVALENCE};
use crate::run::run;
use crate::settle::Meter;

/// What the strategy has done so far, for progress events; the votes are counted by
/// ponder-core's `tally`, the same counter the strategies decide with.
#[derive(Default)]
struct Running {
    /// Each finished sample with an answer, as a candidate without its text.
    answered: Vec<Candidate>,
    done: usize,
    failed: usize,
    /// Samples ended before their own end (they do not vote).
    dropped: usize,
    steps: usize,
    /// The request's own answer rule, when it gave one.
    pattern: Option<AnswerPattern>,
}

impl Running {
    fn leader(&self) -> Value {
        let votes = tally(&self.answered, false);
        json!({
            "leader": votes.first().map(|v| &v.answer),
            "leader_votes": votes.first().map_or(0, |v| v.count),
            "runner_up_votes": votes.get(1).map_or(0, |v| v.count),
        })
    }

    fn on(&mut self, p: Progress, budget: usize) -> Value {
        let mut ev = match p {
            Progress::Started { n } => json!({ "event": "started", "n": n }),
            Progress::Sample(s) => {
                self.done += 1;
                let answer = match &self.pattern {
                    Some(p) => p.extract(&s.text),
                    None => extract(&s.text),
                };
                if let Some(a) = &answer {
                    self.answered.push(Candidate {
                        index: s.index,
                        text: String::new(),
                        key: Some(EQUIVALENCE.key(a)),
                        answer: Some(a.clone()),
                        n_tokens: s.n_tokens,
                        mean_logprob: None,
                        finish: s.finish.clone(),
                        score: None,
                    });
                }
                json!({ "event": "sample", "index": s.index, "tokens": s.n_tokens, "answer": answer })
            }
            Progress::Failed { index, error } => {
                self.failed += 1;
                json!({ "event": "failed", "index": index, "error": error })
            }
            Progress::EarlyStop { outstanding } => json!({ "event": "early_stop", "cancelled": outstanding }),
            Progress::Dropped { index, tokens, why } => {
                self.dropped += 1;
                json!({ "event": "dropped", "index": index, "tokens": tokens, "why": why })
            }
            Progress::Pruned { branches, tokens } => json!({ "event": "dropped", "branches": branches, "tokens": tokens, "why": "pruned" }),
            Progress::Steps { extended, finished, tokens } => {
                self.steps += 1;
                json!({ "event": "step", "step": self.steps, "extended": extended, "finished": finished, "tokens": tokens })
            }
        };
        ev["done"] = json!(self.done);
        ev["failed"] = json!(self.failed);
        ev["dropped"] = json!(self.dropped);
        ev["budget"] = json!(budget);
        if let (Some(o), Value::Object(l)) = (ev.as_object_mut(), self.leader()) {
            o.extend(l);
        }
        ev
    }
}

fn chunk(req: &Request, id: &str, created: u64, choices: Value) -> Value {
    json!({
        "id": id,
        "object": if req.kind == Kind::Chat { "chat.completion.chunk" } else { "text_completion" },
        "created": created,
        "model": req.model,
        "choices": choices,
    })
}

fn data(v: &Value) -> Event {
    Event::default().data(v.to_string())
}

/// Pieces of a few words each, so the answer arrives as ordinary deltas.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut words = 0;
    for part in text.split_inclusive(char::is_whitespace) {
        cur.push_str(part);
        words += 1;
        if words == 4 {
            out.push(std::mem::take(&mut cur));
            words = 0;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The answer as chunks after the decision: content deltas, tool-call deltas, the finishing
/// chunk with the strategy's details, then usage.
fn answer_events(o: &Outcome, req: &Request, id: &str, created: u64) -> Vec<Event> {
    let d = decide(o, &req.ignore_arguments, id);
    let mut out = Vec::new();
    let choice = |delta_or_text: Value, finish: Value| match req.kind {
        Kind::Chat => json!([{ "index": 0, "delta": delta_or_text, "logprobs": null, "finish_reason": finish }]),
        Kind::Completion => json!([{ "index": 0, "text": delta_or_text, "logprobs": null, "finish_reason": finish }]),
    };
    for p in pieces(&d.content) {
        let delta = if req.kind == Kind::Chat { json!({ "content": p }) } else { json!(p) };
        out.push(data(&chunk(req, id, created, choice(delta, Value::Null))));
    }
    if !d.tool_calls.is_empty() && req.kind == Kind::Chat {
        out.push(data(&chunk(req, id, created, choice(json!({ "tool_calls": tool_calls_json(&d.tool_calls, true) }), Value::Null))));
    }
    let empty = if req.kind == Kind::Chat { json!({}) } else { json!("") };
    let mut last = chunk(req, id, created, choice(empty, json!(d.finish_reason)));
    last["ponder"] = ponder_field(o, req, &d);
    out.push(data(&last));
    let mut usage = chunk(req, id, created, json!([]));
    usage["usage"] = openai_usage(&o.usage);
    out.push(data(&usage));
    out
}

fn progress_event(req: &Request, id: &str, created: u64, ev: &Value) -> Option<Event> {
    match req.progress {
        ProgressMode::None => None,
        ProgressMode::Comments => Some(Event::default().comment(format!("ponder {ev}"))),
        ProgressMode::Chunks => {
            let mut c = chunk(req, id, created, json!([]));
            c["ponder"] = ev.clone();
            Some(data(&c))
        }
    }
}

/// Streams: progress while the strategy runs, then the answer. The response starts only
/// once the backend accepted the first sample request, so that request errors are still
/// plain 4xx answers.
pub(crate) async fn stream(st: Arc<AppState>, req: Arc<Request>, id: String, meter: Arc<Meter>) -> Result<Response, ApiError> {
    let (ptx, mut prx) = mpsc::unbounded_channel::<Progress>();
    let (etx, erx) = mpsc::channel::<Result<Event, Infallible>>(256);
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), ApiError>>();
    let created = now();
    let task_req = req.clone();
    tokio::spawn(async move {
        let req = task_req;
        let budget = req.samples();
        let mut ready = Some(ready_tx);
        let mut running = Running { pattern: req.answer_pattern.clone(), ..Running::default() };
        let mut role_sent = false;
        let open = |ready: &mut Option<oneshot::Sender<Result<(), ApiError>>>, role_sent: &mut bool| -> Vec<Event> {
            if let Some(r) = ready.take() {
                let _ = r.send(Ok(()));
            }
            if *role_sent || req.kind != Kind::Chat {
                return Vec::new();
            }
            *role_sent = true;
            vec![data(&chunk(&req, &id, created, json!([{ "index": 0, "delta": { "role": "assistant", "content": "" }, "logprobs": null, "finish_reason": null }])))]
        };
        let work = run(st.clone(), req.clone(), meter.clone(), Some(ptx));
        tokio::pin!(work);
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                Some(p) = prx.recv() => {
                    let mut evs = open(&mut ready, &mut role_sent);
                    let ev = running.on(p, budget);
                    evs.extend(progress_event(&req, &id, created, &ev));
                    for e in evs {
                        if etx.send(Ok(e)).await.is_err() {
                            return; // the client left: dropping `work` cancels the samples
                        }
                    }
                }
                _ = etx.closed() => return,
            }
        };
        let mut evs = Vec::new();
        while let Ok(p) = prx.try_recv() {
            let ev = running.on(p, budget);
            evs.extend(progress_event(&req, &id, created, &ev));
        }
        match result {
            Err(e) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(e));
                    return;
                }
                if e.status.is_server_error() {
                    tracing::error!(status = e.status.as_u16(), code = ?e.code, "{}", e.message);
                }
                evs.push(data(&e.public().body()));
            }
            Ok((o, _)) => {
                let mut head = open(&mut ready, &mut role_sent);
                head.append(&mut evs);
                evs = head;
                meter.reconcile(&o.usage);
                st.metrics.outcome(o.candidates.len(), o.n_failed, o.stopped_early);
                let decided = json!({
                    "event": "decided", "answer": o.answer, "stopped_early": o.stopped_early,
                    "samples": o.candidates.len() + o.n_failed, "budget": budget,
                });
                evs.extend(progress_event(&req, &id, created, &decided));
                evs.extend(answer_events(&o, &req, &id, created));
            }
        }
        evs.push(Event::default().data("[DONE]"));
        for e in evs {
            if etx.send(Ok(e)).await.is_err() {
                return;
            }
        }
    });
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(ApiError::internal("the request's task ended without an answer")),
    }
    let events = futures::stream::unfold(erx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(index: usize, text: &str) -> Progress {
        Progress::Sample(ponder_core::Sample {
            index,
            text: text.into(),
            n_tokens: 1,
            token_logprobs: Vec::new(),
            token_bytes: Vec::new(),
            token_stats: Vec::new(),
            top_logprobs: Vec::new(),
            finish: ponder_core::FinishReason::Eos,
            n_thinking: None,
        })
    }

    #[test]
    fn progress_names_the_leader_as_the_vote_would() {
        let mut running = Running::default();
        let ev = running.on(sample(1, "It is 7."), 4);
        assert_eq!((ev["leader"].as_str(), ev["leader_votes"].as_u64(), ev["runner_up_votes"].as_u64()), (Some("7"), Some(1), Some(0)));
        running.on(sample(0, "The answer is 5."), 4);
        running.on(sample(3, "no idea"), 4);
        let ev = running.on(sample(2, "5 apples"), 4);
        assert_eq!((ev["leader"].as_str(), ev["leader_votes"].as_u64(), ev["runner_up_votes"].as_u64()), (Some("5"), Some(2), Some(1)));
        assert_eq!((ev["done"].as_u64(), ev["budget"].as_u64()), (Some(4), Some(4)));
    }

    #[test]
    fn dropped_samples_are_counted_apart_and_do_not_vote() {
        let mut running = Running::default();
        running.on(sample(0, "It is 7."), 4);
        let ev = running.on(Progress::Dropped { index: 1, tokens: 12, why: "low_confidence" }, 4);
        assert_eq!((ev["event"].as_str(), ev["index"].as_u64(), ev["tokens"].as_u64(), ev["why"].as_str()), (Some("dropped"), Some(1), Some(12), Some("low_confidence")));
        assert_eq!((ev["done"].as_u64(), ev["dropped"].as_u64(), ev["leader_votes"].as_u64()), (Some(1), Some(1), Some(1)));
        let ev = running.on(Progress::Pruned { branches: vec![3, 4], tokens: 20 }, 4);
        assert_eq!((ev["why"].as_str(), ev["branches"].as_array().map(Vec::len), ev["tokens"].as_u64()), (Some("pruned"), Some(2), Some(20)));
    }

    #[test]
    fn pieces_rebuild_the_text() {
        for t in ["", "one", "a b c d e f g h i", "line\nbreak  double  spaces "] {
            assert_eq!(pieces(t).concat(), t);
        }
    }
}
