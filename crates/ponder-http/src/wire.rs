//! OpenAI wire format, the client side: request bodies from the contract's types, samples
//! (with their top log-probabilities and DeepConf statistics) and usage from response
//! bodies. Parsing is lenient (servers differ) but never guesses a token count. Public so
//! that other clients in the workspace (`ponder bench serve`) speak to servers in the same
//! shapes.

use ponder_core::answer::tools;
use ponder_core::{derive_seed, FinishReason, GenError, Message, Sample, SamplingParams, ToolCall, TopLogprob, Usage};
use serde_json::{json, Map, Value};

/// A message as OpenAI's `messages` array holds it.
pub fn message(m: &Message) -> Value {
    let mut v = json!({ "role": m.role.as_str(), "content": m.content });
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = Value::Array(
            m.tool_calls
                .iter()
                .map(|c| json!({ "id": c.id, "type": "function", "function": { "name": c.name, "arguments": c.arguments } }))
                .collect(),
        );
        if m.content.is_empty() {
            v["content"] = Value::Null;
        }
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    if let Some(n) = &m.name {
        v["name"] = json!(n);
    }
    v
}

pub fn messages(ms: &[Message]) -> Value {
    Value::Array(ms.iter().map(message).collect())
}

/// The raw prompt of a conversation for the completions endpoint: contents concatenated.
pub fn raw_prompt(ms: &[Message]) -> String {
    ms.iter().map(|m| m.content.as_str()).collect()
}

/// Seeds are sent as non-negative 63-bit integers (some servers reject larger).
pub fn seed(base: u64, index: u64) -> u64 {
    derive_seed(base, index) >> 1
}

/// Sampling fields shared by both endpoints. With `explicit` (the server accepted them at
/// start-up) top-k, top-p and min-p go on every request, off values included, so a
/// server's own defaults (llama-server: top-k 40, top-p 0.95, min-p 0.05; vLLM: the
/// model's generation config) never apply silently (issue 15). Without it `top_k` and
/// `min_p` go only when set, and a server that does not know them says so.
pub fn sampling(body: &mut Map<String, Value>, p: &SamplingParams, max_tokens: u32, stop: &[String], seed: u64, explicit: bool) {
    body.insert("max_tokens".into(), json!(max_tokens));
    body.insert("temperature".into(), json!(p.temperature));
    // `top_p` is OpenAI's own field: every compatible server takes it.
    body.insert("top_p".into(), json!(p.top_p));
    if explicit || p.top_k > 0 {
        body.insert("top_k".into(), json!(p.top_k));
    }
    if explicit || p.min_p > 0.0 {
        body.insert("min_p".into(), json!(p.min_p));
    }
    if p.ignore_eos {
        body.insert("ignore_eos".into(), json!(true));
    }
    if !stop.is_empty() {
        body.insert("stop".into(), json!(stop));
    }
    body.insert("seed".into(), json!(seed));
}

/// Usage as the server reports it. A ponder upstream's exact breakdown wins over the
/// OpenAI fields; otherwise `prompt_tokens_details.cached_tokens` counts as reused.
pub fn usage(v: &Value) -> Usage {
    if let Some(p) = v.pointer("/ponder/usage") {
        if let Ok(u) = serde_json::from_value::<Usage>(p.clone()) {
            return Usage { wall_ms: 0, ..u };
        }
    }
    let u = v.get("usage");
    let get = |path: &str| u.and_then(|u| u.pointer(path)).and_then(Value::as_u64).unwrap_or(0);
    let prompt = get("/prompt_tokens");
    let cached = get("/prompt_tokens_details/cached_tokens").min(prompt);
    Usage { prompt_computed: prompt - cached, prompt_reused: cached, completion: get("/completion_tokens"), ..Usage::default() }
}

