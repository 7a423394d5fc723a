//! Child processes under limits: rlimits set between fork and exec, bounded capture of
//! stdout, stderr and the verdict pipe, and a wall-clock deadline that kills each child's
//! process group. A check runs one child (I/O mode) or two that talk over pipes the host
//! hands them (the test driver and the program it tests).
//!
//! Everything is driven by `poll(2)` on the pipes plus a pidfd per exit, in the calling
//! thread: no signal handlers, no helper threads, so a pool worker is never left waiting.
//!
//! `RLIMIT_AS` bounds each process, not the tree: 64 processes of 2 GiB each would be
//! 128 GiB. Without cgroups, a watchdog bounds the tree instead: when the check runs as its
//! own uid, its processes' anonymous resident memory is summed from /proc every
//! [`MEMORY_WATCH_EVERY`] and the group is killed past the limit.

use super::capture::{Keep, Stream};
use super::Limits;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The descriptor on which the test driver writes its verdict inside its sandbox.
pub(crate) const VERDICT_FD: RawFd = 3;
/// Most bytes read from the verdict pipe.
const VERDICT_CAP_BYTES: usize = 1 << 20;
/// Most bytes of stderr kept (the tail).
const STDERR_TAIL_BYTES: usize = 8 << 10;
/// How long to keep draining pipes after the child exited; longer means a straggler holds them.
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// How long the other children of [`run`] may take to exit by themselves once the first
/// has: the program sees its driver gone and exits, and an exit that raced the driver's
/// verdict is reported as what it was, not as our kill.
const SERVED_GRACE: Duration = Duration::from_millis(250);
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
    /// The first child of [`run`] had exited; this one only served it.
    Served,
}

#[derive(Debug)]
pub(crate) struct RawRun {
    pub termination: Termination,
    pub killed: Option<KillReason>,
    /// The first `output_bytes` of stdout.
    pub stdout: Vec<u8>,
    /// The last few KiB of stderr.
    pub stderr_tail: Vec<u8>,
    /// What the child wrote on its verdict descriptor.
    pub verdict: Vec<u8>,
    /// From spawn to exit.
    pub wall_ms: u64,
}

pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
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

/// One process of [`run`].
pub(crate) struct Spec {
    pub cmd: Command,
    /// Standard input; /dev/null when `None`.
    pub stdin: Option<File>,
    /// Descriptors handed to the child: ours, and the number it gets there (at most
    /// [`MAX_PASSED_FDS`]). Ours are closed once the child has started.
    pub fds: Vec<(OwnedFd, RawFd)>,
    /// A pipe on this descriptor of the child, captured as [`RawRun::verdict`].
    pub verdict_fd: Option<RawFd>,
    /// A uid only this child uses: turns the memory watchdog on for it.
    pub watch_uid: Option<u32>,
}

/// Most descriptors one [`Spec`] can pass (the exec hook cannot allocate).
const MAX_PASSED_FDS: usize = 8;

/// A started child and what has been seen of it.
struct Running {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    /// stdout, stderr, and the verdict pipe when there is one.
    streams: Vec<Stream>,
    exit: Option<(Termination, Instant)>,
    killed: Option<KillReason>,
    watch_uid: Option<u32>,
}

impl Running {
    fn kill(&mut self, reason: KillReason) {
        if self.exit.is_none() && self.killed.is_none() {
            kill_group(self.pid);
            self.killed = Some(reason);
        }
    }
}

