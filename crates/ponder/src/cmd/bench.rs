//! `ponder bench`: measurements written as JSON and summarised in BENCHMARKS.md.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use ponder_core::{Generator, Message, SampleRequest, SamplingParams};
use ponder_engine::{raw, Engine};
use serde::Serialize;

use crate::common::{self, ModelArgs};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Prefill and batched-decode throughput of the engine against raw llama.cpp calls
    Engine {
        #[command(flatten)]
        model: ModelArgs,
        /// Parallel sequences to measure
        #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
        seqs: Vec<usize>,
        /// Prompt length in tokens (approximately)
        #[arg(long, default_value_t = 256)]
        prompt_tokens: usize,
        /// Tokens generated per sequence
        #[arg(long, default_value_t = 64)]
        gen_tokens: usize,
        /// Runs per configuration and path; the best is kept
        #[arg(long, default_value_t = 2)]
        repeats: usize,
        /// Also run raw llama.cpp with one KV stream per sequence (attention reads only a
        /// sequence's own cells), the yardstick's other configuration
        #[arg(long)]
        raw_streams: bool,
        /// JSON results go here
        #[arg(long, default_value = "bench/engine.json")]
        out: PathBuf,
        /// Update the engine section of this Markdown file
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
    /// Particle filtering on the engine against the same algorithm re-prefilling every
    /// branch at every step (what a stateless HTTP backend pays)
    Search(super::bench_search::Args),
    /// Concurrent clients against one `ponder serve` gateway on the engine, against the same
    /// requests as direct engine calls: errors, throughput, the gateway's added latency
    Serve(super::bench_serve::Args),
    /// Math grader checks per second (and worst case on pathological inputs); sandboxed
    /// code checks per second at the pool's default size
    Verify {
        /// HumanEval canonical solutions to run in the sandbox
        #[arg(long, default_value_t = 164)]
        code_checks: usize,
        #[arg(long, default_value = "bench/verify.json")]
        out: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
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
    SamplerCost {
        n_vocab,
        greedy_us: time(SamplingParams::greedy()),
        temperature_us: time(SamplingParams { temperature: 0.7, ..SamplingParams::default() }),
        top_p_us: time(SamplingParams { temperature: 0.7, top_p: 0.95, ..SamplingParams::default() }),
    }
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Engine { model, seqs, prompt_tokens, gen_tokens, repeats, raw_streams, out, markdown } => {
            engine(model, seqs, prompt_tokens, gen_tokens, repeats, raw_streams, out, markdown)
        }
        Command::Verify { code_checks, out, markdown } => verify(code_checks, out, markdown),
        Command::Search(a) => super::bench_search::run(a),
        Command::Serve(a) => super::bench_serve::run(a),
    }
}

pub(crate) fn write_json(out: &std::path::Path, value: &impl Serialize) -> Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, serde_json::to_string_pretty(value)? + "\n").with_context(|| format!("writing {}", out.display()))
}

fn verify(code_checks: usize, out: PathBuf, markdown: PathBuf) -> Result<()> {
    eprintln!("grading MATH-500 answer pairs and pathological inputs ...");
    let math = ponder_verify::math::bench::run(&ponder_eval::tasks::competition::math500_solutions()?);
    eprintln!("running {code_checks} HumanEval canonical solutions in the sandbox ...");
    let code = ponder_verify::code::bench::run(ponder_eval::tasks::code::canonical_checks(code_checks))?;
    write_json(&out, &serde_json::json!({ "math": &math, "code": &code }))?;
    let mut table = String::from("| verifier | checks | checks/s | notes |\n|---|---:|---:|---|\n");
    table.push_str(&format!(
        "| math grader (1 thread) | {} | {:.0} | mean {:.1} µs, worst {:.0} µs per check; worst pathological input {:.1} ms |\n",
        math.n_checks,
        math.checks_per_sec,
        math.mean_check_us,
        math.worst_check_us,
        math.pathological.iter().map(|p| p.micros).fold(0.0, f64::max) / 1000.0
    ));
    table.push_str(&format!(
        "| code sandbox (pool of {}) | {} | {:.1} | {} passed; bubblewrap isolation: {} |\n",
        code.n_workers, code.n_checks, code.checks_per_s, code.n_passed, code.isolated
    ));
    println!("{table}");
    update_markdown(&markdown, "verify", &table)?;
    println!("wrote {} and the verify section of {}", out.display(), markdown.display());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn engine(
    model: ModelArgs,
    seqs: Vec<usize>,
    prompt_tokens: usize,
    gen_tokens: usize,
    repeats: usize,
    raw_streams: bool,
    out: PathBuf,
    markdown: PathBuf,
) -> Result<()> {
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
        "sampler over {} logits: greedy {:.0} µs, temperature {:.0} µs, top-p {:.0} µs per token",
        sampler.n_vocab, sampler.greedy_us, sampler.temperature_us, sampler.top_p_us
    );
    let report = Report { model: model.model.clone(), prompt_tokens, gen_tokens, threads: cfg.n_threads, rows, sampler };
    write_json(&out, &report)?;
    let table = markdown_table(&report);
    println!("{table}");
    update_markdown(&markdown, "engine", &table)?;
    println!("wrote {} and the engine section of {}", out.display(), markdown.display());
    Ok(())
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
         temperature with top-p {:.0} µs.\n",
        r.sampler.n_vocab, r.sampler.greedy_us, r.sampler.temperature_us, r.sampler.top_p_us
    ));
    s
}

/// Replaces the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`, appending
/// the section if it is missing.
pub fn update_markdown(path: &std::path::Path, name: &str, body: &str) -> Result<()> {
    let (open, close) = (format!("<!-- bench:{name} -->"), format!("<!-- /bench:{name} -->"));
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{open}\n{body}{close}");
    let new = match (old.find(&open), old.find(&close)) {
        (Some(a), Some(b)) if b > a => format!("{}{}{}", &old[..a], section, &old[b + close.len()..]),
        _ => format!("{old}\n{section}\n"),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}
