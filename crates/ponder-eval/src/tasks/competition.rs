//! Competition math: MATH-500 and AIME 2024/2025, vendored under `data/math500`,
//! `data/aime24`, `data/aime25` (see their READMEs for source and licence). Graded by
//! ponder-verify's math grader, which is also measured on MATH-500's solutions
//! ([`math500_solutions`]).

use ponder_core::Problem;
use serde::Deserialize;

use crate::Error;

const MATH500: &str = include_str!("../../data/math500/test.jsonl");
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

/// Each MATH-500 record's `(answer, solution)`, in the file's order: what
/// `ponder bench verify` grades (the answer against its own solution's box).
pub fn math500_solutions() -> Result<Vec<(String, String)>, Error> {
    #[derive(Deserialize)]
    struct Solved {
        answer: String,
        solution: String,
    }
    MATH500
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(index, line)| {
            let r: Solved = serde_json::from_str(line)
                .map_err(|e| Error::MalformedData { dataset: "math500", line: index + 1, reason: e.to_string() })?;
            Ok((r.answer, r.solution))
        })
        .collect()
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
        let solved = math500_solutions().unwrap();
        assert_eq!(solved.len(), 500);
        assert!(m.iter().zip(&solved).all(|(p, (answer, solution))| p.gold == answer.trim() && !solution.is_empty()));
        assert!(m.iter().all(|p| p.level.is_some_and(|l| (1..=5).contains(&l)) && !p.gold.is_empty()));
        assert_eq!(aime24().unwrap().len(), 30);
        let a = aime25().unwrap();
        assert_eq!(a.len(), 30);
        assert!(a.iter().all(|p| p.gold.parse::<u32>().is_ok()));
    }
}
