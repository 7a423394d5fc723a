//! `ponder bench engine`: prefill and batched-decode throughput of the engine against raw
//! llama.cpp calls (the yardstick, `ponder_engine::raw`), and what the sampler costs per
//! token on the actor thread.

use std::time::Instant;

use anyhow::Result;
use clap::Args as ClapArgs;
use ponder_core::{Generator, Message, SampleRequest, SamplingParams};
use ponder_engine::{raw, Engine};
use serde::Serialize;

use super::report::ReportArgs;
use crate::common::{self, ModelArgs};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Parallel sequences to measure
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    pub seqs: Vec<usize>,
    /// Prompt length in tokens (approximately)
    #[arg(long, default_value_t = 256)]
    pub prompt_tokens: usize,
    /// Tokens generated per sequence
    #[arg(long, default_value_t = 64)]
    pub gen_tokens: usize,
    /// Runs per configuration and path; the best is kept
    #[arg(long, default_value_t = 2)]
    pub repeats: usize,
    /// Also run raw llama.cpp with one KV stream per sequence (attention reads only a
    /// sequence's own cells), the yardstick's other configuration
    #[arg(long)]
    pub raw_streams: bool,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Serialize)]
struct Row {
    n_seqs: usize,
    /// Raw llama.cpp with a KV stream per sequence (`--raw-streams`).
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_streams_decode_tok_s: Option<f64>,
    raw_prefill_tok_s: f64,
    engine_prefill_tok_s: f64,
    raw_decode_tok_s: f64,
    engine_decode_tok_s: f64,
    decode_ratio: f64,
}

#[derive(Serialize)]
struct Report {
    model: String,
    prompt_tokens: usize,
    gen_tokens: usize,
    threads: i32,
    rows: Vec<Row>,
    sampler: SamplerCost,
}

/// What one sampled token costs the actor thread (llama.cpp's threads wait meanwhile),
/// over logits of the model's vocabulary size.
#[derive(Serialize)]
struct SamplerCost {
    n_vocab: usize,
    greedy_us: f64,
    temperature_us: f64,
    top_p_us: f64,
    /// DeepConf's per-token statistics over the top 20 (`token_stats_k`), on top of a pick.
    token_stats_us: f64,
}

/// Mean microseconds per pick, over logits shaped like a model's (a few large, most small).
fn sampler_cost(n_vocab: usize) -> SamplerCost {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let logits: Vec<f32> = (0..n_vocab).map(|_| rng.gen::<f32>() * 8.0 - 4.0 + if rng.gen_bool(0.001) { 12.0 } else { 0.0 }).collect();
    let mut sampler = ponder_engine::sampler::Sampler::default();
    let mut time = |params: SamplingParams| {
        let n = 400;
        let t = Instant::now();
        let mut sink = 0usize;
        for _ in 0..n {
            sink = sink.wrapping_add(sampler.pick(&logits, &params, &mut rng).token);
        }
        std::hint::black_box(sink);
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    };
    let stats_us = {
        let n = 400;
        let t = Instant::now();
        let mut sink = 0f32;
        for _ in 0..n {
            sink += ponder_engine::sampler::token_stats(&logits, 20).confidence;
        }
        std::hint::black_box(sink);
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    };
    SamplerCost {
        n_vocab,
        token_stats_us: stats_us,
        greedy_us: time(SamplingParams::greedy()),
        temperature_us: time(SamplingParams { temperature: 0.7, ..SamplingParams::default() }),
        top_p_us: time(SamplingParams { temperature: 0.7, top_p: 0.95, ..SamplingParams::default() }),
    }
}

