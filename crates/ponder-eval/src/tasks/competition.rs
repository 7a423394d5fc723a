//! Competition math: MATH-500 (vendored in ponder-verify, which tests its grader on it)
//! and AIME 2024/2025 (vendored under `data/aime24`, `data/aime25`; see their READMEs for
//! source and licence). Graded by ponder-verify's math grader.

use ponder_core::Problem;
use serde::Deserialize;

use crate::Error;

const MATH500: &str = include_str!("../../../ponder-verify/data/math500/test.jsonl");
const AIME24: &str = include_str!("../../data/aime24/test.jsonl");
const AIME25: &str = include_str!("../../data/aime25/test.jsonl");

#[derive(Deserialize)]
struct Record {
    problem: String,
    answer: String,
    #[serde(default)]
    level: Option<u32>,
    #[serde(default)]
    unique_id: Option<String>,
}

fn parse(dataset: &'static str, jsonl: &str) -> Result<Vec<Problem>, Error> {
    jsonl
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(index, line)| {
            let r: Record = serde_json::from_str(line)
                .map_err(|e| Error::MalformedData { dataset, line: index + 1, reason: e.to_string() })?;
            Ok(Problem {
                id: r.unique_id.map_or_else(|| format!("{dataset}/{index}"), |u| format!("{dataset}/{u}")),
                question: r.problem,
                gold: r.answer.trim().to_string(),
                level: r.level,
                steps: Vec::new(),
            })
        })
        .collect()
}

/// The 500 MATH-500 problems, with their difficulty levels (1-5).
pub fn math500() -> Result<Vec<Problem>, Error> {
    parse("math500", MATH500)
}

pub fn aime24() -> Result<Vec<Problem>, Error> {
    parse("aime24", AIME24)
}

pub fn aime25() -> Result<Vec<Problem>, Error> {
    parse("aime25", AIME25)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_sets_load() {
        let m = math500().unwrap();
        assert_eq!(m.len(), 500);
        assert!(m.iter().all(|p| p.level.is_some_and(|l| (1..=5).contains(&l)) && !p.gold.is_empty()));
        assert_eq!(aime24().unwrap().len(), 30);
        let a = aime25().unwrap();
        assert_eq!(a.len(), 30);
        assert!(a.iter().all(|p| p.gold.parse::<u32>().is_ok()));
    }
}