/// Why a choice ended. `stop_reason` (vLLM, ponder) names the stop string that matched.
pub fn finish(choice: &Value, stops: &[String]) -> FinishReason {
    match choice.get("finish_reason").and_then(Value::as_str) {
        Some("length") => FinishReason::Length,
        Some("stop") => match choice.get("stop_reason").and_then(Value::as_str) {
            Some(s) if stops.iter().any(|x| x == s) => FinishReason::Stop(s.to_string()),
            _ => FinishReason::Eos,
        },
        _ => FinishReason::Eos,
    }
}

/// The text of a chat choice, with structured tool calls written into it.
pub fn chat_text(choice: &Value) -> String {
    let msg = choice.get("message");
    let mut text = msg.and_then(|m| m.get("content")).and_then(Value::as_str).unwrap_or("").to_string();
    let calls: Vec<ToolCall> = msg
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    let f = c.get("function")?;
                    Some(ToolCall {
                        id: c.get("id").and_then(Value::as_str).unwrap_or("").to_string(),
                        name: f.get("name")?.as_str()?.to_string(),
                        arguments: match f.get("arguments") {
                            Some(Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => "{}".into(),
                        },
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if !calls.is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&tools::encode(&calls));
    }
    text
}

/// Chosen-token logprobs of a chat choice (empty without).
pub fn chat_logprobs(choice: &Value) -> Vec<f32> {
    choice
        .pointer("/logprobs/content")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|t| t.get("logprob").and_then(Value::as_f64)).map(|x| x as f32).collect())
        .unwrap_or_default()
}

/// Bytes of each chosen token of a chat (`logprobs.content[].bytes`, else `.token`) or
/// completions (`logprobs.tokens`; llama-server answers in the chat shape there too) choice;
/// empty when the server reports none.
pub fn token_bytes(choice: &Value, chat: bool) -> Vec<Vec<u8>> {
    let content = choice.pointer("/logprobs/content");
    let (entries, chat) = if chat || content.is_some() { (content, true) } else { (choice.pointer("/logprobs/tokens"), false) };
    let Some(entries) = entries.and_then(Value::as_array) else { return Vec::new() };
    entries
        .iter()
        .map(|e| {
            let bytes = e.get("bytes").and_then(Value::as_array).and_then(|b| {
                b.iter().map(|x| x.as_u64().and_then(|x| u8::try_from(x).ok())).collect::<Option<Vec<u8>>>()
            });
            let text = if chat { e.get("token") } else { Some(e) };
            bytes.unwrap_or_else(|| text.and_then(Value::as_str).unwrap_or("").as_bytes().to_vec())
        })
        .collect()
}

/// Chosen-token logprobs and token strings of a completions choice: OpenAI's legacy shape
/// (`token_logprobs`, `tokens`) or the chat shape (`content[]`) llama-server uses.
pub fn completion_logprobs(choice: &Value) -> (Vec<f32>, Option<Vec<String>>) {
    let lp = choice.get("logprobs");
    if let Some(content) = lp.and_then(|l| l.get("content")).and_then(Value::as_array) {
        let values = content.iter().map(|t| t.get("logprob").and_then(Value::as_f64).unwrap_or(f64::NEG_INFINITY) as f32).collect();
        let tokens = content.iter().map(|t| t.get("token").and_then(Value::as_str).unwrap_or("").to_string()).collect();
        return (values, Some(tokens));
    }
    let values = lp
        .and_then(|l| l.get("token_logprobs"))
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(f64::NEG_INFINITY) as f32).collect())
        .unwrap_or_default();
    let tokens = lp
        .and_then(|l| l.get("tokens"))
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|t| t.as_str().unwrap_or("").to_string()).collect());
    (values, tokens)
}

/// The top log-probabilities at the first generated token of a completions choice, as
/// (token text, logprob): OpenAI's legacy `top_logprobs[0]` map or llama-server's
/// `content[0].top_logprobs` list. Empty when the server gave none.
pub fn first_top_logprobs(choice: &Value) -> Vec<(String, f32)> {
    let lp = choice.get("logprobs");
    if let Some(list) = lp.and_then(|l| l.pointer("/content/0/top_logprobs")).and_then(Value::as_array) {
        return list
            .iter()
            .filter_map(|t| Some((t.get("token")?.as_str()?.to_string(), t.get("logprob")?.as_f64()? as f32)))
            .collect();
    }
    lp.and_then(|l| l.pointer("/top_logprobs/0"))
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(t, x)| Some((t.clone(), x.as_f64()? as f32))).collect())
        .unwrap_or_default()
}

