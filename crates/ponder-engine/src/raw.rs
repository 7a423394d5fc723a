//! Raw llama.cpp decoding without ponder's scheduler, channels or sampler: the yardstick
//! `ponder bench engine` compares the engine against, in the same process and run.
//!
//! It follows llama.cpp's own `batched` example: prefill the prompt in sequence 0, copy
//! it to the other sequences, then decode one token per sequence per batch with
//! llama.cpp's sampler chain.

use std::time::Instant;

use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use crate::{backend, EngineConfig, EngineError};

/// Timings of one raw run.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RawTimings {
    pub prompt_tokens: usize,
    pub n_seqs: usize,
    pub tokens_per_seq: usize,
    pub prefill_s: f64,
    pub decode_s: f64,
}

impl RawTimings {
    pub fn prefill_tok_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill_s
    }
    pub fn decode_tok_s(&self) -> f64 {
        (self.n_seqs * self.tokens_per_seq) as f64 / self.decode_s
    }
}

/// Prefills `prompt` once, forks it into `n_seqs` sequences and decodes `n_gen` tokens in each
/// (end-of-generation tokens are sampled like any other, so lengths are fixed).
pub fn run(
    model: &LlamaModel,
    cfg: &EngineConfig,
    prompt: &[LlamaToken],
    n_seqs: usize,
    n_gen: usize,
    temperature: f32,
    seed: u32,
) -> Result<RawTimings, EngineError> {
    let mut ctx = model.new_context(backend()?, cfg.context_params()).map_err(|e| EngineError::Context(e.to_string()))?;
    let err = |e: &dyn std::fmt::Display| EngineError::Context(e.to_string());
    let mut batch = LlamaBatch::new(cfg.n_batch as usize, n_seqs as i32);

    let t0 = Instant::now();
    for chunk_start in (0..prompt.len()).step_by(cfg.n_batch as usize) {
        batch.clear();
        let end = (chunk_start + cfg.n_batch as usize).min(prompt.len());
        for (i, &tok) in prompt[chunk_start..end].iter().enumerate() {
            let pos = chunk_start + i;
            batch.add(tok, pos as i32, &[0], pos + 1 == prompt.len()).map_err(|e| err(&e))?;
        }
        ctx.decode(&mut batch).map_err(|e| err(&e))?;
    }
    let prefill_s = t0.elapsed().as_secs_f64();
    for s in 1..n_seqs {
        ctx.copy_kv_cache_seq(0, s as i32, None, None).map_err(|e| err(&e))?;
    }
    let mut samplers: Vec<LlamaSampler> = (0..n_seqs)
        .map(|s| LlamaSampler::chain_simple([LlamaSampler::temp(temperature), LlamaSampler::dist(seed + s as u32)]))
        .collect();

    let t1 = Instant::now();
    let mut logits_at: Vec<i32> = vec![batch.n_tokens() - 1; n_seqs];
    for step in 0..n_gen {
        let next: Vec<LlamaToken> = samplers.iter_mut().zip(&logits_at).map(|(s, &i)| s.sample(&ctx, i)).collect();
        batch.clear();
        for (s, &tok) in next.iter().enumerate() {
            batch.add(tok, (prompt.len() + step) as i32, &[s as i32], true).map_err(|e| err(&e))?;
            logits_at[s] = s as i32;
        }
        ctx.decode(&mut batch).map_err(|e| err(&e))?;
    }
    let decode_s = t1.elapsed().as_secs_f64();
    Ok(RawTimings { prompt_tokens: prompt.len(), n_seqs, tokens_per_seq: n_gen, prefill_s, decode_s })
}
