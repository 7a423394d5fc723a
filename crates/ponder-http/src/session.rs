//! Step-wise sessions over HTTP. A branch is text: `fork` copies it, `extend` sends one
//! request per branch (all in parallel) that continues the prompt plus the branch's text
//! and stops at the step delimiter, `rollback` truncates (at token boundaries the server
//! reported, else at step boundaries), `release` drops it. Every step re-sends the whole
//! prefix; the server's prefix cache decides what that costs, and its usage says so.

use std::collections::HashMap;

use async_trait::async_trait;
use ponder_core::{derive_seed, BranchId, FinishReason, GenError, Message, Step, StepParams, StepSession, Usage};
use serde_json::{json, Map, Value};

use crate::config::StepMode;
use crate::generator::HttpGenerator;
use crate::wire;

#[derive(Debug, Clone, Default)]
struct Branch {
    text: String,
    /// Generated tokens (appended text excluded).
    n_tokens: usize,
    /// Byte length of `text` after each generated token, while every token's text is known.
    ends: Option<Vec<usize>>,
    /// (tokens, bytes) at each step boundary, for rollback without token texts.
    marks: Vec<(usize, usize)>,
    steps: u64,
    /// Seed of this branch's own random stream.
    seed: u64,
    /// (step id unique in the session, tokens it generated) for each step this branch
    /// holds; a fork copies them, so equal ids are shared tokens (`Usage::dropped`).
    segments: Vec<(u64, usize)>,
    /// Its last step ended it on its own: releasing it drops nothing.
    ended: bool,
}

/// Generated tokens `a` and `b` both hold (their common prefix of steps).
fn shared_tokens(a: &[(u64, usize)], b: &[(u64, usize)]) -> usize {
    let mut n = 0;
    for (x, y) in a.iter().zip(b) {
        if x.0 != y.0 {
            break;
        }
        n += x.1.min(y.1);
        if x.1 != y.1 {
            break; // one of them was rolled back inside this step
        }
    }
    n
}

/// A step-wise session on an HTTP backend.
pub struct HttpSession {
    gen: HttpGenerator,
    mode: StepMode,
    /// The rendered prompt (completions mode).
    prompt: String,
    messages: Vec<Message>,
    route: usize,
    branches: HashMap<BranchId, Branch>,
    next_id: BranchId,
    next_step: u64,
    usage: Usage,
}

impl HttpSession {
    pub async fn open(gen: HttpGenerator, messages: &[Message], seed: u64) -> Result<HttpSession, GenError> {
        if messages.is_empty() {
            return Err(GenError::InvalidRequest("messages must not be empty".into()));
        }
        let mode = gen.step_mode();
        let prompt = match mode {
            StepMode::Completions => gen.render(messages).await?,
            StepMode::ContinueFinalMessage => String::new(),
            StepMode::None | StepMode::Auto => {
                return Err(GenError::Unsupported(format!(
                    "step-wise sessions: the server at {} offers neither prompt rendering (/apply-template) with \
                     completions nor continue_final_message; search strategies need one (set step_mode if it does)",
                    gen.shared.pool.endpoints[0].url
                )))
            }
        };
        let route = gen.route_for(&wire::messages(messages).to_string());
        let mut branches = HashMap::new();
        branches.insert(0, Branch { ends: Some(Vec::new()), seed, ..Branch::default() });
        Ok(HttpSession { gen, mode, prompt, messages: messages.to_vec(), route, branches, next_id: 1, next_step: 0, usage: Usage::default() })
    }

    /// The rendered prompt the branches continue; empty in `continue_final_message` mode,
    /// where the server renders it unseen.
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    fn branch(&self, id: BranchId) -> Result<&Branch, GenError> {
        self.branches.get(&id).ok_or(GenError::UnknownBranch(id))
    }

    /// The branch's whole prompt text (completions mode).
    fn text_of(&self, b: &Branch) -> String {
        format!("{}{}", self.prompt, b.text)
    }

