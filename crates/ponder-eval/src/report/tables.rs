//! The report's tables (summary, curves, levels), built once and written as HTML or
//! Markdown.

use std::fmt::Write as _;

use super::Section;
use crate::analysis::CurveSet;
use crate::curves::Estimate;

pub(super) fn pct(e: &Estimate) -> String {
    if e.mean.is_nan() {
        return "n/a".into();
    }
    format!("{:.1}% [{:.1}, {:.1}]", 100.0 * e.mean, 100.0 * e.lo, 100.0 * e.hi)
}

pub(super) fn num(x: Option<f64>) -> String {
    match x {
        None => "n/a".into(),
        Some(x) if x >= 1e12 => format!("{:.2e}", x),
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
    }
}

/// A table: header and rows of cells (plain text).
pub(super) struct Table {
    pub(super) header: Vec<String>,
    pub(super) rows: Vec<Vec<String>>,
}

pub(super) fn summary_table(s: &Section<'_>, prices: bool) -> Table {
    let mut header: Vec<String> = [
        "strategy", "budget", "seeds", "units", "accuracy [95% CI]", "correct", "abstained", "samples/problem", "stopped early",
        "prompt computed", "prompt reused", "generated", "scorer passes", "wall s", "tokens/problem*", "FLOPs/problem*",
        "tokens/pass", "FLOPs/pass",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    if prices {
        header.extend(["$ total".to_string(), "$/pass".to_string()]);
    }
    let rows = s
        .summaries
        .iter()
        .map(|g| {
            let u = &g.raw_usage;
            let mut r = vec![
                g.config.strategy.clone(),
                g.config.budget.to_string(),
                g.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(" "),
                g.n_units.to_string(),
                pct(&g.accuracy),
                g.n_correct.to_string(),
                g.n_abstained.to_string(),
                format!("{:.2}", g.mean_samples),
                g.stopped_early.to_string(),
                u.prompt_computed.to_string(),
                u.prompt_reused.to_string(),
                u.completion.to_string(),
                u.scorer_passes.to_string(),
                format!("{:.1}", u.wall_ms as f64 / 1000.0),
                num(g.cost.tokens_per_problem()),
                num(g.cost.flops_per_problem().filter(|&f| f > 0.0)),
                num(g.cost.tokens_per_pass()),
                num(g.cost.flops_per_pass().filter(|&f| f > 0.0)),
            ];
            if prices {
                r.push(g.cost.dollars.map_or("n/a".into(), |d| format!("{d:.4}")));
                r.push(g.cost.dollars_per_pass().map_or("n/a".into(), |d| format!("{d:.4}")));
            }
            r
        })
        .collect();
    Table { header, rows }
}

pub(super) fn curve_table(c: &CurveSet) -> Table {
    let opt = |e: Option<Estimate>| e.map_or("–".to_string(), |e| pct(&e));
    let rows = c
        .points
        .iter()
        .zip(&c.tokens_at_k)
        .map(|(p, t)| {
            let best_sel = [Some(p.maj.mean), p.best.map(|e| e.mean), p.weighted.map(|e| e.mean)]
                .into_iter()
                .flatten()
                .fold(f64::NEG_INFINITY, f64::max);
            vec![
                p.k.to_string(),
                pct(&p.pass),
                pct(&p.maj),
                opt(p.best),
                opt(p.weighted),
                format!("{:.1} pts", 100.0 * (p.pass.mean - best_sel)),
                format!("{t:.0}"),
            ]
        })
        .collect();
    Table {
        header: ["k", "coverage pass@k", "maj@k", "best-of-k", "weighted@k", "verifier gap", "est. tokens/problem"]
            .iter()
            .map(|x| x.to_string())
            .collect(),
        rows,
    }
}

pub(super) fn level_table(s: &Section<'_>) -> Table {
    let mut levels: Vec<Option<u32>> = s.levels.iter().map(|l| l.level).collect();
    levels.sort();
    levels.dedup();
    let mut header = vec!["strategy@budget".to_string()];
    header.extend(levels.iter().map(|l| l.map_or("no level".to_string(), |l| format!("level {l}"))));
    let rows = s
        .summaries
        .iter()
        .map(|g| {
            let mut r = vec![g.config.to_string()];
            for lv in &levels {
                r.push(
                    s.levels
                        .iter()
                        .find(|l| l.config == g.config && l.level == *lv)
                        .map_or("–".to_string(), |l| format!("{} (n={})", pct(&l.accuracy), l.n_units)),
                );
            }
            r
        })
        .collect();
    Table { header, rows }
}

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub(super) fn html_table(t: &Table) -> String {
    let mut h = String::from("<table>\n<thead><tr>");
    for c in &t.header {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for r in &t.rows {
        h.push_str("<tr>");
        for c in r {
            let _ = write!(h, "<td>{}</td>", esc(c));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
    h
}

pub(super) fn md_table(t: &Table) -> String {
    let cell = |c: &str| c.replace('|', "\\|");
    let mut m = format!("| {} |\n", t.header.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(m, "|{}|", t.header.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    for r in &t.rows {
        let _ = writeln!(m, "| {} |", r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | "));
    }
    m
}
