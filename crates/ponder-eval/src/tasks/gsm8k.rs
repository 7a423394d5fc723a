//! GSM8K test split (Cobbe et al. 2021), vendored under `data/gsm8k/` (see its README for
//! source, commit and licence) and compiled in, so no download is needed.

use ponder_core::Problem;
use serde::Deserialize;

use crate::Error;

const TEST_JSONL: &str = include_str!("../../data/gsm8k/test.jsonl");

/// Problems in the test split.
pub const N_TEST: usize = 1319;

#[derive(Deserialize)]
struct Record {
    question: String,
    answer: String,
}

/// The 1319 test problems, ids `gsm8k/{index}`, gold the number after `####` without commas.
pub fn test() -> Result<Vec<Problem>, Error> {
    TEST_JSONL
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(index, line)| {
            let malformed = |reason: String| Error::MalformedData { dataset: "gsm8k", line: index + 1, reason };
            let record: Record = serde_json::from_str(line).map_err(|e| malformed(e.to_string()))?;
            let gold = gold(&record.answer).ok_or_else(|| malformed("no `####` final answer".to_string()))?;
            Ok(Problem {
                id: format!("gsm8k/{index}"),
                question: record.question,
                gold,
                level: None,
                steps: Vec::new(),
            })
        })
        .collect()
}

/// The final answer of a GSM8K solution: after the last `####`, trimmed, commas removed.
fn gold(solution: &str) -> Option<String> {
    let (_, last) = solution.rsplit_once("####")?;
    let gold = last.trim().replace(',', "");
    (!gold.is_empty()).then_some(gold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponder_core::answer::{numeric_value, Equivalence, NumericEquivalence};

    #[test]
    fn loads_every_test_problem() {
        let problems = test().unwrap();
        assert_eq!(problems.len(), N_TEST);
        assert_eq!(problems[0].id, "gsm8k/0");
        assert_eq!(problems[0].gold, "18");
        assert!(problems[0].question.starts_with("Janet"));
        assert_eq!(problems[N_TEST - 1].id, format!("gsm8k/{}", N_TEST - 1));
    }

    #[test]
    fn every_gold_is_an_integer() {
        for p in test().unwrap() {
            let value = numeric_value(&p.gold).unwrap_or_else(|| panic!("{}: gold {:?} is not a number", p.id, p.gold));
            assert!(value.is_integer(), "{}: gold {:?}", p.id, p.gold);
            assert_eq!(NumericEquivalence.key(&p.gold), p.gold, "{}: gold is already canonical", p.id);
        }
    }

    #[test]
    fn gold_strips_commas() {
        assert_eq!(gold("so 1,000 + 234\n#### 1,234").as_deref(), Some("1234"));
        assert_eq!(gold("#### -5").as_deref(), Some("-5"));
        assert_eq!(gold("no marker"), None);
    }
}