/// Runs the children of `specs` together to completion, each under `limits` (rlimits,
/// output caps, the memory watchdog) and all under one wall-clock deadline. The first
/// child is the one the others serve: once it has exited, the rest get [`SERVED_GRACE`]
/// to exit, then are killed ([`KillReason::Served`]). `Err` only when a child could not
/// be started.
pub(crate) fn run(specs: Vec<Spec>, limits: &Limits) -> io::Result<Vec<RawRun>> {
    let started = Instant::now();
    let deadline = started
        .checked_add(Duration::from_millis(limits.wall_ms))
        .unwrap_or(started + Duration::from_secs(86_400));
    let mut children: Vec<Running> = Vec::with_capacity(specs.len());
    for spec in specs {
        match spawn(spec, limits) {
            Ok(child) => children.push(child),
            Err(e) => {
                for child in &mut children {
                    kill_group(child.pid);
                    reap(child.pid, true);
                }
                return Err(e);
            }
        }
    }

    let mut drain_until = deadline;
    let mut next_memory_watch = started + MEMORY_WATCH_EVERY;
    let watching = children.iter().any(|c| c.watch_uid.is_some());
    loop {
        let now = Instant::now();
        if now >= deadline {
            children
                .iter_mut()
                .for_each(|c| c.kill(KillReason::Deadline));
        }
        if watching && now >= next_memory_watch {
            for child in &mut children {
                if let (None, None, Some(uid)) = (child.exit, child.killed, child.watch_uid) {
                    if anonymous_resident_bytes(uid) > limits.memory_bytes {
                        child.kill(KillReason::Memory);
                    }
                }
            }
            next_memory_watch = Instant::now() + MEMORY_WATCH_EVERY;
        }
        let served_until = children
            .first()
            .and_then(|c| c.exit)
            .map(|(_, at)| at + SERVED_GRACE);
        if served_until.is_some_and(|until| now >= until) {
            children[1..]
                .iter_mut()
                .for_each(|c| c.kill(KillReason::Served));
        }
        for child in &mut children {
            if child.exit.is_none() && child.killed.is_some() {
                // SIGKILL was sent to the leader, so this returns promptly.
                child.exit = reap(child.pid, true).map(|t| (t, Instant::now()));
                drain_until = Instant::now() + DRAIN_GRACE;
            }
        }
        let all_exited = children.iter().all(|c| c.exit.is_some());
        let any_open = children.iter().any(|c| c.streams.iter().any(|s| s.open));
        if all_exited && (!any_open || now >= drain_until) {
            break;
        }

        let mut fds: Vec<libc::pollfd> = Vec::new();
        // (child, stream) per entry of `fds`; `None` for a pidfd.
        let mut slots: Vec<(usize, Option<usize>)> = Vec::new();
        let mut missing_pidfd = false;
        for (child_idx, child) in children.iter().enumerate() {
            for (stream_idx, stream) in child.streams.iter().enumerate() {
                if stream.open {
                    fds.push(poll_in(stream.file.as_raw_fd()));
                    slots.push((child_idx, Some(stream_idx)));
                }
            }
            if child.exit.is_none() {
                match &child.pidfd {
                    Some(fd) => {
                        fds.push(poll_in(fd.as_raw_fd()));
                        slots.push((child_idx, None));
                    }
                    None => missing_pidfd = true,
                }
            }
        }
        let until = match (all_exited, watching) {
            (true, _) => drain_until,
            (false, true) => deadline.min(next_memory_watch),
            (false, false) => deadline,
        };
        let until = served_until.map_or(until, |served| until.min(served));
        let mut timeout_ms = until
            .saturating_duration_since(now)
            .as_millis()
            .min(i32::MAX as u128) as i32;
        if missing_pidfd {
            timeout_ms = timeout_ms.min(10); // no pidfd: poll for the exit
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if ready < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // poll itself failing (ENOMEM) cannot be waited out: stop the check.
            children
                .iter_mut()
                .for_each(|c| c.kill(KillReason::Deadline));
            continue;
        }
        let mut exited: Vec<usize> = Vec::new();
        for (pollfd, &(child_idx, stream)) in fds.iter().zip(&slots) {
            if pollfd.revents == 0 {
                continue;
            }
            match stream {
                Some(stream_idx) => children[child_idx].streams[stream_idx].read_available(),
                None => exited.push(child_idx),
            }
        }
        if missing_pidfd {
            exited.extend((0..children.len()).filter(|&i| children[i].pidfd.is_none()));
        }
        for child in &mut children {
            let streams = &child.streams;
            let over_output = streams[..2].iter().any(|s| s.total > limits.output_bytes)
                || streams
                    .get(2)
                    .is_some_and(|s| s.total > VERDICT_CAP_BYTES as u64);
            if over_output {
                child.kill(KillReason::Output);
            }
        }
        for child_idx in exited {
            let child = &mut children[child_idx];
            // Kill stragglers in the group while the leader's zombie still pins the group id.
            if child.exit.is_none() && reap_would_succeed(child.pid, child.pidfd.is_some()) {
                kill_group(child.pid);
                child.exit = reap(child.pid, false).map(|t| (t, Instant::now()));
                drain_until = Instant::now() + DRAIN_GRACE;
            }
        }
    }
    Ok(children
        .into_iter()
        .map(|child| {
            let (termination, ended) = child
                .exit
                .unwrap_or((Termination::Signaled(libc::SIGKILL), Instant::now()));
            let mut streams = child.streams.into_iter().map(|s| s.buf);
            RawRun {
                termination,
                killed: child.killed,
                stdout: streams.next().unwrap_or_default(),
                stderr_tail: streams.next().unwrap_or_default(),
                verdict: streams.next().unwrap_or_default(),
                wall_ms: ended.duration_since(started).as_millis() as u64,
            }
        })
        .collect())
}

