//! Hostile programs, each contained and reported; the host and the pool carry on.

use super::{asserts, sandbox, with_limits};
use ponder_verify::code::{CheckRequest, Limits, Outcome, Pool, SANDBOX_UIDS};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn short(wall_ms: u64) -> Limits {
    Limits {
        wall_ms,
        ..Limits::default()
    }
}

/// Pids of host processes running as `uid`.
fn processes_of(uid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let real_uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next());
        if real_uid == Some(uid.to_string().as_str()) {
            pids.push(pid);
        }
    }
    pids
}

/// Waits up to 3 s for every process of `uid` to be gone.
fn assert_no_processes_left(uid: u32) {
    let until = Instant::now() + Duration::from_secs(3);
    while !processes_of(uid).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        processes_of(uid),
        Vec::<u32>::new(),
        "processes of sandbox uid {uid} survived the check"
    );
}

/// Peak resident memory of this test process.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:"));
    hwm.and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

const INFINITE_LOOP: &str = "while True:\n    pass\n";
const FORK_BOMB: &str =
    "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
/// The shell then waits, so the bomb runs until the deadline.
const SHELL_FORK_BOMB: &str =
    "import os\nos.execv('/bin/bash', ['bash', '-c', ':(){ :|:& };:; sleep 60'])\n";
const ALLOCATE_10_GB: &str = "hog = bytearray(10 * 1024 ** 3)\n";
const GROW_UNTIL_FULL: &str = "hog = []\nwhile True:\n    hog.append(bytearray(50 * 1024 ** 2))\n";
const PRINT_1_GB: &str =
    "import os\nchunk = b'x' * (1 << 20)\nfor _ in range(1024):\n    os.write(1, chunk)\n";
const PRINT_FOREVER: &str = "import sys\nwhile True:\n    sys.stdout.write('y' * 65536)\n";
const STDERR_1_GB: &str =
    "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stderr.write(chunk)\n";

const WRITE_OUTSIDE: &str = r#"
written = []
for path in [TARGETS]:
    try:
        with open(path, 'w') as f:
            f.write('escaped')
        written.append(path)
    except OSError:
        pass
with open('/work/ok', 'w') as f:
    f.write('ok')
ok = open('/work/ok').read()
with open('/tmp/ok', 'w') as f:
    f.write('ok')
with open('/dev/shm/ponder-private', 'w') as f:
    f.write('ok')
"#;

const CONNECT: &str = r#"
import socket
reached = []
for addr in [('1.1.1.1', 53), ('127.0.0.1', PORT), ('8.8.8.8', 443)]:
    try:
        socket.create_connection(addr, timeout=3).close()
        reached.append(addr)
    except OSError:
        pass
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('1.1.1.1', 53))
    reached.append('udp')
except OSError:
    pass
try:
    socket.getaddrinfo('example.com', 80)
    reached.append('dns')
except OSError:
    pass
"#;

/// Writes its secret, then waits until the test drops `done` into its work dir.
const OWN_FILES: &str = r#"
import os, time
for d in ('/work', '/tmp'):
    with open(os.path.join(d, 'TOKEN'), 'w') as f:
        f.write('secret')
deadline = time.time() + 25
while not os.path.exists('/work/done') and time.time() < deadline:
    time.sleep(0.05)
mine = os.path.exists('/work/TOKEN')
"#;

const SNOOP: &str = r#"
import glob, os
found = []
for root, dirs, files in os.walk('/'):
    if root in ('/proc', '/sys', '/usr', '/etc', '/root'):
        dirs[:] = []
        continue
    found += [os.path.join(root, f) for f in files if 'TOKEN' in f]
found += glob.glob('/tmp/ponder-check-*') + glob.glob('/proc/*/root/work/TOKEN')
pids = [p for p in os.listdir('/proc') if p.isdigit()]
"#;

