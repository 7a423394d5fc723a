//! The bubblewrap sandbox: each check in fresh, isolated Python processes.
//!
//! An assert check runs two sandboxes side by side: the PROGRAM (`harness.py serve`: the
//! candidate's code, which answers calls) and the TEST DRIVER (`driver.py`: the tests,
//! which decide the verdict). They share nothing but two pipes the host hands them; the
//! program's replies are plain data the driver parses strictly, so no code of the program
//! runs where the verdict is decided, and the tests are never inside the program's
//! sandbox (see driver.py for how names and values cross). An I/O check runs the program
//! once per case, each in a fresh work directory; the host compares the output.
//!
//! As root (the usual case in CI and containers) each process runs as
//!
//! ```text
//! bwrap --unshare-ipc --unshare-pid --unshare-net --unshare-uts --unshare-cgroup-try
//!       --cap-drop ALL --cap-add CAP_SETUID --cap-add CAP_SETGID --cap-add CAP_SETPCAP
//!       --die-with-parent --new-session
//!       --ro-bind /usr /usr --ro-bind /etc /etc --symlink usr/lib /lib …   (system, read-only)
//!       --perms 0755 --dir /root … --ro-bind PREFIX PREFIX                  (the Python install)
//!       --proc /proc --dev /dev
//!       --bind CHECKDIR/work /work --bind CHECKDIR/tmp /tmp               (the only writable dirs)
//!       --bind CHECKDIR/shm /dev/shm --chdir /work
//!       --remount-ro /  --setenv HOME /work …
//!       -- setpriv --reuid U --regid U --clear-groups --bounding-set -all --inh-caps -all
//!          -- PYTHON -S -B harness.py serve
//! ```
//!
//! with rlimits set before exec and `U` a throwaway uid from [`SANDBOX_UIDS`], different
//! for each process of each check (the driver has its own uid, directory and pid
//! namespace: the program cannot signal, trace or read it). Why not `--unshare-user --uid
//! 65534`: with root outside, that uid maps to host root, for which the kernel does not
//! enforce `RLIMIT_NPROC`, so a fork bomb would be limited by the wall clock only. A
//! distinct unprivileged uid also means one check's processes never count against
//! another's limit, and it can signal nothing but its own processes. Not root:
//! `--unshare-all` (an unprivileged user namespace) and no setpriv; `RLIMIT_NPROC` then
//! counts all of the invoking user's processes, so a fork bomb in one check can make
//! concurrent checks fail to start (`SandboxError`), and the tree memory watchdog is off.
//! Unsandboxed (`allow_unsandboxed`), the program runs as the host user beside the driver
//! and could reach it: neither the host nor the verdict is protected.
//!
//! Known gap: disk use is bounded per file (`RLIMIT_FSIZE`), not in total (a program can
//! write many files until its deadline).

use super::bwrap::{
    self, find_on_path, is_executable, resolve_python, CheckDir, Isolation, PythonInstall,
};
use super::process::{self, RawRun, Spec, Termination, VERDICT_FD};
use super::verdict::{self, cut_tests};
use super::{judge, CheckRequest, Error, IoCase, Limits, Outcome, TestSpec};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// Host uids the sandboxed programs run as (root host only), one per process in turn.
/// Far above ordinary and subordinate (100000–165535) uid ranges.
pub const SANDBOX_UIDS: std::ops::Range<u32> = 1_900_000_000..1_900_065_536;

const HARNESS_PY: &str = include_str!("harness.py");
const DRIVER_PY: &str = include_str!("driver.py");
/// The pipes between driver and program, as numbered in each (see harness.py, driver.py).
const DRIVER_REQUESTS_FD: RawFd = 4;
const DRIVER_REPLIES_FD: RawFd = 5;
const PROGRAM_REQUESTS_FD: RawFd = 3;
const PROGRAM_REPLIES_FD: RawFd = 4;

/// How to find the tools; [`Default`] looks in the usual places.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The bubblewrap binary (Debian package `bubblewrap`).
    pub bwrap: PathBuf,
    /// util-linux `setpriv`, used to drop root inside the sandbox.
    pub setpriv: PathBuf,
    /// The Python interpreter, a path or a name looked up on `PATH`.
    pub python: PathBuf,
    /// Run programs directly on the host (rlimits and a private cwd only) when bubblewrap
    /// is missing or cannot isolate. Unsafe: the program can read and write whatever the
    /// host user can, and reach the network.
    pub allow_unsandboxed: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            bwrap: find_on_path("bwrap").unwrap_or_else(|| PathBuf::from("/usr/bin/bwrap")),
            setpriv: find_on_path("setpriv").unwrap_or_else(|| PathBuf::from("/usr/bin/setpriv")),
            python: PathBuf::from("python3"),
            allow_unsandboxed: false,
        }
    }
}