/// The top log-probabilities at every generated token of a choice, most likely first
/// (chat shape `content[].top_logprobs`, which llama-server also uses on completions, or
/// OpenAI's legacy `top_logprobs[]` maps); `None` when the server gave none.
pub fn top_logprobs_per_token(choice: &Value) -> Option<Vec<Vec<TopLogprob>>> {
    let lp = choice.get("logprobs")?;
    let mut per_token: Vec<Vec<TopLogprob>> = if let Some(content) = lp.get("content").and_then(Value::as_array) {
        content
            .iter()
            .map(|t| {
                let list = t.get("top_logprobs")?.as_array()?;
                Some(list.iter().filter_map(top_entry).collect())
            })
            .collect::<Option<_>>()?
    } else {
        lp.get("top_logprobs")?
            .as_array()?
            .iter()
            .map(|m| {
                let m = m.as_object()?;
                Some(m.iter().filter_map(|(t, x)| Some(TopLogprob { bytes: t.as_bytes().to_vec(), logprob: x.as_f64()? as f32 })).collect())
            })
            .collect::<Option<_>>()?
    };
    for top in &mut per_token {
        top.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));
    }
    Some(per_token)
}

/// One `{token, logprob, bytes?}` entry; the exact bytes where the server gives them.
fn top_entry(t: &Value) -> Option<TopLogprob> {
    let logprob = t.get("logprob")?.as_f64()? as f32;
    let bytes = match t.get("bytes").and_then(Value::as_array) {
        Some(b) => b.iter().map(|x| x.as_u64().and_then(|x| u8::try_from(x).ok())).collect::<Option<Vec<u8>>>()?,
        None => t.get("token")?.as_str()?.as_bytes().to_vec(),
    };
    Some(TopLogprob { bytes, logprob })
}

/// Choices in index order.
pub fn choices(v: &Value) -> Vec<Value> {
    let mut cs = v.get("choices").and_then(Value::as_array).cloned().unwrap_or_default();
    cs.sort_by_key(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0));
    cs
}

/// The sample with what the choice's top lists give, read once: the `top_logprobs` most
/// likely tokens at each position and DeepConf's statistics, each when asked for.
pub(crate) fn with_tops(s: Sample, choice: &Value, p: &SamplingParams) -> Result<Sample, GenError> {
    if p.top_logprobs == 0 && p.token_stats_k == 0 {
        return Ok(s);
    }
    let what = if p.top_logprobs > 0 { "top_logprobs" } else { "token statistics" };
    let tops = top_logprobs_per_token(choice)
        .filter(|t| t.len() == s.token_logprobs.len())
        .ok_or_else(|| GenError::Unsupported(format!("{what}: the server returned no top_logprobs for every token")))?;
    with_token_stats(with_top_logprobs(s, &tops, p), &tops, p)
}

fn with_top_logprobs(mut s: Sample, tops: &[Vec<TopLogprob>], p: &SamplingParams) -> Sample {
    if p.top_logprobs > 0 {
        s.top_logprobs = tops.iter().map(|t| t[..t.len().min(p.top_logprobs as usize)].to_vec()).collect();
    }
    s
}

