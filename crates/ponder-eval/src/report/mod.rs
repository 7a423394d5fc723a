//! `ponder report`: one self-contained HTML page (inline SVG plots, no scripts, no
//! external files), the same tables in Markdown, and CSV files, for a run and optionally
//! runs to compare with it.
//!
//! Plots: accuracy against compute per strategy (log axis), with the curves that
//! subsampling the run's samples gives; coverage (pass@k) against selection accuracy
//! (maj@k, best-of-k, weighted@k), whose gap is what a better verifier could win, with
//! the coverage law of Large Language Monkeys fitted over every k; and accuracy per
//! difficulty level.

mod coverage;
mod csv;
pub mod flaws;
pub mod plots;
pub mod risk;
mod tables;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::analysis::{CurveSet, GroupSummary, LevelSummary, RunData};
use crate::cost::Prices;
use crate::curves::{CurveOptions, Estimate};
use crate::Error;
use csv::{curves_csv, levels_csv, summary_csv};
use plots::{Plot, Series, XScale};
use tables::{curve_table, esc, html_table, level_table, md_table, summary_table};

/// What to put in a report.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    pub prices: Option<Prices>,
    pub curves: CurveOptions,
}

/// The files written.
#[derive(Debug, Clone)]
pub struct Written {
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub csv: Vec<PathBuf>,
}

/// One run's computed sections.
struct Section<'a> {
    run: &'a RunData,
    summaries: Vec<GroupSummary>,
    levels: Vec<LevelSummary>,
    curves: Vec<CurveSet>,
    risk: Vec<risk::RiskCurve>,
}

impl<'a> Section<'a> {
    fn new(run: &'a RunData, opts: &ReportOptions) -> Section<'a> {
        Section { run, summaries: run.summaries(opts.prices.as_ref()), levels: run.levels(), curves: run.curve_sets(&opts.curves), risk: risk::curves(&run.outcomes) }
    }

    fn label(&self) -> String {
        format!("run {}", self.run.info.id)
    }
}

/// Writes `report.html`, `report.md`, `summary.csv`, `curves.csv`, `levels.csv`,
/// `coverage.csv` and `risk.csv` into
/// `out` (created if missing). `runs[0]` is the main run; the others are overlaid.
pub fn write(runs: &[RunData], out: &Path, opts: &ReportOptions) -> Result<Written, Error> {
    let Some(main) = runs.first() else {
        return Err(Error::Insufficient("a report needs a run".into()));
    };
    if main.outcomes.is_empty() {
        return Err(Error::Insufficient(format!("run {} has no stored outcomes yet", main.info.id)));
    }
    std::fs::create_dir_all(out).map_err(|e| write_err(out, e))?;
    let sections: Vec<Section<'_>> = runs.iter().map(|r| Section::new(r, opts)).collect();
    let plots = Plots::draw(&sections)?;
    let html = out.join("report.html");
    let markdown = out.join("report.md");
    put(&html, &render_html(&sections, &plots, opts))?;
    put(&markdown, &render_markdown(&sections, opts))?;
    let csv = ["summary.csv", "curves.csv", "levels.csv", "coverage.csv", "risk.csv"].map(|f| out.join(f)).to_vec();
    put(&csv[0], &summary_csv(&sections))?;
    put(&csv[1], &curves_csv(&sections))?;
    put(&csv[2], &levels_csv(&sections))?;
    put(&csv[3], &coverage::csv(&sections))?;
    put(&csv[4], &risk::csv(&sections))?;
    Ok(Written { html, markdown, csv })
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Write { path: path.display().to_string(), reason: e.to_string() }
}

fn put(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| write_err(path, e))
}

/// (x, y, lo, hi) per point.
type Points = Vec<(f64, f64, f64, f64)>;

/// Each plot as inline SVG followed by its HTML legend.
struct Plots {
    cost: String,
    coverage: Option<String>,
    levels: String,
    /// Risk–coverage, when some strategy voted.
    risk: Option<String>,
}

fn with_legend(svg: String, series: &[Series]) -> String {
    format!("{svg}{}", plots::legend_html(series))
}

/// The curve set the coverage plot shows: the one with the most samples, scored if possible.
fn main_curve<'s>(s: &'s Section<'_>) -> Option<&'s CurveSet> {
    s.curves.iter().max_by_key(|c| (c.n, c.points.first().is_some_and(|p| p.best.is_some())))
}

