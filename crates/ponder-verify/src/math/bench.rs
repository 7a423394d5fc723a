//! Throughput of the math grader: checks per second over MATH-500 pairs, and the worst
//! time of one check on pathological inputs (deep nesting, huge exponents, 100 kB).
//!
//! Single-threaded, in-process, on `(answer, solution)` records the caller brings
//! (`ponder bench verify` brings MATH-500's from ponder-eval).

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{extract, Grader};

/// What [`run`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Answer pairs graded (each record's answer against its own solution's box, a
    /// re-spelling of itself, and the next record's answer).
    pub n_checks: usize,
    pub checks_per_sec: f64,
    /// Mean and worst time of one `grade` over the pairs, in microseconds.
    pub mean_check_us: f64,
    pub worst_check_us: f64,
    /// `grade_output` (extraction from the full solution, then grading) per second.
    pub outputs_per_sec: f64,
    /// Pathological inputs: name, input bytes, time of one check in microseconds.
    pub pathological: Vec<PathologicalTiming>,
    /// The slowest pathological check, in microseconds.
    pub worst_pathological_us: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PathologicalTiming {
    pub name: &'static str,
    pub bytes: usize,
    pub micros: f64,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "math grader: {} checks, {:.0} checks/s (mean {:.1} µs, worst {:.1} µs); extract+grade {:.0} outputs/s",
            self.n_checks, self.checks_per_sec, self.mean_check_us, self.worst_check_us, self.outputs_per_sec
        )?;
        for p in &self.pathological {
            writeln!(f, "  {:<28} {:>8} B  {:>10.1} µs", p.name, p.bytes, p.micros)?;
        }
        write!(f, "  worst pathological check: {:.1} µs", self.worst_pathological_us)
    }
}

/// Gold/pred pairs from `(answer, solution)` records: the answer against its solution's
/// last box, against a re-spelling of itself, and against the next record's answer.
pub fn answer_pairs(records: &[(String, String)]) -> Vec<(String, String)> {
    let mut pairs = Vec::with_capacity(records.len() * 3);
    for (k, (answer, solution)) in records.iter().enumerate() {
        pairs.push((answer.clone(), extract(solution).unwrap_or_default()));
        pairs.push((answer.clone(), respell(answer)));
        let other = &records[(k + 1) % records.len()].0;
        pairs.push((answer.clone(), other.clone()));
    }
    pairs
}

/// The same answer in other clothes: `\dfrac`, `\left(`, surrounding `$`.
pub fn respell(answer: &str) -> String {
    let s = answer.replace("\\frac", "\\dfrac").replace("(", "\\left(").replace(")", "\\right)");
    format!("${s}$")
}

/// Inputs built to be slow: deep nesting, huge exponents, long strings. Each is a
/// `(name, gold, pred)`.
pub fn pathological_inputs() -> Vec<(&'static str, String, String)> {
    let deep_parens = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let deep_braces = format!("{}1{}", "\\frac{1}{".repeat(5_000), "}".repeat(5_000));
    let deep_unclosed = "{".repeat(99_999);
    // Just under the 100 kB answer cap, so they are normalised rather than refused.
    let long_sum = "1+".repeat(49_999) + "1";
    let long_digits = "9".repeat(99_998);
    let long_list = "1,".repeat(49_999) + "1";
    let many_pm = "1\\pm ".repeat(19_999) + "1";
    let long_text = "the answer is not yet known ".repeat(3_570);
    let powers = "2^".repeat(10_000) + "2";
    // 256 symbolic items on each side in reverse order, the last not matching: the
    // unordered comparison evaluates ~33k pairs at sample points until the work budget
    // stops it.
    let symbolic = |last: usize| -> String {
        (0..256).map(|k| format!("x^{{{}}}+\\sin({k}y)", if k == 255 { last } else { k })).collect::<Vec<_>>().join(",")
    };
    let reversed = |s: String| s.split(',').rev().collect::<Vec<_>>().join(",");
    vec![
        ("256 symbolic items, reordered", symbolic(255), reversed(symbolic(999))),
        ("deep parentheses (10k)", deep_parens, "1".to_string()),
        ("deep \\frac nesting (5k)", deep_braces.clone(), deep_braces),
        ("unclosed braces (99 kB)", deep_unclosed.clone(), deep_unclosed),
        ("10^{10^{10}} vs +1", "10^{10^{10}}".to_string(), "10^{10^{10}}+1".to_string()),
        ("tower 2^2^...^2 (10k)", powers.clone(), powers),
        ("9^{9^{9^9}}!", "9^{9^{9^9}}!".to_string(), "9^{9^{9^9}}! + 1".to_string()),
        ("(10^{400})!", "(10^{400})!".to_string(), "(10^{400})!+1".to_string()),
        ("1+1+...+1 (100 kB)", long_sum.clone(), long_sum.replace("1+1", "1+2")),
        ("100k digits", long_digits.clone(), long_digits.clone() + "8"),
        ("list of 50k items", long_list.clone(), long_list.replace("1,1", "2,1")),
        ("20k \\pm signs", many_pm.clone(), many_pm),
        ("100 kB of words", long_text.clone(), long_text.replace("known", "shown")),
        ("x^{x^{x^{x}}} 8 vars", "a^{b^{c^{d}}}+e^{f^{g^{h}}}".to_string(), "a^{b^{c^{d}}}+e^{f^{g^{h}}}+0.1".to_string()),
    ]
}

/// Measures throughput on `records` (`(answer, solution)`, see [`answer_pairs`]) and the
/// pathological worst cases.
pub fn run(records: &[(String, String)]) -> BenchReport {
    let grader = Grader::default();
    let pairs = answer_pairs(records);
    let mut worst = Duration::ZERO;
    let start = Instant::now();
    for (gold, pred) in &pairs {
        let t = Instant::now();
        std::hint::black_box(grader.grade(gold, pred));
        worst = worst.max(t.elapsed());
    }
    let total = start.elapsed();

    let start = Instant::now();
    for (gold, solution) in records {
        std::hint::black_box(grader.grade_output(gold, solution));
    }
    let outputs_total = start.elapsed();

    let mut pathological = Vec::new();
    for (name, gold, pred) in pathological_inputs() {
        let t = Instant::now();
        std::hint::black_box(grader.grade(&gold, &pred));
        std::hint::black_box(extract(&pred));
        pathological.push(PathologicalTiming { name, bytes: gold.len().max(pred.len()), micros: micros(t.elapsed()) });
    }
    let worst_pathological_us = pathological.iter().map(|p| p.micros).fold(0.0, f64::max);
    let n = pairs.len();
    BenchReport {
        n_checks: n,
        checks_per_sec: n as f64 / total.as_secs_f64().max(1e-9),
        mean_check_us: micros(total) / n.max(1) as f64,
        worst_check_us: micros(worst),
        outputs_per_sec: records.len() as f64 / outputs_total.as_secs_f64().max(1e-9),
        pathological,
        worst_pathological_us,
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