fn poll_in(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Starts one child with its rlimits and descriptors; ours of `spec.fds` close on return.
fn spawn(spec: Spec, limits: &Limits) -> io::Result<Running> {
    let Spec {
        mut cmd,
        stdin,
        mut fds,
        verdict_fd,
        watch_uid,
    } = spec;
    let verdict_read = match verdict_fd {
        Some(target) => {
            let (read, write) = pipe()?;
            fds.push((write, target));
            Some(read)
        }
        None => None,
    };
    if fds.len() > MAX_PASSED_FDS {
        return Err(io::Error::other(format!(
            "{} descriptors to pass, at most {MAX_PASSED_FDS}",
            fds.len()
        )));
    }
    let mut passed = [(-1 as RawFd, -1 as RawFd); MAX_PASSED_FDS];
    for (slot, (ours, target)) in passed.iter_mut().zip(&fds) {
        *slot = (ours.as_raw_fd(), *target);
    }
    let n_passed = fds.len();

    cmd.stdin(stdin.map_or_else(Stdio::null, Stdio::from))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let cpu_s = limits.cpu_s as libc::rlim_t;
    let memory = limits.memory_bytes as libc::rlim_t;
    let n_processes = limits.n_processes as libc::rlim_t;
    let file_size = limits.file_size_bytes as libc::rlim_t;
    // SAFETY: the hook only makes async-signal-safe calls (setrlimit, prctl, fcntl, dup2)
    // on values copied into the closure, and does not allocate.
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
            limit!(libc::RLIMIT_CPU, cpu_s, cpu_s.saturating_add(1));
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
            // Out of the way first (close-on-exec copies above any target), so a source
            // numbered like another's target is not overwritten before it is moved.
            let mut moved = [-1 as RawFd; MAX_PASSED_FDS];
            for (slot, (ours, _)) in moved.iter_mut().zip(&passed[..n_passed]) {
                *slot = libc::fcntl(*ours, libc::F_DUPFD_CLOEXEC, 64);
                if *slot < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // dup2's copy is not close-on-exec: the child keeps it.
            for (from, (_, target)) in moved.iter().zip(&passed[..n_passed]) {
                if libc::dup2(*from, *target) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }

    let mut child = cmd.spawn()?;
    // The child holds its own copies; ours must close or the pipes never reach end of file.
    drop(fds);
    let pid = child.id() as libc::pid_t;
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
    Ok(Running {
        pid,
        pidfd: pidfd_open(pid),
        streams,
        exit: None,
        killed: None,
        watch_uid,
    })
}

/// Whether the child has exited (without reaping it).
fn reap_would_succeed(pid: libc::pid_t, pidfd_said_so: bool) -> bool {
    if pidfd_said_so {
        return true;
    }
    // SAFETY: siginfo_t is plain data, for which all zeroes is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid fills `info`, which lives for the call; WNOWAIT leaves the zombie in place.
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
