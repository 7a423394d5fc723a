//! The bubblewrap sandbox: one fresh, isolated Python process per check.
//!
//! As root (the usual case in CI and containers) each check runs as
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
//!          -- PYTHON -S -B harness.py 3
//! ```
//!
//! with rlimits set before exec and `U` a throwaway uid from [`SANDBOX_UIDS`], different
//! for each check. Why not `--unshare-user --uid 65534`: with root outside, that uid maps
//! to host root, for which the kernel does not enforce `RLIMIT_NPROC`, so a fork bomb
//! would be limited by the wall clock only. A distinct unprivileged uid also means one
//! check's processes never count against another's limit, and it can signal nothing but
//! its own processes. Not root: `--unshare-all` (an unprivileged user namespace) and no
//! setpriv; `RLIMIT_NPROC` then counts all of the invoking user's processes, so a fork bomb
//! in one check can make concurrent checks fail to start (`SandboxError`), and the tree
//! memory watchdog is off.
//!
//! Known gap: disk use is bounded per file (`RLIMIT_FSIZE`), not in total (a program can
//! write many files until its deadline).

use super::process::{self, KillReason, RawRun, Termination, VERDICT_FD};
use super::{judge, pysrc, CheckRequest, Error, IoCase, Limits, Outcome, TestSpec};
use std::fs::{self, File};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// Host uids the sandboxed programs run as (root host only), one per check in turn.
/// Far above ordinary and subordinate (100000–165535) uid ranges.
pub const SANDBOX_UIDS: std::ops::Range<u32> = 1_900_000_000..1_900_065_536;

const HARNESS_PY: &str = include_str!("harness.py");
/// Where the check's private directory appears inside the sandbox.
const SANDBOX_WORKDIR: &str = "/work";
/// Read-only system directories (or their symlinks) exposed to the program.
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

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

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[derive(Clone, Debug)]
enum Isolation {
    /// Host root: bwrap without a user namespace, then setpriv to a throwaway uid.
    BwrapAsRoot {
        bwrap: PathBuf,
        setpriv: PathBuf,
    },
    /// Unprivileged host user: bwrap with a user namespace.
    BwrapUserNs {
        bwrap: PathBuf,
    },
    Unsandboxed,
}

/// The interpreter and the directories it needs, resolved once on the host.
#[derive(Clone, Debug)]
struct PythonInstall {
    executable: PathBuf,
    /// Directory trees to bind read-only (prefix, base prefix), outside the system dirs.
    roots: Vec<PathBuf>,
    bin_dir: PathBuf,
    /// site-packages directories, passed as PYTHONPATH because Python runs with -S.
    site_packages: Vec<PathBuf>,
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

    /// The command line a check runs, with `CHECKDIR` for its private directory and `U`
    /// for its uid.
    pub fn command_line(&self) -> Vec<String> {
        let cmd = self.command(Path::new("CHECKDIR"), None, &["harness.py", "3"]);
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
        let uid =
            matches!(self.isolation, Isolation::BwrapAsRoot { .. }).then(|| self.allocate_uid());
        let mut execution = Execution {
            outcome: Outcome::Passed,
            wall_ms: 0,
            sandbox_uid: uid,
            stdout: String::new(),
            stderr_tail: String::new(),
        };
        let result = match &request.tests {
            TestSpec::Asserts(tests) => self.run_asserts(request, tests, uid, &mut execution),
            TestSpec::Io(cases) => self.run_io(request, cases, uid, &mut execution),
        };
        execution.outcome = result.unwrap_or_else(|detail| Outcome::SandboxError { detail });
        execution.wall_ms = started.elapsed().as_millis() as u64;
        execution
    }

