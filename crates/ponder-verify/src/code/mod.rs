//! Sandboxed code execution: untrusted Python run against tests under bubblewrap.
//!
//! A [`CheckRequest`] is a program plus its tests ([`TestSpec`]) plus [`Limits`]; a
//! [`Sandbox`] runs it in fresh bwrap sandboxes and returns one [`Outcome`]; a [`Pool`]
//! runs many at once. Isolation (see `sandbox.rs` for the exact command line): no network,
//! read-only system, a private writable directory per process, a throwaway unprivileged
//! uid per process (so `RLIMIT_NPROC` holds even when the host runs as root), limits on
//! CPU time, address space, processes and file size, and a wall-clock deadline that kills
//! the whole process tree.
//!
//! The verdict cannot be forged by the program (issue 17): the tests run in a separate
//! sandboxed process, the test driver, and the program only answers the calls the tests
//! make, with plain data. Every comparison runs in the driver; a reply that is not plain
//! data, a broken protocol, an exit, or a reported test count other than the one sent is
//! a failure, never a pass.
//!
//! [`SandboxVerifier`] and [`SandboxChecker`] put the sandbox behind ponder-core's
//! contracts, on tests the caller chooses per problem; the datasets (HumanEval, MBPP and
//! their visible/hidden split) are ponder-eval's.

mod bwrap;
mod capture;
mod judge;
mod pool;
mod process;
pub mod pysrc;
mod sandbox;
mod verdict;
mod verifier;

pub mod bench;

pub use judge::compare_tokens;
pub use pool::Pool;
pub use sandbox::{Execution, Sandbox, SandboxConfig, SANDBOX_UIDS};
pub use verifier::{describe, extract_code, CodeEquivalence, SandboxChecker, SandboxVerifier, TestsFor};

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
    /// Python test code run against the program. Each top-level statement that contains
    /// an `assert` is one test, numbered from 0 in order; the other statements (imports,
    /// helpers, `candidate = f`) are setup. The first failing test is reported.
    /// ponder-eval flattens HumanEval's `check(candidate)` to this form.
    ///
    /// The tests run in their own process, not the program's. A name the tests do not
    /// define is a Python builtin if there is one (a program cannot redefine `abs` for its
    /// judge), else the program's global: plain data (numbers, strings, lists, tuples,
    /// dicts, sets) arrives as a copy, a module is imported by the tests, and functions,
    /// classes and other objects can be called, iterated, indexed and have attributes
    /// read or set, but not compared. `program.NAME` is the program's NAME even where a
    /// builtin shares it (MBPP's `sum`). Arguments the tests pass must be plain data or
    /// such objects of the program (not lambdas), and the program cannot change them.
    Asserts(String),
    /// The program runs once per case with `stdin` as standard input; its standard output
    /// must match `expected_stdout` token-wise ([`compare_tokens`]). Cases run in order,
    /// each in a fresh work directory, and stop at the first that does not pass.
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

/// Largest accepted value of each [`Limits`] field: a day of time, a TiB of memory or
/// file, a GiB of kept output (held in the host's memory).
const LIMIT_MAX: Limits = Limits {
    wall_ms: 86_400_000,
    cpu_s: 86_400,
    memory_bytes: 1 << 40,
    n_processes: 1 << 20,
    file_size_bytes: 1 << 40,
    output_bytes: 1 << 30,
};

impl Limits {
    /// `Err` names the first field out of range: above [`LIMIT_MAX`], or 0 where a
    /// program could not even start (all but `file_size_bytes` and `output_bytes`).
    pub fn validate(&self) -> Result<(), Error> {
        let top = LIMIT_MAX;
        let fields = [
            ("wall_ms", self.wall_ms, 1, top.wall_ms),
            ("cpu_s", self.cpu_s, 1, top.cpu_s),
            ("memory_bytes", self.memory_bytes, 1, top.memory_bytes),
            ("n_processes", self.n_processes, 1, top.n_processes),
            ("file_size_bytes", self.file_size_bytes, 0, top.file_size_bytes),
            ("output_bytes", self.output_bytes, 0, top.output_bytes),
        ];
        match fields.into_iter().find(|(_, v, min, max)| !(min..=max).contains(&v)) {
            Some((field, value, min, max)) => Err(Error::InvalidLimit {
                field,
                value,
                min,
                max,
            }),
            None => Ok(()),
        }
    }
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

/// Errors creating a [`Sandbox`], and invalid [`Limits`]. Checks themselves never fail:
/// problems (invalid limits included) become [`Outcome::SandboxError`].
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
    #[error("limits.{field} must be between {min} and {max}, got {value}")]
    InvalidLimit {
        field: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
}
