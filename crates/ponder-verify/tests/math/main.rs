//! Integration tests of the math grader: conformance with Math-Verify's cases, answer
//! pairs written apart from the grader, no-panic and bounded-time properties, and
//! pathological inputs. One binary (`cargo test -p ponder-verify --test math`). The
//! MATH-500 and GSM8K acceptance checks need the datasets and are ponder-eval's tests
//! (`grader`).

mod conformance;
mod pathological;
mod props;
mod unseen;

use std::path::PathBuf;

/// A file under this crate's directory.
pub fn data_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The records of a JSON Lines file.
pub fn read_jsonl(rel: &str) -> Vec<serde_json::Value> {
    let path = data_path(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(k, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), k + 1)))
        .collect()
}