#[test]
fn infinite_loop_times_out() {
    let started = Instant::now();
    let execution = sandbox().execute(&with_limits(
        asserts(INFINITE_LOOP, "assert True"),
        short(2000),
    ));
    assert_eq!(execution.outcome, Outcome::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    assert_no_processes_left(execution.sandbox_uid.expect("root host: per-check uid"));
}

#[test]
fn cpu_limit_times_out_before_the_wall_clock() {
    let limits = Limits {
        cpu_s: 1,
        wall_ms: 30_000,
        ..Limits::default()
    };
    let started = Instant::now();
    let outcome = sandbox().check(&with_limits(asserts(INFINITE_LOOP, "assert True"), limits));
    assert_eq!(outcome, Outcome::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "CPU limit did not fire: {:?}",
        started.elapsed()
    );
}

#[test]
fn fork_bomb_is_contained() {
    for bomb in [FORK_BOMB, SHELL_FORK_BOMB] {
        let execution = sandbox().execute(&with_limits(asserts(bomb, "assert True"), short(3000)));
        assert_eq!(execution.outcome, Outcome::Timeout, "{bomb}");
        let uid = execution.sandbox_uid.expect("root host: per-check uid");
        assert_no_processes_left(uid);
    }
    // The host can still start processes.
    assert!(Command::new("true").status().is_ok_and(|s| s.success()));
}

#[test]
fn fork_bomb_hits_the_process_limit() {
    let program = "import os, time\nn = 0\ntry:\n    while n < 1000:\n        if os.fork() == 0:\n            time.sleep(30)\n            os._exit(0)\n        n += 1\nexcept OSError:\n    pass\n";
    let limits = Limits {
        n_processes: 16,
        ..short(10_000)
    };
    let outcome = sandbox().check(&with_limits(asserts(program, "assert n < 16, n"), limits));
    assert_eq!(outcome, Outcome::Passed);
}

#[test]
fn allocating_10_gb_hits_memory_limit() {
    for program in [ALLOCATE_10_GB, GROW_UNTIL_FULL] {
        let outcome = sandbox().check(&asserts(program, "assert True"));
        assert_eq!(outcome, Outcome::MemoryLimit, "{program}");
    }
    let in_test = sandbox().check(&asserts(
        "def f():\n    return bytearray(10 * 1024 ** 3)\n",
        "assert len(f()) > 0",
    ));
    assert_eq!(in_test, Outcome::MemoryLimit);
}

/// Eight processes of 600 MB each: every one is under `RLIMIT_AS`, together over 2 GiB.
const FORKED_ALLOCATIONS: &str = r#"
import os, time
for _ in range(7):
    if os.fork() == 0:
        break
hog = b'x' * (600 * 1024 ** 2)
time.sleep(20)
"#;

#[test]
fn forked_allocations_hit_the_tree_memory_limit() {
    let started = Instant::now();
    let execution = sandbox().execute(&with_limits(
        asserts(FORKED_ALLOCATIONS, "assert True"),
        short(15_000),
    ));
    assert_eq!(execution.outcome, Outcome::MemoryLimit);
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "took {:?}",
        started.elapsed()
    );
    assert_no_processes_left(execution.sandbox_uid.expect("root host: per-check uid"));
}

#[test]
fn writing_outside_the_work_dir_fails() {
    let host_dir = tempfile::tempdir().expect("host temp dir");
    let host_dir_target = host_dir.path().join("ponder-escape");
    let targets: Vec<PathBuf> = [
        "/etc/ponder-escape",
        "/usr/ponder-escape",
        "/ponder-escape",
        "/root/ponder-escape",
        "/work/main/ponder-escape",
        "/dev/ponder-escape",
    ]
    .iter()
    .map(PathBuf::from)
    .chain([host_dir_target.clone()])
    .collect();
    let quoted: Vec<String> = targets
        .iter()
        .map(|t| format!("{:?}", t.display().to_string()))
        .collect();
    let program = WRITE_OUTSIDE.replace("TARGETS", &quoted.join(", "));
    let outcome = sandbox().check(&asserts(
        &program,
        "assert written == [], written\nassert ok == 'ok'",
    ));
    assert_eq!(outcome, Outcome::Passed);
    // /work, /tmp and /dev/shm are the check's own: none of them is the host's.
    let private = ["/work/ok", "/tmp/ok", "/dev/shm/ponder-private"].map(PathBuf::from);
    for target in targets.iter().chain(&private) {
        assert!(!target.exists(), "{} exists on the host", target.display());
    }
}

#[test]
fn network_connections_fail() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on loopback");
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let port = listener.local_addr().expect("bound address").port();
    let program = CONNECT.replace("PORT", &port.to_string());
    let outcome = sandbox().check(&asserts(&program, "assert reached == [], reached"));
    assert_eq!(outcome, Outcome::Passed);
    // A connection that did get through would be waiting here.
    assert!(listener
        .accept()
        .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock));
    // And unguarded, the attempt fails the program.
    let unguarded =
        format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)\n");
    let outcome = sandbox().check(&asserts(&unguarded, "assert True"));
    let Outcome::Crashed { stderr_tail, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(stderr_tail.contains("Connection refused"), "{stderr_tail}");
}

