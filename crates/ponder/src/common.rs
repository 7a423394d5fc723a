//! Flags and set-up shared by the subcommands.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use ponder_core::answer::{extract_answer, NumericEquivalence};
use ponder_core::process::{Aggregate, ProcessAsOutcome, ProcessScorer, PromptFn, SelfEval, StepCheck};
use ponder_core::scorer::{CheckerScorer, MeanLogprob, OutcomeScorer};
use ponder_core::strategy::{Ctx, FinalPick, Resampling, SearchConfig};
use ponder_engine::judge::Judge;
use ponder_engine::prm::{PrmFormat, TokenPrm};
use ponder_core::{Checker, Generator, SamplingParams};
use ponder_engine::{Engine, EngineConfig};
use ponder_eval::PromptTemplate;
use ponder_models::{Fetcher, ModelRef};

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A registry name (see `ponder models list`), a path to a .gguf file, or hf:ORG/REPO/FILE.gguf
    #[arg(long, short, env = "PONDER_MODEL", default_value = ponder_models::DEFAULT_MODEL)]
    pub model: String,
    /// KV-cache cells shared by all parallel sequences (samples, branches, requests). One
    /// sequence's prompt and completion never exceed the model's training context, however
    /// large this is (SmolLM2: 8192); the default leaves room for many samples at once
    #[arg(long, default_value_t = 16384)]
    pub ctx: u32,
    /// CPU threads (default: all cores)
    #[arg(long, env = "PONDER_THREADS")]
    pub threads: Option<i32>,
    /// Most tokens llama.cpp computes in one pass (its micro-batch)
    #[arg(long, env = "PONDER_UBATCH", default_value_t = 512)]
    pub ubatch: u32,
}

