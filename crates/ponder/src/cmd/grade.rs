//! `ponder grade`: the verifiers on JSONL, one JSON verdict per input line, so anyone can
//! audit them against their own cases.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use ponder_verify::code::{CheckRequest, IoCase, Limits, Pool, Sandbox, SandboxConfig, TestSpec};
use ponder_verify::math::Grader;
use serde::Deserialize;
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Lines {"gold": .., "pred": .., "extract": false}; with extract true, pred is a full
    /// model output and the final answer is extracted first
    Math {
        /// JSONL file, or - for standard input
        file: PathBuf,
    },
    /// Lines {"program": .., "tests": "assert ..."} or {"program": .., "io": [{"stdin": ..,
    /// "stdout": ..}]} (or one "stdin"/"stdout" pair), optional "limits" {wall_ms, cpu_s,
    /// memory_bytes, n_processes, file_size_bytes, output_bytes}; run in parallel in the
    /// bubblewrap sandbox
    Code {
        /// JSONL file, or - for standard input
        file: PathBuf,
        /// Run without isolation when bubblewrap is unavailable (unsafe: the programs run
        /// with your privileges)
        #[arg(long)]
        allow_unsandboxed: bool,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeLine {
    program: String,
    #[serde(default)]
    tests: Option<String>,
    #[serde(default)]
    io: Option<Vec<IoLine>>,
    #[serde(default)]
    stdin: Option<String>,
    #[serde(default)]
    stdout: Option<String>,
    #[serde(default)]
    limits: Limits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IoLine {
    #[serde(default)]
    stdin: String,
    stdout: String,
}

impl CodeLine {
    fn request(self) -> Result<CheckRequest, String> {
        // Out-of-range limits (u64::MAX, 0) are this line's error, naming the field.
        self.limits.validate().map_err(|e| e.to_string())?;
        let tests = match (self.tests, self.io, self.stdin, self.stdout) {
            (Some(t), None, None, None) => TestSpec::Asserts(t),
            (None, Some(io), None, None) if !io.is_empty() => TestSpec::Io(
                io.into_iter().map(|c| IoCase { stdin: c.stdin, expected_stdout: c.stdout }).collect(),
            ),
            (None, None, stdin, Some(stdout)) => {
                TestSpec::Io(vec![IoCase { stdin: stdin.unwrap_or_default(), expected_stdout: stdout }])
            }
            _ => return Err("give exactly one of `tests`, a non-empty `io` list, or `stdout` (with optional `stdin`)".into()),
        };
        Ok(CheckRequest { program: self.program, tests, limits: self.limits })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MathLine {
    gold: String,
    pred: String,
    #[serde(default)]
    extract: bool,
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Math { file } => grade_lines(&file, grade_math),
        Command::Code { file, allow_unsandboxed } => grade_code(&file, allow_unsandboxed),
    }
}

/// Parses every line first, runs the valid ones through the pool in parallel, then prints
/// the verdicts in input order.
fn grade_code(path: &Path, allow_unsandboxed: bool) -> Result<()> {
    let config = SandboxConfig { allow_unsandboxed, ..SandboxConfig::default() };
    let sandbox = Sandbox::new(config)?;
    let pool = Pool::with_default_size(sandbox);
    let mut parsed: Vec<(usize, Result<CheckRequest, String>)> = Vec::new();
    for_each_line(path, |line_no, line| {
        let r = serde_json::from_str::<CodeLine>(line)
            .map_err(|e| format!("not a code case ({{program, tests | io | stdin/stdout, limits?}}): {e}"))
            .and_then(CodeLine::request);
        parsed.push((line_no, r));
    })?;
    let (requests, slots): (Vec<CheckRequest>, Vec<usize>) =
        parsed.iter().enumerate().filter_map(|(i, (_, r))| r.as_ref().ok().map(|q| (q.clone(), i))).unzip();
    let mut outcomes: Vec<Option<serde_json::Value>> = vec![None; parsed.len()];
    for (slot, outcome) in slots.into_iter().zip(pool.check_many(requests)) {
        outcomes[slot] = Some(serde_json::to_value(&outcome)?);
    }
    let results = parsed
        .into_iter()
        .zip(outcomes)
        .map(|((line_no, r), outcome)| (line_no, r.and_then(|_| outcome.ok_or_else(|| "not run".to_string()))));
    print_verdicts(path, results)
}

fn grade_math(line: &str) -> Result<serde_json::Value, String> {
    let l: MathLine = serde_json::from_str(line).map_err(|e| format!("not a math case ({{gold, pred, extract?}}): {e}"))?;
    let grader = Grader::default();
    let pred = if l.extract { ponder_verify::math::extract(&l.pred) } else { Some(l.pred.clone()) };
    let v = match &pred {
        Some(p) => grader.grade(&l.gold, p),
        None => grader.grade_output(&l.gold, &l.pred),
    };
    Ok(json!({ "equivalent": v.equivalent, "reason": v.reason, "pred": pred }))
}

/// Calls `f(line_no, line)` for every non-blank line of `path` (or stdin for `-`).
fn for_each_line(path: &Path, mut f: impl FnMut(usize, &str)) -> Result<()> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?))
    };
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {} of {}", i + 1, path.display()))?;
        if !line.trim().is_empty() {
            f(i + 1, &line);
        }
    }
    Ok(())
}

/// Grades every non-blank line with `grade`.
fn grade_lines(path: &Path, grade: impl Fn(&str) -> Result<serde_json::Value, String>) -> Result<()> {
    let mut results = Vec::new();
    for_each_line(path, |line_no, line| results.push((line_no, grade(line))))?;
    print_verdicts(path, results)
}

/// Prints `{"line": n, ...verdict}` or `{"line": n, "error": ..}` per line; fails at the
/// end if any line could not be graded.
fn print_verdicts(
    path: &Path,
    results: impl IntoIterator<Item = (usize, Result<serde_json::Value, String>)>,
) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let (mut n_bad, mut first_bad) = (0usize, None);
    for (line_no, r) in results {
        let verdict = match r {
            Ok(mut v) => {
                v["line"] = json!(line_no);
                v
            }
            Err(e) => {
                n_bad += 1;
                first_bad.get_or_insert_with(|| format!("line {line_no}: {e}"));
                json!({ "line": line_no, "error": e })
            }
        };
        writeln!(out, "{verdict}")?;
    }
    if let Some(first) = first_bad {
        bail!("{n_bad} line(s) of {} could not be graded (first: {first})", path.display());
    }
    Ok(())
}