    fn run_asserts(
        &self,
        request: &CheckRequest,
        tests: &str,
        uid: Option<u32>,
        execution: &mut Execution,
    ) -> Result<Outcome, String> {
        let dir = CheckDir::create(uid)?;
        dir.write("harness.py", HARNESS_PY)?;
        dir.write("program.py", &request.program)?;
        let (tests, index) = cut_tests(tests);
        dir.write("tests.py", &tests)?;
        dir.write("tests.idx", &index)?;
        let raw = self.spawn(
            &dir,
            uid,
            &["harness.py", &VERDICT_FD.to_string()],
            &request.limits,
            None,
            true,
        )?;
        let outcome = self.classify_asserts(&raw, &request.limits);
        record_output(execution, &raw);
        Ok(outcome)
    }

    fn run_io(
        &self,
        request: &CheckRequest,
        cases: &[IoCase],
        uid: Option<u32>,
        execution: &mut Execution,
    ) -> Result<Outcome, String> {
        let dir = CheckDir::create(uid)?;
        dir.write("harness.py", HARNESS_PY)?;
        dir.write("program.py", &request.program)?;
        for (idx, case) in cases.iter().enumerate() {
            let stdin = dir.private_file(&format!("stdin-{idx}"), &case.stdin)?;
            let raw = self.spawn(
                &dir,
                uid,
                &["harness.py", "io"],
                &request.limits,
                Some(stdin),
                false,
            )?;
            record_output(execution, &raw);
            if let Some(outcome) = self.classify_failure(&raw, &request.limits) {
                return Ok(outcome);
            }
            if raw.termination != Termination::Exited(0) {
                return Ok(self.crashed(&raw));
            }
            let stdout = String::from_utf8_lossy(&raw.stdout);
            if let Err(detail) = judge::compare_tokens(&case.expected_stdout, &stdout) {
                return Ok(Outcome::Failed { test: idx, detail });
            }
        }
        Ok(Outcome::Passed)
    }

    fn spawn(
        &self,
        dir: &CheckDir,
        uid: Option<u32>,
        args: &[&str],
        limits: &Limits,
        stdin: Option<File>,
        verdict_pipe: bool,
    ) -> Result<RawRun, String> {
        let cmd = self.command(&dir.root, uid, args);
        process::run(cmd, limits, stdin, verdict_pipe, uid)
            .map_err(|e| format!("cannot start {:?}: {e}", self.launcher()))
    }

    fn launcher(&self) -> &Path {
        match &self.isolation {
            Isolation::BwrapAsRoot { bwrap, .. } | Isolation::BwrapUserNs { bwrap } => bwrap,
            Isolation::Unsandboxed => &self.python.executable,
        }
    }

