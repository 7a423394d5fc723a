//! `ponder solve`: one question, one strategy; prints the answer, the vote table and usage.
//! With `--tests FILE` the question is a code question: answers are the code in the
//! output, and the file's asserts, run in the sandbox, are verify-resample's verifier.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use ponder_core::answer::AnswerPattern;
use ponder_core::scorer_spec::ScorerSpec;
use ponder_core::strategy::{Ctx, Outcome, StrategySpec};
use ponder_core::{Checker, GoldChecker, Problem, SamplingParams};
use ponder_verify::code::{
    describe, extract_code, CheckRequest, CodeEquivalence, Limits, Pool, Sandbox, SandboxChecker, SandboxConfig,
    SandboxVerifier, TestSpec, TestsFor,
};

use crate::backend::{Backend, UpstreamArgs};
use crate::common::{self, ModelArgs, SamplingArgs, SearchArgs, ThinkingArgs, EQUIVALENCE};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The question
    pub question: String,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    /// A strategy spec (`ponder strategies` lists them): a name (sc, pf, ...), NAME@N, or
    /// NAME@N{TOML inline table of parameters}, e.g. 'pf@8{resampling = "systematic"}', or
    /// @FILE (a TOML or JSON file holding one spec).
    /// verify-resample needs --tests, auto needs --policy
    #[arg(long, short, default_value = "sc")]
    pub strategy: String,
    /// The strategy's budget N where the spec does not say @N [default: the strategy's own]
    #[arg(long, short)]
    pub budget: Option<usize>,
    /// mean-logprob or checker (needs --gold) for bon and weighted-bon; self-eval, step-check
    /// (needs --gold and --steps), prm (needs --prm-model) or judge (needs --judge-model) for
    /// search strategies, and for bon
    /// on whole candidates
    #[arg(long, default_value = "mean-logprob")]
    pub scorer: String,
    /// Reference intermediate results, comma-separated, for --scorer step-check
    #[arg(long, value_delimiter = ',')]
    pub steps: Vec<String>,
    #[command(flatten)]
    pub search: SearchArgs,
    /// The known answer, to report correctness (and for --scorer checker)
    #[arg(long, conflicts_with = "tests")]
    pub gold: Option<String>,
    /// A code question: Python tests (assert statements) the answer's code must pass, run
    /// in the bubblewrap sandbox. Answers are the code in the output, verify-resample draws
    /// until one passes them, --scorer checker scores by them, and the chosen answer's
    /// verdict is printed
    #[arg(long, value_name = "FILE")]
    pub tests: Option<PathBuf>,
    /// With --tests: run the code without isolation when bubblewrap is unavailable (unsafe:
    /// it runs with your privileges), as `ponder grade code` does
    #[arg(long, requires = "tests")]
    pub allow_unsandboxed: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub thinking: ThinkingArgs,
    /// Print every candidate
    #[arg(long)]
    pub show_samples: bool,
    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
    /// Policy file from `ponder plan`, for --strategy auto
    #[arg(long)]
    pub policy: Option<std::path::PathBuf>,
    /// Prompt template: math-fewshot, math-boxed, math-completion, code-chat, code-completion,
    /// or a TOML/JSON file (system, examples, user, stop) [default: by model]
    #[arg(long)]
    pub prompt: Option<String>,
    /// Where the answer is in the text, for voting on free text: a regular expression whose
    /// last match (its first group, if any) is the answer, e.g. 'Answer: (\w+)'
    #[arg(long, value_name = "REGEX")]
    pub answer_pattern: Option<AnswerPattern>,
}

/// The sandbox that judges code answers against `--tests`: a verifier for
/// verify-resample and the checker the chosen answer is reported by.
struct CodeTests {
    verifier: SandboxVerifier,
    checker: SandboxChecker,
}

impl CodeTests {
    fn load(path: &Path, allow_unsandboxed: bool) -> Result<CodeTests> {
        let tests = std::fs::read_to_string(path).with_context(|| format!("reading tests file {}", path.display()))?;
        if tests.trim().is_empty() {
            anyhow::bail!("tests file {} is empty", path.display());
        }
        let sandbox = Sandbox::new(SandboxConfig { allow_unsandboxed, ..SandboxConfig::default() })?;
        let pool = Arc::new(Pool::with_default_size(sandbox));
        let checks: TestsFor = Arc::new(move |_: &Problem, code: &str| {
            Ok(CheckRequest { program: code.to_string(), tests: TestSpec::Asserts(tests.clone()), limits: Limits::default() })
        });
        Ok(CodeTests {
            verifier: SandboxVerifier::new("tests", Arc::clone(&pool), Arc::clone(&checks)),
            checker: SandboxChecker::new(pool, checks),
        })
    }
}

