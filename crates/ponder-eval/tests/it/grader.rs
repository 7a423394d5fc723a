//! ponder-verify's math grader on the datasets here (moved with them from ponder-verify):
//! MATH-500 answers against their own solutions, GSM8K `####` answers against
//! re-spellings of themselves, and the grader's benchmark on MATH-500.

use std::path::PathBuf;

use ponder_verify::math::bench::respell;
use ponder_verify::math::{extract, grade};

/// The records of a JSON Lines file under this crate's directory.
fn read_jsonl(rel: &str) -> Vec<serde_json::Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(k, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), k + 1)))
        .collect()
}

fn math500() -> Vec<(String, String, String)> {
    read_jsonl("data/math500/test.jsonl")
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_else(|| panic!("{k} is a string")).to_string();
            (s("unique_id"), s("answer"), s("solution"))
        })
        .collect()
}

/// Issue 4 acceptance: the grader judges each record's `answer` equivalent to the last
/// `\boxed{}` of its own `solution` for at least 99% of records.
#[test]
fn math500_answer_matches_own_solution() {
    let records = math500();
    assert_eq!(records.len(), 500);
    let mut misses = Vec::new();
    for (id, answer, solution) in &records {
        let pred = extract(solution);
        let verdict = pred.as_deref().map(|p| grade(answer, p));
        if !verdict.is_some_and(|v| v.equivalent) {
            misses.push(format!("{id}: answer {answer:?}, extracted {pred:?}, {verdict:?}"));
        }
    }
    let rate = 1.0 - misses.len() as f64 / records.len() as f64;
    eprintln!("MATH-500 answer vs own solution: {:.1}% ({} misses)", rate * 100.0, misses.len());
    misses.iter().for_each(|m| eprintln!("  miss {m}"));
    assert!(rate >= 0.99, "{rate}");
}

/// Each answer against itself in other clothes (`\dfrac`, `\left(`, `$..$`).
#[test]
fn math500_answer_matches_its_respelling() {
    let records = math500();
    let mut misses = Vec::new();
    for (id, answer, _) in &records {
        let other = respell(answer);
        let v = grade(answer, &other);
        if !v.equivalent {
            misses.push(format!("{id}: {answer:?} vs {other:?}: {v:?}"));
        }
    }
    eprintln!("MATH-500 respellings: {} misses", misses.len());
    misses.iter().for_each(|m| eprintln!("  miss {m}"));
    assert!(misses.len() <= 5, "{} misses", misses.len());
}

/// The grader is not trivially lenient: an answer against another record's answer (when
/// the texts differ) is almost never equivalent; the few that are must be listed.
#[test]
fn math500_other_answers_rarely_match() {
    let records = math500();
    let answers: Vec<&str> = records.iter().map(|r| r.1.as_str()).collect();
    let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let mut n_pairs = 0;
    let mut matches = Vec::new();
    for (k, a) in answers.iter().enumerate() {
        for step in [1, 7, 31, 101] {
            let b = answers[(k + step) % answers.len()];
            if squash(a) == squash(b) {
                continue;
            }
            n_pairs += 1;
            let v = grade(a, b);
            if v.equivalent {
                matches.push(format!("{a:?} ~ {b:?} ({})", v.reason));
            }
        }
    }
    eprintln!("MATH-500 cross pairs judged equivalent: {}/{n_pairs}", matches.len());
    matches.iter().for_each(|m| eprintln!("  {m}"));
    assert!(matches.len() * 100 <= n_pairs, "{} of {n_pairs}", matches.len());
}

/// `1234567` → `1,234,567` (keeping a sign and decimals).
fn with_commas(n: &str) -> String {
    let (sign, body) = n.strip_prefix('-').map_or(("", n), |b| ("-", b));
    let (int, frac) = body.split_once('.').map_or((body, None), |(i, f)| (i, Some(f)));
    let mut out = String::new();
    for (k, c) in int.chars().enumerate() {
        if k > 0 && (int.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

/// Issue 4 acceptance: every GSM8K `####` answer parses (extraction yields a number) and
/// grades equal to itself re-spelled.
#[test]
fn gsm8k_answers_parse_and_match_respellings() {
    let records = read_jsonl("data/gsm8k/test.jsonl");
    assert_eq!(records.len(), 1319);
    let mut failures = Vec::new();
    for (k, r) in records.iter().enumerate() {
        let text = r["answer"].as_str().expect("answer is a string");
        let Some(answer) = extract(text) else {
            failures.push(format!("#{k}: nothing extracted"));
            continue;
        };
        let plain = answer.replace(',', "");
        if plain.parse::<f64>().is_err() {
            failures.push(format!("#{k}: {answer:?} is not a number"));
            continue;
        }
        let spellings = [
            with_commas(&plain),
            plain.clone(),
            format!("\\${}", with_commas(&plain)),
            format!("{plain}.00"),
            format!("\\boxed{{{}}}", with_commas(&plain)),
            format!("The answer is {plain}."),
        ];
        for s in &spellings {
            let pred = extract(s).unwrap_or_default();
            for (g, p) in [(answer.as_str(), pred.as_str()), (pred.as_str(), answer.as_str())] {
                let v = grade(g, p);
                if !v.equivalent {
                    failures.push(format!("#{k}: {g:?} vs {p:?} (from {s:?}): {v:?}"));
                }
            }
        }
        let off = format!("{}", plain.parse::<f64>().unwrap_or(0.0) + 1.0);
        if grade(&answer, &off).equivalent {
            failures.push(format!("#{k}: {answer:?} equals {off:?}"));
        }
    }
    failures.iter().for_each(|f| eprintln!("  {f}"));
    assert!(failures.is_empty(), "{} failures", failures.len());
}

/// `math::bench::run` works on MATH-500 and its worst case is bounded; the report is
/// printed (`--nocapture`) so the numbers can be read off a test run.
#[test]
fn bench_report_is_sane() {
    let report = ponder_verify::math::bench::run(&ponder_eval::tasks::competition::math500_solutions().unwrap());
    eprintln!("{report}");
    assert_eq!(report.n_checks, 1500);
    assert!(report.checks_per_sec > 0.0 && report.outputs_per_sec > 0.0);
    // Loose: microseconds normally, 2 s only on a badly overloaded machine.
    assert!(report.worst_pathological_us < 2e6, "{}", report.worst_pathological_us);
}
