//! The report's CSV files: one row per configuration (`summary.csv`), per curve point
//! (`curves.csv`) and per level (`levels.csv`), numbers unrounded.

use super::Section;

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub(super) fn csv_line(cells: &[String]) -> String {
    cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",") + "\n"
}

pub(super) fn f(x: Option<f64>) -> String {
    x.filter(|x| x.is_finite()).map_or(String::new(), |x| format!("{x}"))
}

pub(super) fn summary_csv(sections: &[Section<'_>]) -> String {
    let mut out = String::from(
        "run,strategy,budget,seeds,units,correct,wrong,abstained,accuracy,accuracy_lo,accuracy_hi,mean_samples,stopped_early,\
         prompt_computed,prompt_reused,completion,scorer_passes,wall_s,tokens_per_problem,flops_per_problem,tokens_per_pass,\
         flops_per_pass,dollars,dollars_per_pass\n",
    );
    for s in sections {
        for g in &s.summaries {
            let u = &g.raw_usage;
            out.push_str(&csv_line(&[
                s.run.info.id.to_string(),
                g.config.strategy.clone(),
                g.config.budget.to_string(),
                g.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(" "),
                g.n_units.to_string(),
                g.n_correct.to_string(),
                g.n_wrong.to_string(),
                g.n_abstained.to_string(),
                f(Some(g.accuracy.mean)),
                f(Some(g.accuracy.lo)),
                f(Some(g.accuracy.hi)),
                f(Some(g.mean_samples)),
                g.stopped_early.to_string(),
                u.prompt_computed.to_string(),
                u.prompt_reused.to_string(),
                u.completion.to_string(),
                u.scorer_passes.to_string(),
                f(Some(u.wall_ms as f64 / 1000.0)),
                f(g.cost.tokens_per_problem()),
                f(g.cost.flops_per_problem()),
                f(g.cost.tokens_per_pass()),
                f(g.cost.flops_per_pass()),
                f(g.cost.dollars),
                f(g.cost.dollars_per_pass()),
            ]));
        }
    }
    out
}

pub(super) fn curves_csv(sections: &[Section<'_>]) -> String {
    let mut out = String::from("run,source,n,k,metric,mean,lo,hi,est_tokens_per_problem\n");
    for s in sections {
        for c in &s.curves {
            for (p, t) in c.points.iter().zip(&c.tokens_at_k) {
                for (name, e) in [("pass", Some(p.pass)), ("maj", Some(p.maj)), ("best", p.best), ("weighted", p.weighted)] {
                    if let Some(e) = e {
                        out.push_str(&csv_line(&[
                            s.run.info.id.to_string(),
                            c.source.to_string(),
                            c.n.to_string(),
                            p.k.to_string(),
                            name.to_string(),
                            f(Some(e.mean)),
                            f(Some(e.lo)),
                            f(Some(e.hi)),
                            f(Some(*t)),
                        ]));
                    }
                }
            }
        }
    }
    out
}

pub(super) fn levels_csv(sections: &[Section<'_>]) -> String {
    let mut out = String::from("run,strategy,budget,level,units,accuracy,accuracy_lo,accuracy_hi\n");
    for s in sections {
        for l in &s.levels {
            out.push_str(&csv_line(&[
                s.run.info.id.to_string(),
                l.config.strategy.clone(),
                l.config.budget.to_string(),
                l.level.map_or(String::new(), |l| l.to_string()),
                l.n_units.to_string(),
                f(Some(l.accuracy.mean)),
                f(Some(l.accuracy.lo)),
                f(Some(l.accuracy.hi)),
            ]));
        }
    }
    out
}
