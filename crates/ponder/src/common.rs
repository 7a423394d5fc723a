//! Flags and set-up shared by the subcommands.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use ponder_core::answer::{extract_answer, NumericEquivalence};
use ponder_core::scorer::{CheckerScorer, MeanLogprob, OutcomeScorer};
use ponder_core::strategy::{self, Ctx, Strategy};
use ponder_core::{Checker, Generator, SamplingParams};
use ponder_engine::{Engine, EngineConfig};
use ponder_models::{Fetcher, ModelRef};

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A registry name (see `ponder models list`), a path to a .gguf file, or hf:ORG/REPO/FILE.gguf
    #[arg(long, short, env = "PONDER_MODEL", default_value = ponder_models::DEFAULT_MODEL)]
    pub model: String,
    /// KV-cache cells shared by all parallel sequences
    #[arg(long, default_value_t = 16384)]
    pub ctx: u32,
    /// CPU threads (default: all cores)
    #[arg(long, env = "PONDER_THREADS")]
    pub threads: Option<i32>,
}

impl ModelArgs {
    pub fn engine_config(&self) -> EngineConfig {
        let mut cfg = EngineConfig { n_ctx: self.ctx, ..EngineConfig::default() };
        if let Some(t) = self.threads {
            cfg.n_threads = t;
        }
        cfg
    }

    /// The model file, fetched into the cache first if it is a registry name not yet pulled.
    pub fn resolve(&self) -> Result<std::path::PathBuf> {
        let r = ponder_models::parse_ref(&self.model)?;
        let mut fetcher = Fetcher::from_env()?;
        fetcher.allow_download = true;
        if let ModelRef::Named(spec) = &r {
            if fetcher.cached(spec).is_none() {
                eprintln!("ponder: model {} is not in the cache yet; pulling it", spec.name);
            }
        }
        Ok(fetcher.resolve(&r)?)
    }

    pub fn load(&self) -> Result<Engine> {
        let path = self.resolve()?;
        Engine::load(&path, self.engine_config()).with_context(|| format!("loading model {}", path.display()))
    }
}

#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// 0 is greedy
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// 0 turns top-k off
    #[arg(long, default_value_t = 0)]
    pub top_k: u32,
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most tokens per sample
    #[arg(long, default_value_t = 256)]
    pub max_tokens: u32,
}

impl SamplingArgs {
    pub fn params(&self) -> Result<SamplingParams> {
        let p = SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            seed: self.seed,
            max_tokens: self.max_tokens,
            ..SamplingParams::default()
        };
        p.validate()?;
        Ok(p)
    }
}

/// The scorers `--scorer` accepts.
pub const SCORERS: &[&str] = &["mean-logprob", "checker"];

pub fn scorer(name: &str, checker: Option<Arc<dyn Checker>>) -> Result<Box<dyn OutcomeScorer>> {
    Ok(match name {
        "mean-logprob" => Box::new(MeanLogprob),
        "checker" => match checker {
            Some(c) => Box::new(CheckerScorer(c)),
            None => bail!("scorer checker needs a dataset (ponder eval) or a --gold answer"),
        },
        other => bail!("unknown scorer {other:?} (known: {})", SCORERS.join(", ")),
    })
}

/// Builds the strategy, failing before any model is loaded.
pub fn strategy(name: &str, budget: usize, sampling: &SamplingParams) -> Result<Box<dyn Strategy>> {
    Ok(strategy::build(name, budget, sampling.clone())?)
}

pub static EQUIVALENCE: NumericEquivalence = NumericEquivalence;

/// A strategy context with the v1 numeric answer rules.
pub fn ctx<'a>(generator: &'a dyn Generator, scorer: Option<&'a dyn OutcomeScorer>) -> Ctx<'a> {
    Ctx { generator, equivalence: &EQUIVALENCE, extract: extract_answer, scorer, process: None, verifier: None }
}

/// A strategy context with a dataset's own answer rules and verifier (code: visible tests).
pub fn dataset_ctx<'a>(
    generator: &'a dyn Generator,
    dataset: &'a ponder_eval::Dataset,
    scorer: Option<&'a dyn OutcomeScorer>,
) -> Ctx<'a> {
    Ctx {
        generator,
        equivalence: dataset.equivalence.as_ref(),
        extract: dataset.extract,
        scorer,
        process: None,
        verifier: dataset.verifier.as_deref(),
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting the async runtime")
}

pub fn fmt_usage(u: &ponder_core::Usage) -> String {
    format!(
        "prompt computed {} · prompt reused {} · completion {} · scorer passes {} · wall {:.2} s",
        u.prompt_computed,
        u.prompt_reused,
        u.completion,
        u.scorer_passes,
        u.wall_ms as f64 / 1000.0
    )
}

/// Adds the prompt style's stop strings (a base model would go on to invent the next question).
pub fn with_stops(mut sampling: SamplingParams, style: ponder_eval::PromptStyle) -> SamplingParams {
    sampling.stop.extend(style.stop().iter().map(|s| s.to_string()));
    sampling
}