/// The sample with DeepConf's per-token statistics from the choice's `top_logprobs`, when
/// `token_stats_k` asks for them, cut where `confidence_stop` would have stopped it. The
/// server has generated the whole trace by then: over HTTP the stop changes the answer as
/// it does on the engine, but saves the server nothing, and usage counts what it generated.
fn with_token_stats(mut s: Sample, tops: &[Vec<TopLogprob>], p: &SamplingParams) -> Result<Sample, GenError> {
    if p.token_stats_k == 0 {
        return Ok(s);
    }
    s.token_stats = tops.iter().map(|t| ponder_core::confidence::stats_from_top(&t.iter().map(|x| x.logprob).collect::<Vec<_>>())).collect();
    let Some(stop) = p.confidence_stop else { return Ok(s) };
    let Some(at) = ponder_core::confidence::first_low_group(&s.token_stats.iter().map(|t| t.confidence).collect::<Vec<_>>(), stop.window as usize, stop.threshold) else {
        return Ok(s);
    };
    if s.token_bytes.len() != s.token_logprobs.len() {
        return Err(GenError::Unsupported("confidence_stop: the server returned no token texts to cut the trace at".into()));
    }
    let keep = at + 1;
    s.text = String::from_utf8_lossy(&s.token_bytes[..keep].concat()).into_owned();
    s.token_logprobs.truncate(keep);
    s.token_bytes.truncate(keep);
    s.token_stats.truncate(keep);
    s.top_logprobs.truncate(keep);
    s.n_tokens = keep;
    s.finish = FinishReason::LowConfidence;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both logprob shapes a completions choice comes in give the same reading.
    fn check(choice: Value, logprobs: &[f32], tokens: &[&str], top: &[(&str, f32)]) {
        let (lp, toks) = completion_logprobs(&choice);
        assert_eq!(lp, logprobs);
        assert_eq!(toks.unwrap(), tokens);
        let mut got = first_top_logprobs(&choice);
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let want: Vec<(String, f32)> = top.iter().map(|(t, x)| (t.to_string(), *x)).collect();
        assert_eq!(got, want);
        let per_token = top_logprobs_per_token(&choice).expect("top logprobs");
        let most_likely_first: Vec<(String, f32)> =
            per_token[0].iter().map(|t| (String::from_utf8(t.bytes.clone()).unwrap(), t.logprob)).collect();
        assert_eq!(most_likely_first, want.iter().rev().cloned().collect::<Vec<_>>());
    }

    #[test]
    fn completion_logprobs_in_openai_and_llama_server_shapes() {
        let legacy = json!({ "text": " Yes", "logprobs": { "tokens": [" Yes"], "token_logprobs": [-0.25],
            "top_logprobs": [{ " Yes": -0.25, " No": -1.5 }] } });
        let chat_shape = json!({ "text": " Yes", "logprobs": { "content": [{ "id": 7, "token": " Yes", "bytes": [32, 89, 101, 115],
            "logprob": -0.25, "top_logprobs": [{ "id": 7, "token": " Yes", "logprob": -0.25 }, { "id": 8, "token": " No", "logprob": -1.5 }] }] } });
        for choice in [legacy, chat_shape] {
            check(choice, &[-0.25], &[" Yes"], &[(" No", -1.5), (" Yes", -0.25)]);
        }
        assert!(first_top_logprobs(&json!({ "text": "x", "logprobs": null })).is_empty());
        assert!(top_logprobs_per_token(&json!({ "text": "x", "logprobs": null })).is_none());
        let no_top = json!({ "logprobs": { "content": [{ "token": "x", "logprob": -0.5 }] } });
        assert!(top_logprobs_per_token(&no_top).is_none(), "a token without top_logprobs is not an empty list");
    }

    #[test]
    fn off_sampling_values_are_sent_where_the_server_takes_them() {
        let p = SamplingParams::default();
        let mut explicit = Map::new();
        sampling(&mut explicit, &p, 8, &[], 1, true);
        assert_eq!((explicit["top_k"].clone(), explicit["top_p"].clone(), explicit["min_p"].clone()), (json!(0), json!(1.0), json!(0.0)));
        let mut bare = Map::new();
        sampling(&mut bare, &p, 8, &[], 1, false);
        assert!(!bare.contains_key("top_k") && !bare.contains_key("min_p") && bare.contains_key("top_p"));
    }
}