impl ModelArgs {
    pub fn engine_config(&self) -> EngineConfig {
        let mut cfg = EngineConfig { n_ctx: self.ctx, n_ubatch: self.ubatch.max(1), ..EngineConfig::default() };
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

/// The scorers `--scorer` accepts: outcome scorers, then process scorers (which the
/// outcome strategies use on each complete candidate).
pub const SCORERS: &[&str] = &["mean-logprob", "checker", "self-eval", "step-check", "prm", "judge"];

/// Scorers that judge partial solutions step by step.
pub const PROCESS_SCORERS: &[&str] = &["self-eval", "step-check", "prm", "judge"];

/// Flags of the step-level search strategies and their process scorers.
#[derive(Args, Debug, Clone)]
pub struct SearchArgs {
    /// Ends a step in search strategies (\n is a newline); empty: steps end only at --max-step-tokens
    #[arg(long, default_value = "\\n\\n")]
    pub delimiter: String,
    /// Most tokens in one step
    #[arg(long, default_value_t = 128)]
    pub max_step_tokens: u32,
    /// beam/dvts: children per kept beam (M); beam keeps budget/M beams, dvts runs budget/M subtrees
    #[arg(long, default_value_t = 4)]
    pub beam_width: usize,
    /// Most steps of a search
    #[arg(long, default_value_t = 40)]
    pub max_steps: usize,
    /// How a branch's step scores become one: last, min, product, mean
    #[arg(long, default_value = "last")]
    pub aggregate: String,
    /// pf/pgibbs resampling: multinomial or systematic
    #[arg(long, default_value = "multinomial")]
    pub resampling: String,
    /// pf/pgibbs: resample only when the effective sample size falls below this fraction of the particles
    #[arg(long, default_value_t = 1.0)]
    pub ess_threshold: f64,
    /// pf/pgibbs: softmax temperature on the particles' log-weights
    #[arg(long, default_value_t = 1.0)]
    pub pf_temperature: f64,
    /// pf/pgibbs final answer: argmax (highest weight) or sample (drawn by weight)
    #[arg(long, default_value = "argmax")]
    pub final_pick: String,
    /// pgibbs: sweeps (total particles spent = budget x sweeps)
    #[arg(long, default_value_t = 2)]
    pub sweeps: usize,
    /// GGUF causal LM used as token-probability PRM for --scorer prm (registry name, path or hf:)
    #[arg(long)]
    pub prm_model: Option<String>,
    /// PRM layout: tag written after each step
    #[arg(long, default_value = " ки")]
    pub prm_step_tag: String,
    /// PRM token meaning a good step
    #[arg(long, default_value = "+")]
    pub prm_good: String,
    /// PRM token meaning a bad step
    #[arg(long, default_value = "-")]
    pub prm_bad: String,
    /// Self-evaluation question appended to a partial solution (\n is a newline)
    #[arg(long)]
    pub self_eval_question: Option<String>,
    /// Instruct model (registry name, path or hf:) that judges solutions for --scorer judge:
    /// p(Yes) to a question after the problem and the solution, through its chat template
    #[arg(long)]
    pub judge_model: Option<String>,
    /// The question the judge answers Yes or No (\n is a newline)
    #[arg(long)]
    pub judge_question: Option<String>,
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}

impl SearchArgs {
    pub fn config(&self) -> Result<SearchConfig> {
        let aggregate = Aggregate::parse(&self.aggregate)
            .with_context(|| format!("unknown --aggregate {:?} (known: {})", self.aggregate, Aggregate::NAMES.join(", ")))?;
        let resampling = match self.resampling.as_str() {
            "multinomial" => Resampling::Multinomial,
            "systematic" => Resampling::Systematic,
            other => bail!("unknown --resampling {other:?} (known: multinomial, systematic)"),
        };
        let final_pick = match self.final_pick.as_str() {
            "argmax" => FinalPick::Argmax,
            "sample" => FinalPick::Sample,
            other => bail!("unknown --final-pick {other:?} (known: argmax, sample)"),
        };
        if self.beam_width == 0 {
            bail!("--beam-width must be at least 1");
        }
        if self.max_steps == 0 || self.max_step_tokens == 0 || self.sweeps == 0 {
            bail!("--max-steps, --max-step-tokens and --sweeps must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.ess_threshold) {
            bail!("--ess-threshold must be in [0, 1], got {}", self.ess_threshold);
        }
        if !(self.pf_temperature.is_finite() && self.pf_temperature > 0.0) {
            bail!("--pf-temperature must be a positive number, got {}", self.pf_temperature);
        }
        Ok(SearchConfig {
            delimiter: unescape(&self.delimiter),
            max_step_tokens: self.max_step_tokens,
            beam_width: self.beam_width,
            max_steps: self.max_steps,
            aggregate,
            resampling,
            ess_threshold: self.ess_threshold,
            pf_temperature: self.pf_temperature,
            final_pick,
            sweeps: self.sweeps,
        })
    }

    /// Loads the reward model first, so a PRM that fails to load ends the command before
    /// any generation.
    pub fn prm(&self, model: &ModelArgs) -> Result<TokenPrm> {
        let Some(name) = &self.prm_model else {
            bail!("--scorer prm needs --prm-model (a GGUF causal LM used as a token-probability PRM)");
        };
        let args = ModelArgs { model: name.clone(), ..model.clone() };
        let mut engine_cfg = args.engine_config();
        // Each partial joins the PRM's prefix cache so the next step reuses it.
        engine_cfg.prefix_cache_entries = 128;
        let path = args.resolve().with_context(|| format!("the PRM model {name:?}"))?;
        let engine = Engine::load(&path, engine_cfg).with_context(|| format!("loading the PRM model {}", path.display()))?;
        let format = PrmFormat {
            step_tag: self.prm_step_tag.clone(),
            good: self.prm_good.clone(),
            bad: self.prm_bad.clone(),
            ..PrmFormat::default()
        };
        TokenPrm::new(engine, format).map_err(|e| anyhow::anyhow!("the PRM model cannot be used: {e}"))
    }
}

impl SearchArgs {
    /// Loads the judge model first, so a judge that fails to load ends the command before
    /// any generation.
    pub fn judge(&self, model: &ModelArgs) -> Result<Judge> {
        let Some(name) = &self.judge_model else {
            bail!("--scorer judge needs --judge-model (an instruct model, e.g. qwen2.5-coder-1.5b)");
        };
        let args = ModelArgs { model: name.clone(), ..model.clone() };
        let mut engine_cfg = args.engine_config();
        engine_cfg.prefix_cache_entries = 128;
        let path = args.resolve().with_context(|| format!("the judge model {name:?}"))?;
        let engine =
            Engine::load(&path, engine_cfg).with_context(|| format!("loading the judge model {}", path.display()))?;
        let question = self.judge_question.as_deref().map_or(ponder_engine::judge::DEFAULT_QUESTION.to_string(), unescape);
        Judge::new(engine, question).map_err(|e| anyhow::anyhow!("the judge model cannot be used: {e}"))
    }
}

/// The scorers a command runs with.
#[derive(Default)]
pub struct Scorers {
    pub outcome: Option<Box<dyn OutcomeScorer>>,
    pub process: Option<Arc<dyn ProcessScorer>>,
}

/// Checks a scorer name before any model loads.
pub fn check_scorer(name: &str) -> Result<()> {
    if SCORERS.contains(&name) {
        Ok(())
    } else {
        bail!("unknown scorer {name:?} (known: {})", SCORERS.join(", "))
    }
}

/// Builds the scorers: an outcome scorer by name, or a process scorer that search
/// strategies use step by step and outcome strategies use on whole candidates.
pub fn scorers(
    name: &str,
    checker: Option<Arc<dyn Checker>>,
    search: &SearchArgs,
    model: &ModelArgs,
    engine: &Engine,
    prompt: PromptFn,
) -> Result<Scorers> {
    if !PROCESS_SCORERS.contains(&name) {
        return Ok(Scorers { outcome: Some(scorer(name, checker)?), process: None });
    }
    let process: Arc<dyn ProcessScorer> = match name {
        "self-eval" => {
            let mut s = SelfEval::default();
            if let Some(q) = &search.self_eval_question {
                s.question = unescape(q);
            }
            Arc::new(s)
        }
        "step-check" => Arc::new(StepCheck),
        "judge" => Arc::new(search.judge(model)?),
        _ => Arc::new(search.prm(model)?),
    };
    let outcome = ProcessAsOutcome { scorer: process.clone(), generator: Arc::new(engine.clone()), prompt };
    Ok(Scorers { outcome: Some(Box::new(outcome)), process: Some(process) })
}

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

/// Adds the prompt template's stop strings (a base model would go on to invent the next question).
pub fn with_stops(mut sampling: SamplingParams, template: &PromptTemplate) -> SamplingParams {
    sampling.stop.extend(template.stop.iter().cloned());
    sampling
}

/// The model's architecture from its GGUF (`qwen2`, `llama`, `gemma3`), or "" if it has none.
pub fn model_family(engine: &Engine) -> String {
    engine.model().meta_val_str("general.architecture").unwrap_or_default()
}

/// `--prompt` (a built-in name or a file), else the default for the dataset kind and model.
pub fn prompt_template(spec: Option<&str>, kind: ponder_eval::Kind, engine: &Engine) -> Result<PromptTemplate> {
    match spec {
        Some(s) => Ok(PromptTemplate::resolve(s.trim())?),
        None => Ok(PromptTemplate::default_for(kind, engine.format().has_template(), &model_family(engine))),
    }
}

/// The template as the function process scorers re-render problems with. The template was
/// checked when it was resolved; a problem it still cannot render falls back to the bare
/// question, loudly.
pub fn prompt_fn(template: &PromptTemplate) -> ponder_core::process::PromptFn {
    let template = template.clone();
    Arc::new(move |p| {
        template.render(p).unwrap_or_else(|e| {
            tracing::error!(problem = %p.id, error = %e, "prompt template failed; using the bare question");
            vec![ponder_core::Message::user(p.question.clone())]
        })
    })
}