    /// One step of one branch.
    async fn step(&self, id: BranchId, b: &Branch, params: &StepParams) -> Result<(Step, Option<Vec<String>>, Usage), GenError> {
        let room = (params.max_total_tokens as usize).saturating_sub(b.n_tokens);
        let max_tokens = (params.max_step_tokens as usize).min(room);
        if max_tokens == 0 {
            let step = Step { branch: id, text: String::new(), n_tokens: 0, token_logprobs: Vec::new(), token_bytes: Vec::new(), token_stats: Vec::new(), top_logprobs: Vec::new(), finish: FinishReason::Length };
            return Ok((step, Some(Vec::new()), Usage::default()));
        }
        let caps = self.gen.caps();
        let s = &params.sampling;
        let mut stop = Vec::new();
        if let Some(d) = &params.delimiter {
            stop.push(d.clone());
        }
        stop.extend(s.stop.iter().cloned());
        let mut body = Map::new();
        body.insert("model".into(), json!(caps.model));
        wire::sampling(&mut body, s, max_tokens as u32, &stop, derive_seed(b.seed, b.steps) >> 1, caps.sampling_fields);
        let path = match self.mode {
            StepMode::ContinueFinalMessage => {
                let mut ms = wire::messages(&self.messages).as_array().cloned().unwrap_or_default();
                ms.push(json!({ "role": "assistant", "content": b.text }));
                body.insert("messages".into(), Value::Array(ms));
                body.insert("continue_final_message".into(), json!(true));
                body.insert("add_generation_prompt".into(), json!(false));
                if caps.chat_logprobs {
                    body.insert("logprobs".into(), json!(true));
                }
                "/chat/completions"
            }
            _ => {
                body.insert("prompt".into(), json!(self.text_of(b)));
                if caps.completion_logprobs {
                    body.insert("logprobs".into(), json!(1));
                }
                "/completions"
            }
        };
        if caps.ponder {
            body.insert("ponder".into(), json!({ "strategy": "single", "progress": "none" }));
        }
        let (v, lost) = self.gen.shared.pool.post(self.route, path, &Value::Object(body), None).await;
        let v = v?;
        let choice = wire::choices(&v).into_iter().next().ok_or_else(|| GenError::Backend(format!("{path} returned no choice")))?;
        let usage = Usage { unreported: lost, ..wire::usage(&v) };
        let (mut text, logprobs, tokens) = if self.mode == StepMode::ContinueFinalMessage {
            (wire::chat_text(&choice), wire::chat_logprobs(&choice), None)
        } else {
            let (lp, toks) = wire::completion_logprobs(&choice);
            (choice.get("text").and_then(Value::as_str).unwrap_or("").to_string(), lp, toks)
        };
        let n_tokens = if usage.completion > 0 { usage.completion as usize } else { logprobs.len() };
        let hit_total = b.n_tokens + n_tokens >= params.max_total_tokens as usize;
        let finish = match choice.get("finish_reason").and_then(Value::as_str) {
            Some("length") if hit_total => FinishReason::Length,
            Some("length") => FinishReason::StepEnd,
            Some("stop") => match (choice.get("stop_reason"), &params.delimiter) {
                (Some(Value::String(r)), Some(d)) if r == d => {
                    text.push_str(d);
                    FinishReason::StepEnd
                }
                (Some(Value::String(r)), _) if s.stop.contains(r) => FinishReason::Stop(r.clone()),
                (Some(_), _) => FinishReason::Eos,
                // A server that does not say which stop matched: a non-empty step that
                // stopped is taken to have ended at the delimiter; an empty one at EOS.
                (None, Some(d)) if !text.is_empty() => {
                    text.push_str(d);
                    FinishReason::StepEnd
                }
                (None, _) => FinishReason::Eos,
            },
            _ => FinishReason::Eos,
        };
        let finish = if finish == FinishReason::StepEnd && hit_total { FinishReason::Length } else { finish };
        // Token texts are usable for rollback only if they spell the step's text exactly.
        let tokens = tokens.filter(|t| t.len() == n_tokens && t.concat() == text.get(..t.concat().len()).unwrap_or(""));
        let token_bytes = wire::token_bytes(&choice, self.mode == StepMode::ContinueFinalMessage);
        let step = Step { branch: id, text, n_tokens, token_logprobs: logprobs, token_bytes, token_stats: Vec::new(), top_logprobs: Vec::new(), finish };
        Ok((step, tokens, usage))
    }
}

#[async_trait]
impl StepSession for HttpSession {
    fn root(&self) -> BranchId {
        0
    }

