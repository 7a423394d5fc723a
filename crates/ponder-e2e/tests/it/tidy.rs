//! Tidy: the rules every Rust file of the workspace keeps (rust-analyzer's xtask/src/tidy.rs
//! is the model).
//!
//! 1. Its first line is a `//!` doc line saying what the file is.
//! 2. Code that is not a test has at most [`MAX_LINES`] lines. Tests are: every file under
//!    a crate's `tests/` directory; files named `tests.rs` or `*_tests.rs` (unit tests kept
//!    in their own file beside the code, `#[cfg(test)] mod tests;`); and in any other file,
//!    the inline `#[cfg(test)] mod NAME { .. }` block that ends it (its lines, from the
//!    `#[cfg(test)]`, are not counted).
//! 3. Every `include_str!`/`include_bytes!` path stays inside the file's own crate: a file
//!    compiled in from another crate is an edge Cargo cannot see, and breaks packaging.
//!
//! [`EXEMPT`] names each file allowed past rule 2 and why; an exemption no longer needed
//! fails the test, so the list cannot go stale.

use std::path::{Path, PathBuf};

/// Most lines of non-test code in one file.
const MAX_LINES: usize = 500;

/// Files allowed more than [`MAX_LINES`], each with its reason.
const EXEMPT: &[(&str, &str)] = &[];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root exists")
}

/// Every `.rs` file under `dir`, `target` directories skipped.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())).map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Whether the file at `rel` (relative to the workspace) is test code as a whole.
fn is_test_file(rel: &Path) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    // crates/<crate>/tests/...
    let in_tests_dir = rel.components().nth(2).is_some_and(|c| c.as_os_str() == "tests");
    in_tests_dir || name == "tests.rs" || name.ends_with("_tests.rs")
}

/// The paths `text` compiles in with `include_str!("..")` or `include_bytes!("..")`.
fn included_paths(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for mac in ["include_str!(\"", "include_bytes!(\""] {
        let mut rest = text;
        while let Some(at) = rest.find(mac) {
            rest = &rest[at + mac.len()..];
            if let Some(end) = rest.find('"') {
                out.push(&rest[..end]);
            }
        }
    }
    out
}

/// `path` relative to the directory of `file` (both relative to the workspace), with `..`
/// resolved lexically.
fn resolve(file: &Path, path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in file.parent().unwrap_or(Path::new("")).join(path).components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Lines of `text` before the inline `#[cfg(test)] mod NAME {` block, if it has one.
fn code_lines(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let inline_tests = lines.windows(2).position(|w| {
        let next = w[1].trim_start();
        w[0].trim() == "#[cfg(test)]" && next.starts_with("mod ") && next.trim_end().ends_with('{')
    });
    inline_tests.unwrap_or(lines.len())
}

#[test]
fn every_source_file_says_what_it_is_and_stays_small() {
    let root = workspace();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    assert!(files.len() > 100, "found only {} files under {}", files.len(), root.display());
    let mut problems = Vec::new();
    let mut exempt_used = vec![false; EXEMPT.len()];
    for path in &files {
        let rel = path.strip_prefix(&root).expect("under the workspace");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if !text.starts_with("//!") {
            problems.push(format!("{}: the first line is not a `//!` line", rel.display()));
        }
        let own_crate: PathBuf = rel.components().take(2).collect();
        for included in included_paths(&text) {
            if !resolve(rel, included).starts_with(&own_crate) {
                problems.push(format!("{}: includes {included:?}, outside {}", rel.display(), own_crate.display()));
            }
        }
        if is_test_file(rel) {
            continue;
        }
        let n = code_lines(&text);
        match EXEMPT.iter().position(|(p, _)| Path::new(p) == rel) {
            Some(i) if n > MAX_LINES => exempt_used[i] = true,
            _ if n > MAX_LINES => problems.push(format!("{}: {n} lines of code, more than {MAX_LINES}", rel.display())),
            _ => {}
        }
    }
    for ((path, why), used) in EXEMPT.iter().zip(exempt_used) {
        if !used {
            problems.push(format!("{path}: exempt from the size rule ({why}) but no longer needs it; drop the exemption"));
        }
    }
    assert!(problems.is_empty(), "tidy:\n{}", problems.join("\n"));
}

#[test]
fn the_rules_read_files_as_stated() {
    assert!(is_test_file(Path::new("crates/ponder-eval/tests/it/main.rs")));
    assert!(is_test_file(Path::new("crates/ponder-eval/tests/it/code/datasets.rs")));
    assert!(is_test_file(Path::new("crates/ponder-core/src/strategy/tests.rs")));
    assert!(is_test_file(Path::new("crates/ponder-core/src/strategy/search_tests.rs")));
    assert!(!is_test_file(Path::new("crates/ponder-core/src/strategy/mod.rs")));
    assert!(!is_test_file(Path::new("crates/ponder-core/src/testing.rs")));
    assert_eq!(code_lines("//! a\nfn f() {}\n\n#[cfg(test)]\nmod tests {\n    fn t() {}\n}\n"), 3);
    // A test module in its own file is declared, not inline: every line counts.
    assert_eq!(code_lines("//! a\n#[cfg(test)]\nmod tests;\nfn f() {}\n"), 4);
    let text = "const A: &str = include_str!(\"../../data/x.jsonl\");\nconst B: &[u8] = include_bytes!(\"y.bin\");";
    assert_eq!(included_paths(text), ["../../data/x.jsonl", "y.bin"]);
    let file = Path::new("crates/ponder-eval/src/tasks/competition.rs");
    assert_eq!(resolve(file, "../../data/x.jsonl"), Path::new("crates/ponder-eval/data/x.jsonl"));
    // What competition.rs used to include, before issue 16.
    assert_eq!(
        resolve(file, "../../../ponder-verify/data/math500/test.jsonl"),
        Path::new("crates/ponder-verify/data/math500/test.jsonl")
    );
}
