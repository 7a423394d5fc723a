//! Any JSONL file of questions and answers: the `jsonl:PATH` dataset.
//!
//! One JSON object per line with the fields
//!
//! - `question` (string, required): shown to the model;
//! - `answer` (string or number, required): the gold final answer, graded by the math
//!   grader (numbers, fractions, expressions, intervals, ...);
//! - `id` (string or number, optional): stable and unique within the file; defaults to
//!   `{file stem}/{line}`;
//! - `level` (non-negative integer, optional): difficulty, for per-level reports.
//!
//! Blank lines are ignored. Other fields are ignored. A row that does not parse or lacks a
//! required field is an error naming its line, unless the caller asks to skip bad rows, in
//! which case it is returned in [`Loaded::skipped`] for the caller to report.

use std::collections::HashMap;
use std::path::Path;

use ponder_core::Problem;
use serde_json::Value;

use crate::Error;

/// A row left out with `skip_bad_rows`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based line number in the file.
    pub line: usize,
    pub reason: String,
}

/// The problems of a file and the rows skipped.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub problems: Vec<Problem>,
    pub skipped: Vec<BadRow>,
}

/// Reads `path` as a question/answer JSONL file.
pub fn load(path: &Path, skip_bad_rows: bool) -> Result<Loaded, Error> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: shown.clone(), reason: e.to_string() })?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "jsonl".into());
    let mut problems = Vec::new();
    let mut skipped = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match row(line, &stem, n) {
            Ok(p) => {
                if let Some(first) = seen.get(&p.id) {
                    // A duplicate id would make two problems one unit in the run store.
                    let reason = format!("id `{}` already used on line {first}", p.id);
                    if skip_bad_rows {
                        skipped.push(BadRow { line: n, reason });
                        continue;
                    }
                    return Err(Error::BadRow { path: shown, line: n, reason });
                }
                seen.insert(p.id.clone(), n);
                problems.push(p);
            }
            Err(reason) if skip_bad_rows => skipped.push(BadRow { line: n, reason }),
            Err(reason) => return Err(Error::BadRow { path: shown, line: n, reason }),
        }
    }
    if problems.is_empty() {
        return Err(Error::NoProblems { path: shown, skipped: skipped.len() });
    }
    Ok(Loaded { problems, skipped })
}

fn row(line: &str, stem: &str, n: usize) -> Result<Problem, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = v.as_object().ok_or_else(|| "not a JSON object".to_string())?;
    let question = match obj.get("question") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => return Err("field `question` is empty".into()),
        Some(_) => return Err("field `question` must be a string".into()),
        None => return Err("missing field `question`".into()),
    };
    let gold = match obj.get("answer") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::String(_)) => return Err("field `answer` is empty".into()),
        Some(Value::Number(x)) => x.to_string(),
        Some(_) => return Err("field `answer` must be a string or a number".into()),
        None => return Err("missing field `answer`".into()),
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => format!("{stem}/{n}"),
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(x)) => x.to_string(),
        Some(_) => return Err("field `id` must be a non-empty string or a number".into()),
    };
    let level = match obj.get("level") {
        None | Some(Value::Null) => None,
        Some(Value::Number(x)) => Some(
            x.as_u64()
                .and_then(|l| u32::try_from(l).ok())
                .ok_or_else(|| format!("field `level` must be a non-negative integer, got {x}"))?,
        ),
        Some(_) => return Err("field `level` must be a non-negative integer".into()),
    };
    Ok(Problem { id, question, gold, level, steps: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".jsonl").tempfile().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn reads_fields_and_defaults() {
        let f = write(concat!(
            r#"{"id": "a", "question": "1+1?", "answer": "2", "level": 1}"#,
            "\n\n",
            r#"{"question": "2+2?", "answer": 4, "extra": true}"#,
            "\n",
            r#"{"id": 7, "question": "half?", "answer": "\\frac{1}{2}"}"#,
            "\n"
        ));
        let got = load(f.path(), false).unwrap();
        let stem = f.path().file_stem().unwrap().to_string_lossy().into_owned();
        let ids: Vec<&str> = got.problems.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a".to_string(), format!("{stem}/3"), "7".to_string()]);
        assert_eq!(got.problems[1].gold, "4");
        assert_eq!(got.problems[0].level, Some(1));
        assert!(got.skipped.is_empty());
    }

    #[test]
    fn bad_rows_name_their_line_and_are_skipped_only_on_request() {
        let f = write(concat!(
            r#"{"question": "1+1?", "answer": "2"}"#,
            "\n",
            r#"{"question": "no answer"}"#,
            "\n",
            "{not json\n",
            r#"{"question": "3+3?", "answer": "6", "level": -1}"#,
            "\n",
            r#"{"question": "4+4?", "answer": "8"}"#,
            "\n"
        ));
        let err = load(f.path(), false).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("missing field `answer`") && err.contains("--skip-bad-rows"), "{err}");
        let got = load(f.path(), true).unwrap();
        assert_eq!(got.problems.len(), 2);
        let lines: Vec<usize> = got.skipped.iter().map(|b| b.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(got.skipped[1].reason.contains("not valid JSON"), "{:?}", got.skipped);
    }

    #[test]
    fn duplicate_ids_empty_files_and_missing_files_are_errors() {
        let f = write("{\"id\": 1, \"question\": \"q\", \"answer\": 1}\n{\"id\": \"1\", \"question\": \"q\", \"answer\": 2}\n");
        let err = load(f.path(), false).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("already used on line 1"), "{err}");
        let f = write("\n\n");
        assert!(load(f.path(), false).unwrap_err().to_string().contains("no problems"));
        let err = load(Path::new("/nonexistent/x.jsonl"), false).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/x.jsonl"), "{err}");
    }
}