/// The result of one check with its cost.
#[derive(Clone, Debug)]
pub struct Execution {
    pub outcome: Outcome,
    pub wall_ms: u64,
    /// Host uid the program ran as, for isolated root hosts.
    pub sandbox_uid: Option<u32>,
    /// Captured stdout of the last run (at most [`Limits::output_bytes`]).
    pub stdout: String,
    /// The end of stderr of the last run.
    pub stderr_tail: String,
}

/// Runs untrusted Python programs against tests, each in a fresh sandbox. Cheap to share
/// between threads; see [`super::Pool`] to run many checks at once.
#[derive(Debug)]
pub struct Sandbox {
    isolation: Isolation,
    python: PythonInstall,
    next_uid: AtomicU32,
}

impl Sandbox {
    /// Finds bubblewrap and Python and runs a probe check. Refuses (`Err`) when isolation
    /// is unavailable, unless `config.allow_unsandboxed` is set.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, Error> {
        let python = resolve_python(&config.python)?;
        // SAFETY: geteuid has no preconditions.
        let is_root = unsafe { libc::geteuid() } == 0;
        let isolation = if !is_executable(&config.bwrap) {
            Err(Error::BwrapNotFound {
                path: config.bwrap.clone(),
            })
        } else if is_root && !is_executable(&config.setpriv) {
            Err(Error::SetprivNotFound {
                path: config.setpriv.clone(),
            })
        } else if is_root {
            Ok(Isolation::BwrapAsRoot {
                bwrap: config.bwrap.clone(),
                setpriv: config.setpriv.clone(),
            })
        } else {
            Ok(Isolation::BwrapUserNs {
                bwrap: config.bwrap.clone(),
            })
        };
        let isolation = match isolation {
            Ok(isolation) => isolation,
            Err(e) if config.allow_unsandboxed => {
                tracing::warn!("{e}; running checks UNSANDBOXED as allowed");
                Isolation::Unsandboxed
            }
            Err(e) => return Err(e),
        };
        let sandbox = Sandbox {
            isolation,
            python,
            next_uid: AtomicU32::new(uid_seed()),
        };
        if sandbox.is_isolated() {
            if let Err(detail) = sandbox.probe() {
                let err = Error::IsolationUnavailable {
                    path: config.bwrap.clone(),
                    detail,
                };
                if !config.allow_unsandboxed {
                    return Err(err);
                }
                tracing::warn!("{err}; running checks UNSANDBOXED as allowed");
                return Ok(Sandbox {
                    isolation: Isolation::Unsandboxed,
                    ..sandbox
                });
            }
        }
        Ok(sandbox)
    }

    /// Whether checks run under bubblewrap (false only with `allow_unsandboxed`).
    pub fn is_isolated(&self) -> bool {
        !matches!(self.isolation, Isolation::Unsandboxed)
    }

    /// The command line of a check's program, with `CHECKDIR` for its private directory
    /// and `U` for its uid.
    pub fn command_line(&self) -> Vec<String> {
        let cmd = self.command(Path::new("CHECKDIR"), None, &["harness.py", "serve"]);
        std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|s| s.to_string_lossy().into_owned())
            .map(|s| {
                if s == SANDBOX_UIDS.start.to_string() {
                    "U".to_string()
                } else {
                    s
                }
            })
            .collect()
    }

    /// Judges one program.
    pub fn check(&self, request: &CheckRequest) -> Outcome {
        self.execute(request).outcome
    }

    /// Judges one program and reports its cost and output.
    pub fn execute(&self, request: &CheckRequest) -> Execution {
        let started = Instant::now();
        let uid = self.uid();
        let mut execution = Execution {
            outcome: Outcome::Passed,
            wall_ms: 0,
            sandbox_uid: uid,
            stdout: String::new(),
            stderr_tail: String::new(),
        };
        let result = match (request.limits.validate(), &request.tests) {
            (Err(e), _) => Err(e.to_string()),
            (Ok(()), TestSpec::Asserts(tests)) => {
                self.run_asserts(request, tests, uid, &mut execution)
            }
            (Ok(()), TestSpec::Io(cases)) => self.run_io(request, cases, uid, &mut execution),
        };
        execution.outcome = result.unwrap_or_else(|detail| Outcome::SandboxError { detail });
        execution.wall_ms = started.elapsed().as_millis() as u64;
        execution
    }

    /// A fresh uid on root hosts.
    fn uid(&self) -> Option<u32> {
        matches!(self.isolation, Isolation::BwrapAsRoot { .. }).then(|| self.allocate_uid())
    }

    /// The driver and the program, side by side, joined by two pipes.
    fn run_asserts(
        &self,
        request: &CheckRequest,
        tests: &str,
        program_uid: Option<u32>,
        execution: &mut Execution,
    ) -> Result<Outcome, String> {
        let program_dir = CheckDir::create(program_uid)?;
        program_dir.write("harness.py", HARNESS_PY)?;
        program_dir.write("program.py", &request.program)?;
        let driver_uid = self.uid();
        let driver_dir = CheckDir::create(driver_uid)?;
        let cut = cut_tests(tests);
        driver_dir.write("driver.py", DRIVER_PY)?;
        driver_dir.write("tests.py", &cut.source)?;
        driver_dir.write("tests.idx", &cut.index)?;
        let pipe = || process::pipe().map_err(|e| format!("cannot create a pipe: {e}"));
        let (requests_read, requests_write) = pipe()?;
        let (replies_read, replies_write) = pipe()?;
        let driver = Spec {
            cmd: self.command(&driver_dir.root, driver_uid, &["driver.py"]),
            stdin: None,
            fds: vec![
                (requests_write, DRIVER_REQUESTS_FD),
                (replies_read, DRIVER_REPLIES_FD),
            ],
            verdict_fd: Some(VERDICT_FD),
            watch_uid: driver_uid,
        };
        let program = Spec {
            cmd: self.command(&program_dir.root, program_uid, &["harness.py", "serve"]),
            stdin: None,
            fds: vec![
                (requests_read, PROGRAM_REQUESTS_FD),
                (replies_write, PROGRAM_REPLIES_FD),
            ],
            verdict_fd: None,
            watch_uid: program_uid,
        };
        let runs = process::run(vec![driver, program], &request.limits)
            .map_err(|e| self.start_error(e))?;
        let [driver, program] = runs.as_slice() else {
            return Err(format!("expected 2 runs, got {}", runs.len()));
        };
        let outcome = verdict::asserts_outcome(
            driver,
            program,
            cut.n_tests,
            &request.limits,
            self.is_isolated(),
        );
        record_output(execution, program);
        Ok(outcome)
    }

    /// One run per case, each in a fresh directory: nothing a case leaves behind reaches
    /// the next.
    fn run_io(
        &self,
        request: &CheckRequest,
        cases: &[IoCase],
        uid: Option<u32>,
        execution: &mut Execution,
    ) -> Result<Outcome, String> {
        let isolated = self.is_isolated();
        for (idx, case) in cases.iter().enumerate() {
            let dir = CheckDir::create(uid)?;
            dir.write("harness.py", HARNESS_PY)?;
            dir.write("program.py", &request.program)?;
            let stdin = dir.private_file("stdin", &case.stdin)?;
            let spec = Spec {
                cmd: self.command(&dir.root, uid, &["harness.py", "io"]),
                stdin: Some(stdin),
                fds: Vec::new(),
                verdict_fd: None,
                watch_uid: uid,
            };
            let raw = process::run(vec![spec], &request.limits)
                .map_err(|e| self.start_error(e))?
                .pop()
                .ok_or("no run")?;
            record_output(execution, &raw);
            let failure = verdict::limit_outcome(&raw, &request.limits, isolated)
                .or_else(|| verdict::sandbox_failure(&raw, isolated));
            if let Some(outcome) = failure {
                return Ok(outcome);
            }
            if raw.termination != Termination::Exited(0) {
                return Ok(verdict::crashed(&raw, isolated));
            }
            let stdout = String::from_utf8_lossy(&raw.stdout);
            if let Err(detail) = judge::compare_tokens(&case.expected_stdout, &stdout) {
                return Ok(Outcome::Failed { test: idx, detail });
            }
        }
        Ok(Outcome::Passed)
    }

    fn start_error(&self, e: std::io::Error) -> String {
        let launcher = match &self.isolation {
            Isolation::BwrapAsRoot { bwrap, .. } | Isolation::BwrapUserNs { bwrap } => bwrap,
            Isolation::Unsandboxed => &self.python.executable,
        };
        format!("cannot start {launcher:?}: {e}")
    }

    fn command(&self, check_root: &Path, uid: Option<u32>, args: &[&str]) -> Command {
        bwrap::command(&self.isolation, &self.python, check_root, uid, args)
    }

    fn allocate_uid(&self) -> u32 {
        let span = SANDBOX_UIDS.end - SANDBOX_UIDS.start;
        SANDBOX_UIDS.start + self.next_uid.fetch_add(1, Ordering::Relaxed) % span
    }

    /// Runs a tiny check end to end; `Err` carries what went wrong.
    fn probe(&self) -> Result<(), String> {
        let request = CheckRequest {
            program: "import sys\nanswer = 42\n".into(),
            tests: TestSpec::Asserts("assert answer == 42".into()),
            limits: Limits {
                wall_ms: 20_000,
                ..Limits::default()
            },
        };
        match self.execute(&request) {
            Execution {
                outcome: Outcome::Passed,
                ..
            } => Ok(()),
            Execution {
                outcome,
                stderr_tail,
                ..
            } => Err(format!(
                "probe check gave {outcome:?}; stderr: {}",
                stderr_tail.trim()
            )),
        }
    }
}

fn record_output(execution: &mut Execution, raw: &RawRun) {
    execution.stdout = String::from_utf8_lossy(&raw.stdout).into_owned();
    execution.stderr_tail = String::from_utf8_lossy(&raw.stderr_tail).into_owned();
}

/// A random start, so two processes on one host rarely hand out the same uid at once.
fn uid_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().wrapping_mul(2_654_435_761)
}