pub fn run(a: Args) -> Result<()> {
    let Args { model, seqs, prompt_tokens, gen_tokens, repeats, raw_streams, report } = a;
    if seqs.is_empty() || seqs.contains(&0) {
        anyhow::bail!("--seqs needs positive counts, got {seqs:?}");
    }
    let engine = model.load()?;
    let cfg = model.engine_config();
    let rt = common::runtime()?;
    let mut rows = Vec::new();
    let mut nonce = 0u64;
    for &n in &seqs {
        let (mut best_raw, mut best_eng) = ((0.0f64, 0.0f64), (0.0f64, 0.0f64));
        let mut best_streams = None::<f64>;
        for _ in 0..repeats.max(1) {
            nonce += 1;
            let text = prompt_text(nonce, prompt_tokens, &engine);
            let tokens = engine.tokenize(&text);
            let r = raw::run(engine.model(), &cfg, &tokens, n, gen_tokens, 0.7, nonce as u32)?;
            best_raw = (best_raw.0.max(r.prefill_tok_s()), best_raw.1.max(r.decode_tok_s()));
            if raw_streams {
                // One stream per sequence, each big enough for the prompt and the generation.
                let per_seq = (tokens.len() + gen_tokens + 64).next_power_of_two() as u32;
                let streams = ponder_engine::EngineConfig { kv_unified: false, n_seq_max: n as u32, n_ctx: per_seq * n as u32, ..cfg.clone() };
                let r = raw::run(engine.model(), &streams, &tokens, n, gen_tokens, 0.7, nonce as u32)?;
                best_streams = Some(best_streams.unwrap_or(0.0).max(r.decode_tok_s()));
            }
            nonce += 1;
            let e = rt.block_on(engine_run(&engine, nonce, prompt_tokens, n, gen_tokens))?;
            best_eng = (best_eng.0.max(e.0), best_eng.1.max(e.1));
        }
        let row = Row {
            n_seqs: n,
            raw_streams_decode_tok_s: best_streams,
            raw_prefill_tok_s: best_raw.0,
            engine_prefill_tok_s: best_eng.0,
            raw_decode_tok_s: best_raw.1,
            engine_decode_tok_s: best_eng.1,
            decode_ratio: best_eng.1 / best_raw.1,
        };
        eprintln!(
            "n={n:>3}  decode tok/s raw {:>7.1} {}engine {:>7.1} ({:.0}%)  prefill tok/s raw {:>6.1} engine {:>6.1}",
            row.raw_decode_tok_s,
            row.raw_streams_decode_tok_s.map_or(String::new(), |x| format!("raw per-seq streams {x:>7.1} ")),
            row.engine_decode_tok_s,
            100.0 * row.decode_ratio,
            row.raw_prefill_tok_s,
            row.engine_prefill_tok_s
        );
        rows.push(row);
    }
    let sampler = sampler_cost(engine.model().n_vocab().max(1) as usize);
    eprintln!(
        "sampler over {} logits: greedy {:.0} µs, temperature {:.0} µs, top-p {:.0} µs per token; token confidence (top 20) {:.0} µs more",
        sampler.n_vocab, sampler.greedy_us, sampler.temperature_us, sampler.top_p_us, sampler.token_stats_us
    );
    let result = Report { model: model.model.clone(), prompt_tokens, gen_tokens, threads: cfg.n_threads, rows, sampler };
    report.write("engine", &result, &markdown_table(&result))
}

/// A prompt of about `n_tokens` tokens that no earlier run shares a prefix with.
fn prompt_text(nonce: u64, n_tokens: usize, engine: &Engine) -> String {
    let mut text = format!("Run {nonce}. Here is a story about numbers.");
    let filler = " The river carried seven boats past the old mill, and each boat held three crates of apples.";
    while engine.tokenize(&text).len() < n_tokens {
        text.push_str(filler);
    }
    text
}

/// (prefill tok/s, decode tok/s) through the engine's public contract.
async fn engine_run(engine: &Engine, nonce: u64, prompt_tokens: usize, n: usize, gen: usize) -> Result<(f64, f64)> {
    // Prefill alone: one sample of one token is sampled from the prompt's logits, no decode.
    let one = |nonce: u64, n: usize, max_tokens: u32| SampleRequest {
        messages: vec![Message::user(prompt_text(nonce, prompt_tokens, engine))],
        n,
        params: SamplingParams { max_tokens, ignore_eos: true, seed: nonce, ..SamplingParams::default() },
        first_index: 0,
    };
    let t = Instant::now();
    let got = engine.sample(one(nonce + 1_000_000, 1, 1)).await?.collect().await?;
    let prefill_s = t.elapsed().as_secs_f64();
    let prefill_tok_s = got.usage.prompt_computed as f64 / prefill_s;
    // Prefill + `gen` decode steps; the prefill part is subtracted.
    let t = Instant::now();
    let got = engine.sample(one(nonce, n, gen as u32 + 1)).await?.collect().await?;
    let total_s = t.elapsed().as_secs_f64();
    let decode_s = (total_s - prefill_s).max(1e-9);
    anyhow::ensure!(got.samples.len() == n, "engine returned {} of {n} samples", got.samples.len());
    Ok((prefill_tok_s, (n * gen) as f64 / decode_s))
}

fn markdown_table(r: &Report) -> String {
    let mut s = format!(
        "Model `{}`, prompt ≈{} tokens, {} tokens generated per sequence, {} threads, best of repeats.\n\n",
        r.model, r.prompt_tokens, r.gen_tokens, r.threads
    );
    s.push_str("| parallel seqs | raw decode tok/s | engine decode tok/s | engine / raw | raw prefill tok/s | engine prefill tok/s |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|\n");
    for row in &r.rows {
        s.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.0}% | {:.1} | {:.1} |\n",
            row.n_seqs,
            row.raw_decode_tok_s,
            row.engine_decode_tok_s,
            100.0 * row.decode_ratio,
            row.raw_prefill_tok_s,
            row.engine_prefill_tok_s
        ));
    }
    s.push_str(&format!(
        "\nSampler, per token on the actor thread over {} logits: greedy {:.0} µs, temperature {:.0} µs, \
         temperature with top-p {:.0} µs; DeepConf's token confidence and entropy (top 20) {:.0} µs more.\n",
        r.sampler.n_vocab, r.sampler.greedy_us, r.sampler.temperature_us, r.sampler.top_p_us, r.sampler.token_stats_us
    ));
    s
}