impl Plots {
    fn draw(sections: &[Section<'_>]) -> Result<Plots, Error> {
        let multi = sections.len() > 1;
        let prefix = |s: &Section<'_>| if multi { format!("{}: ", s.label()) } else { String::new() };
        // 1. Accuracy vs computed tokens per problem, one line per strategy over its budgets.
        let mut cost = Vec::new();
        let mut color = 0;
        for (ri, s) in sections.iter().enumerate() {
            let mut strategies: Vec<&str> = s.summaries.iter().map(|g| g.config.strategy.as_str()).collect();
            strategies.dedup();
            for name in strategies {
                let points: Vec<(f64, f64, f64, f64)> = s
                    .summaries
                    .iter()
                    .filter(|g| g.config.strategy == name)
                    .filter_map(|g| g.cost.tokens_per_problem().map(|t| (t, g.accuracy.mean, g.accuracy.lo, g.accuracy.hi)))
                    .collect();
                cost.push(Series {
                    label: format!("{}{name}", prefix(s)),
                    points,
                    color,
                    dashed: ri > 0,
                    band: false,
                    markers: true,
                });
                color += 1;
            }
            // The maj@k curve of the main sample pool, from subsampling (estimated cost).
            if let Some(c) = main_curve(s) {
                let pts = c.points.iter().zip(&c.tokens_at_k).map(|(p, &t)| (t, p.maj.mean, p.maj.lo, p.maj.hi)).collect();
                cost.push(Series {
                    label: format!("{}maj@k from {} samples", prefix(s), c.source),
                    points: pts,
                    color,
                    dashed: true,
                    band: false,
                    markers: false,
                });
                color += 1;
            }
        }
        let cost = with_legend(
            plots::svg(&Plot {
                title: "Accuracy vs compute",
                x_label: "tokens per problem (one prompt prefill + generated), log scale",
                y_label: "accuracy",
                x_scale: XScale::Log10,
                series: &cost,
            })?,
            &cost,
        );

        // 2. Coverage vs selection accuracy at k = 1, 2, 4, ...
        let mut cov = Vec::new();
        for (ri, s) in sections.iter().enumerate() {
            let Some(c) = main_curve(s) else { continue };
            let metric = |f: &dyn Fn(&crate::curves::CurvePoint) -> Option<Estimate>| -> Vec<(f64, f64, f64, f64)> {
                c.points.iter().filter_map(|p| f(p).map(|e| (p.k as f64, e.mean, e.lo, e.hi))).collect()
            };
            let lines: [(&str, Points); 4] = [
                ("coverage pass@k", metric(&|p| Some(p.pass))),
                ("maj@k", metric(&|p| Some(p.maj))),
                ("best-of-k", metric(&|p| p.best)),
                ("weighted@k", metric(&|p| p.weighted)),
            ];
            for (i, (name, pts)) in lines.into_iter().enumerate() {
                if pts.is_empty() {
                    continue;
                }
                cov.push(Series {
                    label: format!("{}{name} ({})", prefix(s), c.source),
                    points: pts,
                    color: i,
                    dashed: ri > 0,
                    band: ri == 0,
                    markers: true,
                });
            }
            if let Some(law) = coverage::law_series(c, format!("{}coverage law fitted over k = 1..{}", prefix(s), c.n), 4) {
                cov.push(law);
            }
        }
        let coverage = if cov.is_empty() {
            None
        } else {
            Some(with_legend(
                plots::svg(&Plot {
                    title: "Coverage vs selection: the gap is what a better verifier could win",
                    x_label: "samples k (log scale)",
                    y_label: "accuracy",
                    x_scale: XScale::Log2,
                    series: &cov,
                })?,
                &cov,
            ))
        };

        // 3. Accuracy per level, each strategy at its largest budget (the table has all).
        let mut lv = Vec::new();
        let mut color = 0;
        for (ri, s) in sections.iter().enumerate() {
            let largest = |g: &&GroupSummary| {
                !s.summaries.iter().any(|h| h.config.strategy == g.config.strategy && h.config.budget > g.config.budget)
            };
            for g in s.summaries.iter().filter(largest) {
                let pts: Vec<(f64, f64, f64, f64)> = s
                    .levels
                    .iter()
                    .filter(|l| l.config == g.config)
                    .map(|l| (f64::from(l.level.unwrap_or(0)), l.accuracy.mean, l.accuracy.lo, l.accuracy.hi))
                    .collect();
                lv.push(Series {
                    label: format!("{}{}", prefix(s), g.config),
                    points: pts,
                    color,
                    dashed: ri > 0,
                    band: false,
                    markers: true,
                });
                color += 1;
            }
        }
        let levels = with_legend(
            plots::svg(&Plot {
                title: "Accuracy by difficulty level",
                x_label: "level (0: problems without a level)",
                y_label: "accuracy",
                x_scale: XScale::Linear,
                series: &lv,
            })?,
            &lv,
        );
        let rc = risk::series(sections);
        let risk = if rc.is_empty() {
            None
        } else {
            Some(with_legend(
                plots::svg(&Plot {
                    title: "Risk–coverage: accuracy among the answered as the abstention threshold rises",
                    x_label: "fraction of questions answered",
                    y_label: "accuracy among answered",
                    x_scale: XScale::Linear,
                    series: &rc,
                })?,
                &rc,
            ))
        };
        Ok(Plots { cost, coverage, levels, risk })
    }
}

fn run_facts(r: &RunData) -> Vec<(String, String)> {
    let c = &r.config;
    let expected = expected_units(r);
    vec![
        ("run".into(), format!("{} ({}, created {}, updated {})", r.info.id, r.info.status, r.info.created, r.info.updated)),
        ("dataset".into(), format!("{} · {} problems", c.dataset, r.problems.len())),
        ("model".into(), format!("{} · {} parameters", c.model, if r.info.n_params > 0 { r.info.n_params.to_string() } else { "unknown".into() })),
        (
            "strategies".into(),
            format!("{} · budgets {} · seeds {}", c.strategies.join(", "), join(&c.budgets), join(&c.seeds)),
        ),
        (
            "sampling".into(),
            format!(
                "temperature {} · top-p {} · top-k {} · min-p {} · max tokens {} · scorer {}",
                c.sampling.temperature, c.sampling.top_p, c.sampling.top_k, c.sampling.min_p, c.sampling.max_tokens, c.scorer
            ),
        ),
        (
            "units".into(),
            format!(
                "{} stored, {} samples{}",
                r.outcomes.len(),
                r.samples.len(),
                match expected {
                    Some(e) if e > r.outcomes.len() => format!(" · {} of {e} missing: resume with `ponder eval --resume {}`", e - r.outcomes.len(), r.info.id),
                    _ => String::new(),
                }
            ),
        ),
    ]
}

/// Units the configuration asks for, when it can be told (strategies with a fixed budget
/// such as `single` run once whatever the budgets).
fn expected_units(r: &RunData) -> Option<usize> {
    let configs = r.configs();
    let per_seed: usize = r
        .config
        .strategies
        .iter()
        .map(|s| {
            let budgets: std::collections::BTreeSet<usize> = configs.iter().filter(|c| &c.strategy == s).map(|c| c.budget).collect();
            if s == "single" || s == "auto" {
                1
            } else {
                budgets.len().max(r.config.budgets.len())
            }
        })
        .sum();
    Some(per_seed * r.config.seeds.len() * r.problems.len())
}

fn join<T: ToString>(xs: &[T]) -> String {
    xs.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

const STYLE: &str = "
body { font-family: -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif; margin: 24px auto; max-width: 1180px; color: #222; padding: 0 16px; }
h1 { font-size: 26px; margin-bottom: 4px; } h2 { font-size: 20px; margin-top: 36px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; font-size: 13px; margin: 10px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f6f8; } td:first-child, th:first-child { text-align: left; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; font-size: 14px; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
figure { margin: 12px 0; } figure > svg { max-width: 100%; height: auto; border: 1px solid #eee; }
ul.legend { list-style: none; padding: 0; margin: 6px 0; display: flex; flex-wrap: wrap; gap: 4px 18px; font-size: 13px; max-width: 900px; }
ul.legend li { display: flex; align-items: center; gap: 6px; }
figcaption, .note { font-size: 13px; color: #555; max-width: 900px; }
.scroll { overflow-x: auto; }
";

fn render_html(sections: &[Section<'_>], plots: &Plots, opts: &ReportOptions) -> String {
    let main = &sections[0];
    let mut h = String::new();
    let title = if sections.len() > 1 {
        format!("ponder report: run {} compared with {}", main.run.info.id, sections[1..].iter().map(|s| s.run.info.id.to_string()).collect::<Vec<_>>().join(", "))
    } else {
        format!("ponder report: run {}", main.run.info.id)
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    for s in sections {
        let _ = write!(h, "<h2>{}</h2>\n<dl class=\"facts\">\n", esc(&s.label()));
        for (k, v) in run_facts(s.run) {
            let _ = writeln!(h, "<dt>{}</dt><dd>{}</dd>", esc(&k), esc(&v));
        }
        h.push_str("</dl>\n");
    }

    h.push_str("<h2>Accuracy and cost per strategy and budget</h2>\n");
    for s in sections {
        if sections.len() > 1 {
            let _ = writeln!(h, "<h3>{}</h3>", esc(&s.label()));
        }
        let _ = writeln!(h, "<div class=\"scroll\">{}</div>", html_table(&summary_table(s, opts.prices.is_some())));
    }
    h.push_str(
        "<p class=\"note\">Accuracy intervals: 95% bootstrap over problems. Tokens are counted by the backend: prompt computed \
         (prefilled), prompt reused (prefix cache and shared KV cells), generated. FLOPs ≈ 2 × parameters × computed tokens. \
         Cost-of-pass (tokens/pass, FLOPs/pass, $/pass) is the cost per correctly solved problem. \
         *Costs compare strategies as if each ran alone: one full prompt prefill per problem (a strategy that ran after \
         another found the prompt in the prefix cache; that saving is not credited) plus everything generated; the \
         prompt columns are the counts as measured.</p>\n",
    );
    let _ = writeln!(
        h,
        "<figure id=\"plot-cost\">{}<figcaption>Accuracy against tokens per problem (one prompt prefill plus everything generated; log scale), one line per strategy \
         through its budgets (whiskers: 95% CI); dashed: maj@k from subsets of the run's samples.</figcaption></figure>",
        plots.cost
    );

    h.push_str("<h2>Coverage vs selection</h2>\n");
    match &plots.coverage {
        Some(svg) => {
            let _ = writeln!(
                h,
                "<figure id=\"plot-coverage\">{svg}<figcaption>pass@k (any of k samples right: unbiased estimator) against \
                 what a selector picks from k samples (majority, best score, score-weighted vote; averaged over random \
                 subsets of the run's samples). Bands: 95% bootstrap over problems.</figcaption></figure>"
            );
        }
        None => h.push_str("<p class=\"note\">No strategy of this run drew a full pool of at least two samples per problem.</p>\n"),
    }
    for s in sections {
        for c in &s.curves {
            let _ = writeln!(h, "<h3>{}: {} samples per problem from {}</h3>", esc(&s.label()), c.n, esc(&c.source.to_string()));
            let _ = writeln!(h, "<div class=\"scroll\">{}</div>", html_table(&curve_table(c)));
            let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(&coverage::law_line(c)));
        }
    }

    if let Some(svg) = &plots.risk {
        h.push_str("<h2>Abstention by confidence</h2>\n");
        let _ = writeln!(
            h,
            "<figure id=\"plot-risk\">{svg}<figcaption>Each point answers only the questions whose winning answer holds at least \
             a given share of the vote (abstain_below), most confident first; the rightmost point answers all. Votes weigh \
             DeepConf traces by confidence.</figcaption></figure>"
        );
        for s in sections {
            let _ = writeln!(h, "<div class=\"scroll\">{}</div>", html_table(&risk::table(&s.risk)));
        }
    }

    h.push_str("<h2>By difficulty</h2>\n");
    let _ = writeln!(h, "<figure id=\"plot-levels\">{}<figcaption>Accuracy per level, each strategy at its largest budget (whiskers: 95% CI).</figcaption></figure>", plots.levels);
    for s in sections {
        if sections.len() > 1 {
            let _ = writeln!(h, "<h3>{}</h3>", esc(&s.label()));
        }
        let _ = writeln!(h, "<div class=\"scroll\">{}</div>", html_table(&level_table(s)));
    }
    h.push_str("<h2>Configuration</h2>\n");
    for s in sections {
        let pretty = serde_json::to_string_pretty(&s.run.config).unwrap_or_default();
        let _ = writeln!(h, "<details><summary>{} configuration</summary><pre>{}</pre></details>", esc(&s.label()), esc(&pretty));
    }
    h.push_str("</body>\n</html>\n");
    h
}

fn render_markdown(sections: &[Section<'_>], opts: &ReportOptions) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# ponder report: run {}\n", sections[0].run.info.id);
    for s in sections {
        let _ = writeln!(m, "## {}\n", s.label());
        for (k, v) in run_facts(s.run) {
            let _ = writeln!(m, "- **{k}**: {v}");
        }
        let _ = writeln!(m, "\n### Accuracy and cost\n\n{}", md_table(&summary_table(s, opts.prices.is_some())));
        for c in &s.curves {
            let _ = writeln!(m, "### Curves: {} samples per problem from {}\n\n{}", c.n, c.source, md_table(&curve_table(c)));
            let _ = writeln!(m, "{}\n", coverage::law_line(c));
        }
        if !s.risk.is_empty() {
            let _ = writeln!(m, "### Abstention by confidence (answered / accuracy / wrong at each `abstain_below`)\n\n{}", md_table(&risk::table(&s.risk)));
        }
        let _ = writeln!(m, "### By level\n\n{}", md_table(&level_table(s)));
    }
    m.push_str("Accuracy intervals: 95% bootstrap over problems. FLOPs ≈ 2 × parameters × computed tokens; cost-of-pass = cost per correctly solved problem. Costs count one full prompt prefill per problem and strategy (cross-strategy prefix-cache hits are not credited).\n");
    m
}