/// The host-side work dir of a running check that holds `file`, within 20 s.
fn wait_for_work_dir_holding(file: &str) -> Option<PathBuf> {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let entries = std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten();
        let found = entries
            .filter(|e| e.file_name().to_string_lossy().starts_with("ponder-check-"))
            .map(|e| e.path().join("work"))
            .find(|work| work.join(file).exists());
        if found.is_some() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn checks_cannot_read_each_others_files() {
    let token = format!("ponder-secret-{}", std::process::id());
    let owner = OWN_FILES.replace("TOKEN", &token);
    let snoop = SNOOP.replace("TOKEN", &token);
    let sandbox = sandbox();
    let (owner_outcome, snoop_outcome) = std::thread::scope(|s| {
        let owner = s.spawn(|| {
            let request = with_limits(asserts(&owner, "assert mine"), short(30_000));
            sandbox.check(&request)
        });
        // The host can see the owner's work dir: snoop only once the secret is there.
        let owner_work = wait_for_work_dir_holding(&token).expect("owner check wrote its secret");
        let snoop_outcome = sandbox.check(&asserts(
            &snoop,
            "assert found == [], found\nassert len(pids) <= 2, pids",
        ));
        std::fs::write(owner_work.join("done"), "").expect("release the owner check");
        (owner.join().expect("owner check thread"), snoop_outcome)
    });
    assert_eq!(owner_outcome, Outcome::Passed);
    assert_eq!(snoop_outcome, Outcome::Passed);
}

#[test]
fn killing_the_parent_leaves_the_host_alive() {
    let mut host_child = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("start a host process");
    let host_pids = [std::process::id(), host_child.id()];
    let program = format!(
        "import os, signal\nfor pid in [os.getppid(), 1, -1, {}, {}]:\n    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\nalive = True\n",
        host_pids[0], host_pids[1]
    );
    let outcome = sandbox().check(&asserts(&program, "assert alive"));
    assert_eq!(outcome, Outcome::Passed);
    // `kill -9 -1` from a shell kills the Python that started it: a crash, not a host problem.
    let shell = sandbox().check(&asserts(
        "import os\nos.system('kill -9 -1')\n",
        "assert True",
    ));
    assert!(
        matches!(shell, Outcome::Crashed { .. } | Outcome::Passed),
        "{shell:?}"
    );
    assert!(
        host_child.try_wait().expect("query host child").is_none(),
        "host process was killed"
    );
    host_child.kill().expect("stop the host process");
    let _ = host_child.wait();
}

#[test]
fn printing_1_gb_hits_output_limit_quickly() {
    let before = peak_rss_kib();
    for program in [PRINT_1_GB, PRINT_FOREVER, STDERR_1_GB] {
        let started = Instant::now();
        let execution = sandbox().execute(&asserts(program, "assert True"));
        assert_eq!(execution.outcome, Outcome::OutputLimit);
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "took {:?}",
            started.elapsed()
        );
        assert!(execution.stdout.len() as u64 <= Limits::default().output_bytes);
    }
    let growth_mib = peak_rss_kib().saturating_sub(before) / 1024;
    assert!(growth_mib < 256, "peak memory grew by {growth_mib} MiB");
}

#[test]
fn sandbox_uids_are_unprivileged_and_distinct() {
    let sandbox = sandbox();
    let a = sandbox.execute(&asserts("import os\nuid = os.getuid()", "assert uid != 0"));
    let b = sandbox.execute(&asserts("x = 1", "assert x"));
    assert_eq!(a.outcome, Outcome::Passed);
    let (ua, ub) = (a.sandbox_uid.expect("uid"), b.sandbox_uid.expect("uid"));
    assert!(SANDBOX_UIDS.contains(&ua) && SANDBOX_UIDS.contains(&ub) && ua != ub);
}

#[test]
fn pool_keeps_serving_after_hostile_programs() {
    let pool = Pool::new(sandbox(), 2);
    let hostile = [
        INFINITE_LOOP,
        FORK_BOMB,
        SHELL_FORK_BOMB,
        ALLOCATE_10_GB,
        PRINT_1_GB,
        "import os\nos.kill(os.getppid(), 9)\nos.kill(-1, 9)\n",
    ];
    let mut requests: Vec<CheckRequest> = hostile
        .iter()
        .map(|p| with_limits(asserts(p, "assert True"), short(3000)))
        .collect();
    requests.push(asserts("x = 2", "assert x == 2"));
    let outcomes = pool.check_many(requests);
    assert_eq!(
        outcomes[..3],
        [Outcome::Timeout, Outcome::Timeout, Outcome::Timeout]
    );
    assert_eq!(outcomes[3], Outcome::MemoryLimit);
    assert_eq!(outcomes[4], Outcome::OutputLimit);
    assert!(
        outcomes
            .iter()
            .all(|o| !matches!(o, Outcome::SandboxError { .. })),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[6], Outcome::Passed);
    let after = pool.check_many(
        (0..4)
            .map(|i| asserts(&format!("x = {i}"), &format!("assert x == {i}")))
            .collect(),
    );
    assert_eq!(after, vec![Outcome::Passed; 4]);
}
