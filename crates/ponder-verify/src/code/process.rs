//! One child process under limits: rlimits set between fork and exec, bounded capture of
//! stdout, stderr and the verdict pipe, and a wall-clock deadline that kills the child's
//! process group.
//!
//! Everything is driven by `poll(2)` on the pipes plus a pidfd for the exit, in the calling
//! thread: no signal handlers, no helper threads, so a pool worker is never left waiting.
//!
//! `RLIMIT_AS` bounds each process, not the tree: 64 processes of 2 GiB each would be
//! 128 GiB. Without cgroups, a watchdog bounds the tree instead: when the check runs as its
//! own uid, its processes' anonymous resident memory is summed from /proc every
//! [`MEMORY_WATCH_EVERY`] and the group is killed past the limit.

use super::Limits;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The descriptor on which the harness writes its verdict inside the sandbox.
pub(crate) const VERDICT_FD: RawFd = 3;
/// Most bytes read from the verdict pipe.
const VERDICT_CAP_BYTES: usize = 1 << 20;
/// Most bytes of stderr kept (the tail).
const STDERR_TAIL_BYTES: usize = 8 << 10;
/// How long to keep draining pipes after the child exited; longer means a straggler holds them.
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// Most bytes read from one stream before looking at the clock and the limits again.
const READ_BUDGET_BYTES: usize = 1 << 20;
/// How often the memory watchdog looks; checks that end sooner are never scanned.
const MEMORY_WATCH_EVERY: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Termination {
    Exited(i32),
    Signaled(i32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KillReason {
    Deadline,
    Output,
    Memory,
}

#[derive(Debug)]
pub(crate) struct RawRun {
    pub termination: Termination,
    pub killed: Option<KillReason>,
    /// The first `output_bytes` of stdout.
    pub stdout: Vec<u8>,
    /// The last few KiB of stderr.
    pub stderr_tail: Vec<u8>,
    /// What the harness wrote on [`VERDICT_FD`].
    pub verdict: Vec<u8>,
    /// From spawn to exit.
    pub wall_ms: u64,
}

/// Which end of a stream to keep when it is longer than the buffer.
#[derive(Clone, Copy, PartialEq)]
enum Keep {
    Head(usize),
    Tail(usize),
}

struct Stream {
    file: File,
    keep: Keep,
    buf: Vec<u8>,
    total: u64,
    open: bool,
}

impl Stream {
    fn new(fd: OwnedFd, keep: Keep) -> io::Result<Stream> {
        set_nonblocking(fd.as_raw_fd())?;
        Ok(Stream {
            file: File::from(fd),
            keep,
            buf: Vec::new(),
            total: 0,
            open: true,
        })
    }

    /// Reads what is available now, at most [`READ_BUDGET_BYTES`] so a flood cannot keep
    /// the caller from its deadline and limit checks; marks the stream closed at end of file.
    fn read_available(&mut self) {
        let mut chunk = [0u8; 64 << 10];
        let mut budget = READ_BUDGET_BYTES;
        while budget > 0 {
            match self.file.read(&mut chunk) {
                Ok(0) => {
                    self.open = false;
                    return;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.total += n as u64;
                    match self.keep {
                        Keep::Head(cap) => {
                            let room = cap.saturating_sub(self.buf.len());
                            self.buf.extend_from_slice(&chunk[..n.min(room)]);
                        }
                        Keep::Tail(cap) => {
                            self.buf.extend_from_slice(&chunk[..n]);
                            if self.buf.len() > cap {
                                self.buf.drain(..self.buf.len() - cap);
                            }
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.open = false;
                    return;
                }
            }
        }
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative return is a fresh descriptor that we now own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn kill_group(pgid: libc::pid_t) {
    // SAFETY: plain syscall; the group leader is our unreaped child, so the id is ours.
    unsafe { libc::killpg(pgid, libc::SIGKILL) };
}

/// Reaps `pid`; `None` if it is still running and `block` is false.
///
/// No CPU accounting here: bwrap's outer process exits as soon as its init reports the
/// program's status, without reaping it, so rusage would only show bwrap's own time.
fn reap(pid: libc::pid_t, block: bool) -> Option<Termination> {
    let mut status = 0;
    loop {
        let flags = if block { 0 } else { libc::WNOHANG };
        // SAFETY: pointer to a local that outlives the call.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == pid {
            break;
        }
        if r == 0 {
            return None;
        }
        if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        // ECHILD: already reaped elsewhere, which this module never does; report a kill.
        return Some(Termination::Signaled(libc::SIGKILL));
    }
    Some(if libc::WIFSIGNALED(status) {
        Termination::Signaled(libc::WTERMSIG(status))
    } else {
        Termination::Exited(libc::WEXITSTATUS(status))
    })
}

/// Anonymous resident memory of all host processes whose real uid is `uid`. Pages shared
/// copy-on-write after a fork count once per process, so this errs on the high side.
fn anonymous_resident_bytes(uid: u32) -> u64 {
    let uid = uid.to_string();
    let mut total_kib = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(|c: char| c.is_ascii_digit())
        {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
        };
        if field("Uid:") == Some(uid.as_str()) {
            total_kib += field("RssAnon:")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total_kib * 1024
}

/// Runs `cmd` to completion under `limits`, with `stdin` (or /dev/null) as its input.
/// With `verdict_pipe`, the child also gets a pipe on fd 3 whose content is returned.
/// With `watch_uid` (a uid only this check uses), the memory watchdog is on.
/// `Err` only when the child could not be started.
pub(crate) fn run(
    mut cmd: Command,
    limits: &Limits,
    stdin: Option<File>,
    verdict_pipe: bool,
    watch_uid: Option<u32>,
) -> io::Result<RawRun> {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(limits.wall_ms);
    let verdict = if verdict_pipe { Some(pipe()?) } else { None };
    let verdict_write_fd = verdict.as_ref().map_or(-1, |(_, w)| w.as_raw_fd());

    cmd.stdin(stdin.map_or_else(Stdio::null, Stdio::from))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let cpu_s = limits.cpu_s as libc::rlim_t;
    let memory = limits.memory_bytes as libc::rlim_t;
    let n_processes = limits.n_processes as libc::rlim_t;
    let file_size = limits.file_size_bytes as libc::rlim_t;
    // SAFETY: the hook only makes async-signal-safe calls (setrlimit, prctl, dup2, fcntl)
    // on values copied into the closure.
    unsafe {
        cmd.pre_exec(move || {
            macro_rules! limit {
                ($resource:expr, $soft:expr, $hard:expr) => {
                    let value = libc::rlimit {
                        rlim_cur: $soft,
                        rlim_max: $hard,
                    };
                    if libc::setrlimit($resource, &value) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                };
            }
            // The hard CPU limit is one second later so SIGXCPU arrives first and names the cause.
            limit!(libc::RLIMIT_CPU, cpu_s, cpu_s + 1);
            limit!(libc::RLIMIT_AS, memory, memory);
            limit!(libc::RLIMIT_NPROC, n_processes, n_processes);
            limit!(libc::RLIMIT_FSIZE, file_size, file_size);
            // No core files: they would land outside the limits, or in a host crash handler.
            limit!(libc::RLIMIT_CORE, 0, 0);
            // If the host process dies, the sandbox goes with it.
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            if verdict_write_fd >= 0 {
                if verdict_write_fd == VERDICT_FD {
                    let flags = libc::fcntl(VERDICT_FD, libc::F_GETFD);
                    libc::fcntl(VERDICT_FD, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                } else if libc::dup2(verdict_write_fd, VERDICT_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }

    let mut child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    // The child holds its own copy; ours must close or the pipe never reaches end of file.
    let verdict_read = verdict.map(|(r, _w)| r);
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_group(pid);
        reap(pid, true);
        return Err(io::Error::other("child has no stdout/stderr pipes"));
    };
    let output_cap = usize::try_from(limits.output_bytes).unwrap_or(usize::MAX);
    let mut streams = vec![
        Stream::new(OwnedFd::from(stdout), Keep::Head(output_cap))?,
        Stream::new(OwnedFd::from(stderr), Keep::Tail(STDERR_TAIL_BYTES))?,
    ];
    if let Some(fd) = verdict_read {
        streams.push(Stream::new(fd, Keep::Head(VERDICT_CAP_BYTES))?);
    }
    let pidfd = pidfd_open(pid);

    let mut killed = None;
    let mut exit: Option<(Termination, Instant)> = None;
    let mut drain_until = deadline;
    let mut next_memory_watch = started + MEMORY_WATCH_EVERY;
    loop {
        let now = Instant::now();
        if exit.is_none() && killed.is_none() && now >= deadline {
            kill_group(pid);
            killed = Some(KillReason::Deadline);
        }
        if let (None, None, Some(uid), true) = (exit, killed, watch_uid, now >= next_memory_watch) {
            if anonymous_resident_bytes(uid) > limits.memory_bytes {
                kill_group(pid);
                killed = Some(KillReason::Memory);
            }
            next_memory_watch = Instant::now() + MEMORY_WATCH_EVERY;
        }
        if exit.is_none() && killed.is_some() {
            // SIGKILL was sent to the leader, so this returns promptly.
            exit = reap(pid, true).map(|t| (t, Instant::now()));
            drain_until = Instant::now() + DRAIN_GRACE;
        }
        let open: Vec<usize> = (0..streams.len()).filter(|&i| streams[i].open).collect();
        if exit.is_some() && (open.is_empty() || now >= drain_until) {
            break;
        }

        let mut fds: Vec<libc::pollfd> = open
            .iter()
            .map(|&i| libc::pollfd {
                fd: streams[i].file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let watch_exit = exit.is_none() && pidfd.is_some();
        if let (true, Some(fd)) = (watch_exit, pidfd.as_ref()) {
            fds.push(libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let until = match (exit, watch_uid) {
            (Some(_), _) => drain_until,
            (None, Some(_)) => deadline.min(next_memory_watch),
            (None, None) => deadline,
        };
        let mut timeout_ms = until
            .saturating_duration_since(now)
            .as_millis()
            .min(i32::MAX as u128) as i32;
        if exit.is_none() && pidfd.is_none() {
            timeout_ms = timeout_ms.min(10); // no pidfd: poll for the exit
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if ready < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // poll itself failing (ENOMEM) cannot be waited out: stop the check.
            kill_group(pid);
            killed.get_or_insert(KillReason::Deadline);
            continue;
        }
        for (slot, &i) in open.iter().enumerate() {
            if fds[slot].revents != 0 {
                streams[i].read_available();
            }
        }
        let over_output = streams[..2].iter().any(|s| s.total > limits.output_bytes)
            || streams
                .get(2)
                .is_some_and(|s| s.total > VERDICT_CAP_BYTES as u64);
        if over_output && killed.is_none() && exit.is_none() {
            kill_group(pid);
            killed = Some(KillReason::Output);
            continue;
        }
        let exited = if watch_exit {
            fds.last().is_some_and(|p| p.revents != 0)
        } else {
            exit.is_none()
        };
        if exit.is_none() && exited {
            // Kill stragglers in the group while the leader's zombie still pins the group id.
            if reap_would_succeed(pid, pidfd.is_some()) {
                kill_group(pid);
                exit = reap(pid, false).map(|t| (t, Instant::now()));
                drain_until = Instant::now() + DRAIN_GRACE;
            }
        }
    }
    let (termination, ended) =
        exit.unwrap_or((Termination::Signaled(libc::SIGKILL), Instant::now()));
    let mut streams = streams.into_iter().map(|s| s.buf);
    Ok(RawRun {
        termination,
        killed,
        stdout: streams.next().unwrap_or_default(),
        stderr_tail: streams.next().unwrap_or_default(),
        verdict: streams.next().unwrap_or_default(),
        wall_ms: ended.duration_since(started).as_millis() as u64,
    })
}

/// Whether the child has exited (without reaping it).
fn reap_would_succeed(pid: libc::pid_t, pidfd_said_so: bool) -> bool {
    if pidfd_said_so {
        return true;
    }
    // SAFETY: siginfo_t is plain data; waitid fills it. WNOWAIT leaves the zombie in place.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: reading si_pid of a siginfo that waitid filled (or left zeroed).
    r == 0 && unsafe { info.si_pid() } == pid
}