pub fn run(a: Args) -> Result<()> {
    let sampling = a.sampling.params()?;
    let policy = a.policy.as_deref().map(ponder_eval::plan::load_policy).transpose()?;
    // Checked here so a bad spec fails before the model loads.
    let specs = common::expand_spec_file(&a.strategy)?;
    let [strategy] = specs.as_slice() else {
        anyhow::bail!("--strategy {}: solve takes one spec, the file holds {}", a.strategy, specs.len());
    };
    let spec = match a.budget {
        Some(b) => a.search.spec(strategy, b, policy.as_ref())?,
        None => StrategySpec::parse_with(strategy, None, &a.search.defaults(policy.as_ref())?).map_err(|e| a.search.explain(e))?,
    };
    spec.validate()?;
    a.search.check_taken([&spec])?;
    let scorer: ScorerSpec = a.scorer.parse()?;
    if a.question.trim().is_empty() {
        anyhow::bail!("the question is empty");
    }
    if scorer == ScorerSpec::StepCheck && (a.gold.is_none() || a.steps.is_empty()) {
        anyhow::bail!("--scorer step-check needs --gold and --steps (the reference intermediate results)");
    }
    common::check_needs(&spec, scorer)?;
    if spec.needs().verifier && a.tests.is_none() {
        anyhow::bail!(
            "strategy {} needs a verifier: --tests FILE (Python asserts the answer's code must pass)",
            spec.name()
        );
    }
    let code = a.tests.as_deref().map(|path| CodeTests::load(path, a.allow_unsandboxed)).transpose()?;
    let checker: Arc<dyn Checker> = match &code {
        Some(c) => Arc::new(c.checker.clone()),
        None => Arc::new(GoldChecker(EQUIVALENCE)),
    };
    // Read before the model loads, so a bad template fails fast.
    let template = a.prompt.as_deref().map(|p| ponder_eval::PromptTemplate::resolve(p.trim())).transpose()?;
    let rt = common::runtime()?;
    let backend = Backend::load(&a.model, &a.upstream, &rt)?;
    let problem = Problem {
        id: "cli".into(),
        question: a.question.clone(),
        gold: a.gold.clone().unwrap_or_default(),
        level: None,
        steps: a.steps.clone(),
    };
    let kind = if code.is_some() { ponder_eval::Kind::Code } else { ponder_eval::Kind::Answer };
    let template = match template {
        Some(t) => t,
        None => backend.prompt_template(None, kind)?,
    };
    let prompt = common::prompt_fn(&template);
    let known = a.gold.is_some() || code.is_some();
    let scorers = common::scorers(
        scorer,
        known.then(|| checker.clone()),
        &a.search,
        &a.model,
        backend.shared(),
        prompt,
    )?;
    let thinking = a.thinking.resolve(backend.thinking_markers())?;
    let markers = thinking.as_ref().map(|t| t.markers.clone());
    let sampling = SamplingParams {
        thinking,
        ..common::with_stops(sampling, &template)
    };
    let strategy = spec.build(sampling)?;
    let messages = template.render(&problem)?;
    let ctx = match &code {
        Some(c) => Ctx {
            generator: backend.generator(),
            equivalence: &CodeEquivalence,
            extract: &extract_code,
            scorer: scorers.outcome.as_deref(),
            process: scorers.process.as_deref(),
            verifier: Some(&c.verifier),
            thinking: None,
        },
        None => Ctx { process: scorers.process.as_deref(), ..common::ctx(backend.generator(), scorers.outcome.as_deref()) },
    };
    let by_pattern = |t: &str| a.answer_pattern.as_ref().and_then(|p| p.extract(t));
    let ctx = common::answer_rules(ctx, a.answer_pattern.is_some().then_some(&by_pattern), markers.as_ref());
    let outcome = rt.block_on(strategy.solve(&problem, &messages, &ctx))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Ok(());
    }
    print_outcome(&outcome, a.show_samples, strategy.budget());
    if let Some(gold) = &a.gold {
        let ok = checker.is_correct(&Problem { gold: gold.clone(), ..problem }, outcome.answer.as_deref());
        println!("correct: {ok} (gold {gold})");
    } else if let (Some(c), Some(path)) = (&code, &a.tests) {
        let verdict = match outcome.answer.as_deref() {
            Some(answer) => c.checker.check(&problem, answer).map_or_else(|e| e, |o| describe(&o)),
            None => "no answer".to_string(),
        };
        println!("tests ({}): {verdict}", path.display());
    }
    Ok(())
}

fn print_outcome(o: &Outcome, show_samples: bool, budget: usize) {
    if show_samples {
        for c in &o.candidates {
            println!("--- sample {} ({} tokens, answer {:?}, score {:?})", c.index, c.n_tokens, c.answer, c.score);
            println!("{}", c.text.trim());
        }
        println!("---");
    }
    if let Some(text) = o.chosen_text() {
        println!("{}\n", text.trim());
    }
    let none = if o.abstained { "(abstained)" } else { "(none)" };
    println!("answer: {}", o.answer.as_deref().unwrap_or(none));
    if let Some(c) = o.confidence() {
        println!("confidence: {c:.3} (the winner's share of the vote)");
    }
    if !o.votes.is_empty() {
        println!("votes:");
        println!("  {:<24} {:>5} {:>8}", "answer", "count", "weight");
        for v in &o.votes {
            println!("  {:<24} {:>5} {:>8.3}", v.answer, v.count, v.weight);
        }
        let unanswered = o.candidates.iter().filter(|c| c.answer.is_none()).count();
        if unanswered > 0 {
            println!("  {:<24} {:>5}", "(no answer)", unanswered);
        }
    }
    let early = if o.stopped_early { " (stopped early)" } else { "" };
    println!("samples: {}/{}{}{}", o.candidates.len(), budget, early, if o.n_failed > 0 { format!(", {} failed", o.n_failed) } else { String::new() });
    println!("usage: {}", common::fmt_usage(&o.usage));
}