    /// The command for one run: `args` go to Python, relative to the check's work dir.
    fn command(&self, check_root: &Path, uid: Option<u32>, args: &[&str]) -> Command {
        let work = check_root.join("work");
        let tmp = check_root.join("tmp");
        let mut env: Vec<(&str, String)> = vec![
            (
                "PATH",
                format!(
                    "{}:/usr/local/bin:/usr/bin:/bin",
                    self.python.bin_dir.display()
                ),
            ),
            ("LANG", "C.UTF-8".into()),
            ("LC_ALL", "C.UTF-8".into()),
            // Deterministic set and dict-of-str ordering, so a check gives the same verdict twice.
            ("PYTHONHASHSEED", "0".into()),
            (
                "PYTHONPATH",
                std::env::join_paths(&self.python.site_packages)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            ("PYTHONIOENCODING", "utf-8".into()),
            ("PYTHONDONTWRITEBYTECODE", "1".into()),
            ("OMP_NUM_THREADS", "1".into()),
            ("OPENBLAS_NUM_THREADS", "1".into()),
            ("MKL_NUM_THREADS", "1".into()),
        ];
        let python = self.python.executable.to_string_lossy().into_owned();
        // -S: no site module, which (with its .pth files) was 60 of CPython's 75 ms startup
        // here; harness.py restores exit/quit, and PYTHONPATH the site-packages.
        let python_args = ["-S", "-B"].into_iter().chain(args.iter().copied());
        let (bwrap, setpriv) = match &self.isolation {
            Isolation::Unsandboxed => {
                env.push(("HOME", work.display().to_string()));
                env.push(("TMPDIR", tmp.display().to_string()));
                let mut cmd = Command::new(&python);
                cmd.args(python_args)
                    .current_dir(&work)
                    .env_clear()
                    .envs(env);
                return cmd;
            }
            Isolation::BwrapAsRoot { bwrap, setpriv } => (bwrap, Some(setpriv)),
            Isolation::BwrapUserNs { bwrap } => (bwrap, None),
        };
        env.push(("HOME", SANDBOX_WORKDIR.into()));
        env.push(("TMPDIR", "/tmp".into()));

        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        if setpriv.is_some() {
            // No user namespace: setpriv below needs real root to switch to an unmapped uid.
            push(&[
                "--unshare-ipc",
                "--unshare-pid",
                "--unshare-net",
                "--unshare-uts",
                "--unshare-cgroup-try",
            ]);
            // Only what setpriv needs; it drops these too before exec.
            push(&[
                "--cap-drop",
                "ALL",
                "--cap-add",
                "CAP_SETUID",
                "--cap-add",
                "CAP_SETGID",
                "--cap-add",
                "CAP_SETPCAP",
            ]);
        } else {
            push(&["--unshare-all", "--cap-drop", "ALL"]);
        }
        push(&["--die-with-parent", "--new-session"]);
        let mut bound: Vec<PathBuf> = Vec::new();
        for dir in SYSTEM_DIRS {
            let path = Path::new(dir);
            let Ok(meta) = fs::symlink_metadata(path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                if let Ok(target) = fs::read_link(path) {
                    push(&["--symlink", &target.to_string_lossy(), dir]);
                }
            } else if meta.is_dir() {
                push(&["--ro-bind", dir, dir]);
                bound.push(path.to_path_buf());
            }
        }
        let mut made_dirs: Vec<PathBuf> = Vec::new();
        for root in &self.python.roots {
            if bound.iter().any(|b| root.starts_with(b)) {
                continue;
            }
            // bwrap would create missing parents with the host's modes (/root is 0700),
            // hiding the interpreter from the unprivileged uid; make them 0755 first.
            let mut ancestors: Vec<&Path> = root
                .ancestors()
                .skip(1)
                .filter(|p| p.parent().is_some())
                .collect();
            ancestors.reverse();
            for dir in ancestors {
                if !made_dirs.iter().any(|m| m == dir) {
                    push(&["--perms", "0755", "--dir", &dir.to_string_lossy()]);
                    made_dirs.push(dir.to_path_buf());
                }
            }
            let root = root.to_string_lossy();
            push(&["--ro-bind", &root, &root]);
            bound.push(PathBuf::from(root.as_ref()));
        }
        push(&["--proc", "/proc", "--dev", "/dev"]);
        push(&[
            "--bind",
            &work.to_string_lossy(),
            SANDBOX_WORKDIR,
            "--bind",
            &tmp.to_string_lossy(),
            "/tmp",
        ]);
        // POSIX semaphores and shared memory (multiprocessing) live in /dev/shm.
        push(&[
            "--bind",
            &check_root.join("shm").to_string_lossy(),
            "/dev/shm",
        ]);
        push(&["--chdir", SANDBOX_WORKDIR, "--remount-ro", "/"]);
        for (key, value) in &env {
            push(&["--setenv", key, value]);
        }
        push(&["--"]);
        if let Some(setpriv) = setpriv {
            let uid = uid.unwrap_or(SANDBOX_UIDS.start).to_string();
            push(&[
                &setpriv.to_string_lossy(),
                "--reuid",
                &uid,
                "--regid",
                &uid,
                "--clear-groups",
            ]);
            push(&["--bounding-set", "-all", "--inh-caps", "-all", "--"]);
        }
        push(&[&python]);
        a.extend(python_args.map(str::to_string));
        let mut cmd = Command::new(bwrap);
        cmd.args(a).env_clear();
        cmd
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

    /// Outcomes that do not depend on the test mode: limits, signals, setup failures.
    fn classify_failure(&self, raw: &RawRun, limits: &Limits) -> Option<Outcome> {
        match raw.killed {
            Some(KillReason::Output) => return Some(Outcome::OutputLimit),
            Some(KillReason::Deadline) => return Some(Outcome::Timeout),
            Some(KillReason::Memory) => return Some(Outcome::MemoryLimit),
            None => {}
        }
        let stderr = String::from_utf8_lossy(&raw.stderr_tail);
        if self.is_isolated()
            && raw.termination == Termination::Exited(1)
            && (stderr.starts_with("bwrap: ") || stderr.starts_with("setpriv: "))
        {
            return Some(Outcome::SandboxError {
                detail: stderr.trim().to_string(),
            });
        }
        let signal = self.signal(raw.termination);
        // SIGKILL after SIGXCPU (ignored by the program) is the hard CPU limit. CPU time
        // is not observable through bwrap (see process.rs); a single-threaded program
        // cannot use more of it than wall time, so an earlier SIGKILL is something else.
        let cpu_possible = raw.wall_ms + 100 >= limits.cpu_s * 1000;
        if signal == Some(libc::SIGXCPU) || (signal == Some(libc::SIGKILL) && cpu_possible) {
            return Some(Outcome::Timeout);
        }
        let out_of_memory = [
            "MemoryError",
            "Cannot allocate memory",
            "cannot allocate memory",
            "std::bad_alloc",
        ];
        if raw.termination != Termination::Exited(0)
            && out_of_memory.iter().any(|m| stderr.contains(m))
        {
            return Some(Outcome::MemoryLimit);
        }
        None
    }

    fn classify_asserts(&self, raw: &RawRun, limits: &Limits) -> Outcome {
        if let Some(outcome) = self.classify_failure(raw, limits) {
            return outcome;
        }
        let verdict = String::from_utf8_lossy(&raw.verdict);
        let last = verdict
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str::<serde_json::Value>(line).ok());
        let Some(v) = last else {
            return self.crashed(raw);
        };
        let detail = || v["detail"].as_str().unwrap_or_default().to_string();
        match v["event"].as_str() {
            Some("passed") => Outcome::Passed,
            Some("failed") => Outcome::Failed {
                test: v["test"].as_u64().unwrap_or(0) as usize,
                detail: detail(),
            },
            Some("memory") => Outcome::MemoryLimit,
            Some("program_error") => Outcome::Crashed {
                exit_code: Some(1),
                signal: None,
                stderr_tail: detail(),
            },
            Some("harness_error") => Outcome::SandboxError { detail: detail() },
            _ => self.crashed(raw),
        }
    }

    fn crashed(&self, raw: &RawRun) -> Outcome {
        let signal = self.signal(raw.termination);
        let exit_code = match raw.termination {
            Termination::Exited(code) if signal.is_none() => Some(code),
            _ => None,
        };
        let mut stderr_tail = String::from_utf8_lossy(&raw.stderr_tail).into_owned();
        if exit_code == Some(0) {
            stderr_tail.push_str("\n(exited before the tests reported a verdict)");
        }
        Outcome::Crashed {
            exit_code,
            signal,
            stderr_tail: tail(&stderr_tail, 2000),
        }
    }

    /// The signal that ended the program. bwrap reports a signalled child as exit 128 + n.
    fn signal(&self, termination: Termination) -> Option<i32> {
        match termination {
            Termination::Signaled(sig) => Some(sig),
            Termination::Exited(code) if self.is_isolated() && (129..=128 + 64).contains(&code) => {
                Some(code - 128)
            }
            Termination::Exited(_) => None,
        }
    }
}

/// The test code (newlines normalised) and its cut into top-level statements for the
/// harness: one `T|S FIRST END` line per statement, T when it contains an `assert`. Doing
/// this here spares every check the import of Python's `ast` module.
fn cut_tests(tests: &str) -> (String, String) {
    let tests = tests.replace("\r\n", "\n");
    let lines: Vec<&str> = tests.lines().collect();
    let mut index = String::new();
    for (first, end) in pysrc::statement_spans(&tests) {
        let is_test = pysrc::has_keyword(&lines[first..end].join("\n"), "assert");
        index.push_str(&format!(
            "{} {first} {end}\n",
            if is_test { "T" } else { "S" }
        ));
    }
    (tests, index)
}

fn record_output(execution: &mut Execution, raw: &RawRun) {
    execution.stdout = String::from_utf8_lossy(&raw.stdout).into_owned();
    execution.stderr_tail = String::from_utf8_lossy(&raw.stderr_tail).into_owned();
}

fn tail(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// A random start, so two processes on one host rarely hand out the same uid at once.
fn uid_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().wrapping_mul(2_654_435_761)
}

/// Resolves the interpreter on the host (trusted) and the directories it lives in.
fn resolve_python(python: &Path) -> Result<PythonInstall, Error> {
    let unusable = |detail: String| Error::PythonUnavailable {
        python: python.display().to_string(),
        detail,
    };
    // The executable is kept as named (a venv's python finds pyvenv.cfg beside it); the
    // directory its symlinks lead to is bound as well.
    let script = "import os, site, sys\n\
        for p in (sys.executable, os.path.realpath(sys.executable), sys.prefix, sys.base_prefix): print(p)\n\
        print(os.pathsep.join(p for p in site.getsitepackages() if os.path.isdir(p)))";
    let output = Command::new(python)
        .args(["-c", script])
        .output()
        .map_err(|e| unusable(e.to_string()))?;
    if !output.status.success() {
        return Err(unusable(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<PathBuf> = text.lines().map(PathBuf::from).collect();
    let [executable, real_executable, prefix, base_prefix, site_packages] = lines.as_slice() else {
        return Err(unusable(format!("unexpected answer {text:?}")));
    };
    let parent = |p: &Path| {
        p.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/usr/bin"))
    };
    let bin_dir = parent(executable);
    let mut roots: Vec<PathBuf> = Vec::new();
    for root in [
        prefix.clone(),
        base_prefix.clone(),
        bin_dir.clone(),
        parent(real_executable),
    ] {
        if !roots.iter().any(|r| root.starts_with(r)) {
            roots.retain(|r| !r.starts_with(&root));
            roots.push(root);
        }
    }
    let site_packages = std::env::split_paths(site_packages)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    Ok(PythonInstall {
        executable: executable.clone(),
        roots,
        bin_dir,
        site_packages,
    })
}

/// A check's private directory on the host: `work/` (the program's cwd), `tmp/` and `shm/`, owned
/// by the check's uid, plus root-only files such as stdin beside them.
struct CheckDir {
    _guard: tempfile::TempDir,
    root: PathBuf,
}

impl CheckDir {
    fn create(uid: Option<u32>) -> Result<CheckDir, String> {
        let guard = tempfile::Builder::new()
            .prefix("ponder-check-")
            .tempdir()
            .map_err(|e| format!("cannot create a check directory: {e}"))?;
        let root = guard.path().to_path_buf();
        let io = |what: &str, e: std::io::Error| {
            format!(
                "cannot prepare check directory {}: {what}: {e}",
                root.display()
            )
        };
        // 0711: the sandbox setup can reach work/ and tmp/, nobody can list what is here.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o711))
            .map_err(|e| io("chmod", e))?;
        for (name, mode) in [("work", 0o711), ("tmp", 0o700), ("shm", 0o700)] {
            let dir = root.join(name);
            fs::create_dir(&dir).map_err(|e| io("mkdir", e))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
                .map_err(|e| io("chmod", e))?;
            if let Some(uid) = uid {
                chown(&dir, Some(uid), Some(uid)).map_err(|e| io("chown", e))?;
            }
        }
        Ok(CheckDir {
            _guard: guard,
            root,
        })
    }

    /// A root-owned, read-only file in the program's work dir.
    fn write(&self, name: &str, content: &str) -> Result<(), String> {
        let path = self.root.join("work").join(name);
        fs::write(&path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
    }

    /// A file outside the sandbox's view, opened for reading.
    fn private_file(&self, name: &str, content: &str) -> Result<File, String> {
        let path = self.root.join(name);
        fs::write(&path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))
    }
}
