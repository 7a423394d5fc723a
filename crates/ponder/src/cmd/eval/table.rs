//! `ponder eval`'s output: the table's rows (counted by ponder-eval's `Counts`), its
//! legend, the verifier measurement and the agreement between strategies, as text.

use std::collections::HashMap;

use indicatif::ProgressBar;
use ponder_eval::analysis::{Counts, UnitCounts};
use ponder_eval::flaws::VerifierReport;
use ponder_eval::runs::Group;
use ponder_eval::summary::{self, Summary};
use ponder_eval::Dataset;

/// The table's rows, printed as each group completes.
pub struct Table {
    multi_seed: bool,
    n_problems: usize,
    /// Units stored so far, per group.
    pub done: HashMap<Group, Vec<UnitCounts>>,
    printed_header: bool,
}

impl Table {
    pub fn new(multi_seed: bool, n_problems: usize) -> Table {
        Table { multi_seed, n_problems, done: HashMap::new(), printed_header: false }
    }

    /// Prints `g`'s row (after the header, the first time) once all its units are stored,
    /// around the progress bar if there is one.
    pub fn print_if_complete(&mut self, g: &Group, bar: Option<&ProgressBar>) {
        let units = self.done.get(g).map_or(&[][..], Vec::as_slice);
        if units.len() != self.n_problems {
            return;
        }
        let line = row(g, &Counts::of(units.iter().copied()), self.multi_seed);
        let with_header = !std::mem::replace(&mut self.printed_header, true);
        let print = || {
            if with_header {
                println!("{}", header());
            }
            println!("{line}");
        };
        match bar {
            Some(b) => b.suspend(print),
            None => print(),
        }
    }
}

fn header() -> String {
    format!(
        "{:<15} {:>6} {:>16} {:>6} {:>8} {:>9} {:>11} {:>9} {:>10} {:>10} {:>9}",
        "strategy", "budget", "accuracy", "wrong", "abstain", "samples", "completion", "dropped", "prompt", "reused", "wall s"
    )
}

fn row(g: &Group, c: &Counts, multi_seed: bool) -> String {
    let name = if multi_seed { format!("{} s{}", g.strategy, g.seed) } else { g.strategy.clone() };
    format!(
        "{:<15} {:>6} {:>16} {:>6} {:>8} {:>9.2} {:>11} {:>9} {:>10} {:>10} {:>9.1}",
        name,
        g.budget,
        format!("{}/{} ({:.1}%)", c.n_correct, c.n, 100.0 * c.accuracy()),
        c.n_wrong,
        c.n_abstained,
        c.mean_samples(),
        c.usage.completion,
        // Units stored before the store kept dropped tokens leave a lower bound.
        if c.n_dropped_unknown > 0 { format!(">={}", c.usage.dropped) } else { c.usage.dropped.to_string() },
        c.usage.prompt_computed,
        c.usage.prompt_reused,
        c.usage.wall_ms as f64 / 1000.0
    )
}

pub fn print_legend() {
    println!(
        "(wrong: answered and wrong; abstain: no answer given; samples: mean drawn per problem; \
         completion/prompt/reused: tokens summed over all problems; dropped: of completion, the tokens of samples \
         stopped or cancelled before their end; wall s: summed over problems)"
    );
}

pub fn print_verifier(strategy: &str, v: &VerifierReport) {
    let rate = |r: Option<f64>| r.map_or("n/a".to_string(), |r| format!("{r:.3}"));
    println!(
        "verifier ({strategy}, visible tests vs hidden): {} candidates, {} pass visible, {} pass hidden, {} both · \
         false-positive rate {} · true-positive rate {} · wrong among passing {}",
        v.n_candidates,
        v.n_visible_pass,
        v.n_hidden_pass,
        v.n_both_pass,
        rate(v.false_positive_rate),
        rate(v.true_positive_rate),
        rate(v.wrong_among_passing)
    );
    println!(
        "fLaws best k (correct +{}, wrong -{}, abstain -{}): k = {} (expected utility {:.3}; {:.3} at this budget)",
        v.utility.correct, v.utility.wrong_cost, v.utility.abstain_cost, v.best_k, v.best_k_utility, v.budget_utility
    );
}

pub fn print_agreement(summaries: &[Summary], dataset: &Dataset) {
    for a in summary::agreement(summaries, dataset.equivalence.as_ref()) {
        println!("agreement {} vs {}: {}/{} problems with the same answer", a.a, a.b, a.n_same, a.n_problems);
        for e in &a.early {
            println!(
                "  where {} stopped early ({} problems, {:.1} samples each): same answer as {} on {}/{}",
                e.early, e.n_stopped, e.mean_samples, e.full, e.n_same, e.n_stopped
            );
        }
    }
}