    async fn fork(&mut self, branch: BranchId, n: usize) -> Result<Vec<BranchId>, GenError> {
        let parent = self.branch(branch)?.clone();
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let id = self.next_id;
            self.next_id += 1;
            let seed = derive_seed(parent.seed ^ 0x5eed, id);
            self.branches.insert(id, Branch { seed, ..parent.clone() });
            ids.push(id);
        }
        Ok(ids)
    }

    async fn extend(&mut self, branches: &[BranchId], params: &StepParams) -> Result<Vec<Step>, GenError> {
        params.sampling.validate()?;
        let snapshot: Vec<(BranchId, Branch)> =
            branches.iter().map(|&id| self.branch(id).map(|b| (id, b.clone()))).collect::<Result<_, _>>()?;
        let started = std::time::Instant::now();
        let results = futures::future::join_all(snapshot.iter().map(|(id, b)| self.step(*id, b, params))).await;
        self.usage.wall_ms += started.elapsed().as_millis() as u64;
        let mut steps = Vec::with_capacity(results.len());
        for ((id, _), r) in snapshot.into_iter().zip(results) {
            let (step, tokens, usage) = r?;
            self.usage += usage;
            self.next_step += 1;
            let step_id = self.next_step;
            let b = self.branches.get_mut(&id).ok_or(GenError::UnknownBranch(id))?;
            let base = b.text.len();
            let token_ends = tokens.map(|ts| {
                let mut at = base;
                ts.iter()
                    .map(|t| {
                        at += t.len();
                        at
                    })
                    .collect::<Vec<_>>()
            });
            match (&mut b.ends, token_ends) {
                (Some(ends), Some(new)) => ends.extend(new),
                (ends, _) => *ends = None,
            }
            b.text.push_str(&step.text);
            b.n_tokens += step.n_tokens;
            b.steps += 1;
            b.marks.push((b.n_tokens, b.text.len()));
            b.segments.push((step_id, step.n_tokens));
            b.ended = step.is_final() && !step.finish.is_dropped();
            steps.push(step);
        }
        Ok(steps)
    }

    async fn rollback(&mut self, branch: BranchId, n_tokens: usize) -> Result<(), GenError> {
        let b = self.branches.get_mut(&branch).ok_or(GenError::UnknownBranch(branch))?;
        if n_tokens >= b.n_tokens {
            return Ok(());
        }
        let cut = if n_tokens == 0 {
            Some(0)
        } else if let Some(ends) = b.ends.as_ref().filter(|e| e.len() == b.n_tokens) {
            Some(ends[n_tokens - 1])
        } else {
            b.marks.iter().find(|(t, _)| *t == n_tokens).map(|(_, bytes)| *bytes)
        };
        let cut = cut.filter(|&c| b.text.is_char_boundary(c)).ok_or_else(|| {
            GenError::Unsupported(format!(
                "rolling back to token {n_tokens} over HTTP: the server reported no token texts and it is not a step boundary"
            ))
        })?;
        b.text.truncate(cut);
        b.n_tokens = n_tokens;
        if let Some(e) = b.ends.as_mut() {
            e.truncate(n_tokens);
        }
        b.marks.retain(|(t, _)| *t <= n_tokens);
        let mut left = n_tokens;
        b.segments.retain_mut(|seg| {
            seg.1 = seg.1.min(left);
            left -= seg.1;
            seg.1 > 0
        });
        b.ended = false;
        Ok(())
    }

    async fn release(&mut self, branches: &[BranchId]) -> Result<(), GenError> {
        for id in branches {
            let b = self.branches.remove(id).ok_or(GenError::UnknownBranch(*id))?;
            if !b.ended {
                // The server reported each step's tokens: those no branch left holds were for nothing.
                let shared = self.branches.values().map(|o| shared_tokens(&b.segments, &o.segments)).max().unwrap_or(0);
                self.usage.dropped += (b.segments.iter().map(|s| s.1).sum::<usize>() - shared) as u64;
            }
        }
        Ok(())
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    async fn append(&mut self, branch: BranchId, text: &str) -> Result<(), GenError> {
        let b = self.branches.get_mut(&branch).ok_or(GenError::UnknownBranch(branch))?;
        b.text.push_str(text);
        b.ends = None;
        b.marks.push((b.n_tokens, b.text.len()));
        Ok(())
    }

    async fn probe(
        &mut self,
        branches: &[BranchId],
        suffix: &str,
        candidates: &[String],
    ) -> Result<(Vec<Vec<f32>>, Usage), GenError> {
        if self.mode != StepMode::Completions {
            return Err(GenError::Unsupported("next-token probes without a rendered prompt (continue_final_message mode)".into()));
        }
        let prompts: Vec<String> =
            branches.iter().map(|&id| self.branch(id).map(|b| self.text_of(b))).collect::<Result<_, _>>()?;
        self.gen.probe_at(self.route, &prompts, suffix, candidates).await
    }
}

#[cfg(test)]
mod tests {
    use super::shared_tokens;

    #[test]
    fn branches_share_the_steps_they_were_forked_with() {
        let parent = [(1, 5), (2, 3), (4, 6)];
        assert_eq!(shared_tokens(&parent, &[(1, 5), (2, 3), (5, 2)]), 8, "forked after two steps");
        assert_eq!(shared_tokens(&parent, &[(1, 5), (2, 1)]), 6, "rolled back inside step 2");
        assert_eq!(shared_tokens(&parent, &[(3, 5)]), 0);
        assert_eq!(shared_tokens(&parent, &[]), 0);
        assert_eq!(shared_tokens(&parent, &parent), 14);
    }
}
