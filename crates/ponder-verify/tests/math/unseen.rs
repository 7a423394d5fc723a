//! Issue 17: agreement with a careful human grader on answer pairs written for ponder,
//! independently of the grader code (`data/unseen/`). `cases.jsonl` is the development
//! set; `heldout.jsonl` was written first and set aside, and is only measured here.

use std::collections::BTreeMap;

use ponder_verify::math::{grade, Grader};

use crate::read_jsonl;

/// Per category: (agreements, cases), and the disagreements, described.
struct Agreement {
    by_category: BTreeMap<String, (usize, usize)>,
    misses: Vec<String>,
    false_positives: Vec<String>,
}

fn measure(rel: &str) -> Agreement {
    let grader = Grader::default();
    let mut a = Agreement { by_category: BTreeMap::new(), misses: Vec::new(), false_positives: Vec::new() };
    for case in read_jsonl(rel) {
        let s = |k: &str| case[k].as_str().unwrap_or_else(|| panic!("{k} is a string")).to_string();
        let (category, gold, pred) = (s("category"), s("gold"), s("pred"));
        let expected = case["expected"].as_bool().expect("expected is a bool");
        let verdict = match s("mode").as_str() {
            "output" => grader.grade_output(&gold, &pred),
            _ => grade(&gold, &pred),
        };
        let entry = a.by_category.entry(category.clone()).or_default();
        entry.1 += 1;
        if verdict.equivalent == expected {
            entry.0 += 1;
            continue;
        }
        let line = format!("[{category}] gold {gold:?} pred {pred:?}: expected {expected}, got {verdict:?}");
        if verdict.equivalent {
            a.false_positives.push(line.clone());
        }
        a.misses.push(line);
    }
    a
}

impl Agreement {
    fn rate(&self) -> f64 {
        let (ok, n) = self.by_category.values().fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
        ok as f64 / n as f64
    }

    fn report(&self, name: &str) {
        eprintln!("{name}: {:.1}% agreement", self.rate() * 100.0);
        for (category, (ok, n)) in &self.by_category {
            eprintln!("  {category:<10} {ok}/{n}");
        }
        self.misses.iter().for_each(|m| eprintln!("  miss {m}"));
    }
}

#[test]
fn issue_17_dev_set() {
    let a = measure("data/unseen/cases.jsonl");
    a.report("unseen dev set");
    assert!(a.false_positives.is_empty(), "{} false positives", a.false_positives.len());
    assert!(a.rate() >= 0.95, "agreement {:.3} below 0.95", a.rate());
}

#[test]
fn issue_17_heldout_set() {
    let a = measure("data/unseen/heldout.jsonl");
    a.report("unseen held-out set");
    assert!(a.false_positives.is_empty(), "{} false positives", a.false_positives.len());
    assert!(a.rate() >= 0.95, "agreement {:.3} below 0.95", a.rate());
}
