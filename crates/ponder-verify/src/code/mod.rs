//! Sandboxed code execution: untrusted Python run against tests under bubblewrap.
//!
//! A [`CheckRequest`] is a program plus its tests ([`TestSpec`]) plus [`Limits`]; a
//! [`Sandbox`] runs it in a fresh bwrap sandbox and returns one [`Outcome`]; a [`Pool`]
//! runs many at once. Isolation (see `sandbox.rs` for the exact command line): no network,
//! read-only system, a private writable directory per check, a throwaway unprivileged uid
//! per check (so `RLIMIT_NPROC` holds even when the host runs as root), limits on CPU
//! time, address space, processes and file size, and a wall-clock deadline that kills the
//! whole process tree. Grading integrity is not a security goal: a program runs in the
//! same interpreter as its tests and could forge a verdict; the sandbox protects the host.
//!
//! Datasets: [`humaneval`] and [`mbpp`] (vendored under `data/`), [`split_tests`] for the
//! visible/hidden split used by verified resampling; [`SandboxVerifier`] (visible tests)
//! and [`HiddenTestsChecker`] (hidden tests) put them behind ponder-core's contracts.

mod dataset;
mod judge;
mod pool;
mod process;
mod pysrc;
mod sandbox;
mod verifier;

pub mod bench;

pub use dataset::{humaneval, mbpp, split_tests, CodeProblem, TestStatement};
pub use judge::compare_tokens;
pub use pool::Pool;
pub use sandbox::{Execution, Sandbox, SandboxConfig, SANDBOX_UIDS};
pub use verifier::{
    code_problems, describe, extract_code, problem_id, program, CodeEquivalence, HiddenTestsChecker, SandboxVerifier,
};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One program to judge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckRequest {
    /// Complete Python source of the candidate.
    pub program: String,
    pub tests: TestSpec,
    #[serde(default)]
    pub limits: Limits,
}

/// How a program is judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestSpec {
    /// Python test code run after the program, in the same namespace. Each top-level
    /// statement that contains an `assert` is one test, numbered from 0 in order; the
    /// other statements (imports, helpers, `candidate = f`) are setup. The first failing
    /// test is reported. HumanEval's `check(candidate)` is flattened to this form by
    /// [`humaneval`].
    Asserts(String),
    /// The program runs once per case with `stdin` as standard input; its standard output
    /// must match `expected_stdout` token-wise ([`compare_tokens`]). Cases run in order,
    /// in one work directory, and stop at the first that does not pass.
    Io(Vec<IoCase>),
}

/// One stdin/stdout case of [`TestSpec::Io`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IoCase {
    pub stdin: String,
    pub expected_stdout: String,
}

/// Resource limits of one check; for [`TestSpec::Io`] they apply to each case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Wall-clock deadline; the whole process tree is killed when it passes.
    pub wall_ms: u64,
    /// `RLIMIT_CPU` per process (SIGXCPU at the limit, SIGKILL a second later).
    pub cpu_s: u64,
    /// `RLIMIT_AS`: address space per process; also the most anonymous resident memory
    /// of all the check's processes together (root hosts, see `process.rs`).
    pub memory_bytes: u64,
    /// `RLIMIT_NPROC`: processes and threads of the check's uid.
    pub n_processes: u64,
    /// `RLIMIT_FSIZE`: largest file the program may write.
    pub file_size_bytes: u64,
    /// Most bytes kept from stdout, and from stderr; more than this is [`Outcome::OutputLimit`].
    pub output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Twice the CPU limit: a loaded machine stretches wall time, and an infinite loop
            // is still stopped by the CPU limit first.
            wall_ms: 20_000,
            cpu_s: 10,
            // 2 GiB: CPython needs ~30 MB of address space, numpy with OpenBLAS a few hundred.
            memory_bytes: 2 << 30,
            n_processes: 64,
            file_size_bytes: 64 << 20,
            output_bytes: 4 << 20,
        }
    }
}

/// The verdict of one check. Variants are distinct so callers can count each cause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    /// Test `test` (index among the assert statements, or the [`IoCase`] index) failed.
    Failed {
        test: usize,
        detail: String,
    },
    /// The wall-clock deadline passed, or the CPU limit was hit.
    Timeout,
    /// The address-space limit was hit (`MemoryError`, failed allocation).
    MemoryLimit,
    /// stdout or stderr exceeded [`Limits::output_bytes`]; the program was killed.
    OutputLimit,
    /// The program ended without a verdict: an uncaught exception while loading the
    /// program (`exit_code` 1), a signal, or an early exit.
    Crashed {
        exit_code: Option<i32>,
        signal: Option<i32>,
        stderr_tail: String,
    },
    /// The sandbox itself failed (bwrap could not set up, I/O error on the host).
    SandboxError {
        detail: String,
    },
}

impl Outcome {
    pub fn is_passed(&self) -> bool {
        matches!(self, Outcome::Passed)
    }
}

/// Errors creating a [`Sandbox`]. Checks themselves never fail: problems become
/// [`Outcome::SandboxError`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "bubblewrap (bwrap) not found at {}: install it (Debian/Ubuntu: `apt-get install bubblewrap`), \
         or set allow_unsandboxed to run untrusted code on the host without isolation (unsafe)",
        path.display()
    )]
    BwrapNotFound { path: PathBuf },
    #[error(
        "bubblewrap at {} cannot create a sandbox here ({detail}); bwrap needs root or unprivileged \
         user namespaces, or set allow_unsandboxed to run without isolation (unsafe)",
        path.display()
    )]
    IsolationUnavailable { path: PathBuf, detail: String },
    #[error("setpriv not found at {}: install util-linux (needed to drop root inside the sandbox)", path.display())]
    SetprivNotFound { path: PathBuf },
    #[error("python interpreter {python} is not usable: {detail}")]
    PythonUnavailable { python: String, detail: String },
}
