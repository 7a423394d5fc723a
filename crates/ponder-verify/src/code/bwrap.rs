//! The sandbox's parts on the host: how Python is found, the bwrap command line of one
//! run (see `sandbox.rs` for what it isolates), and a check's private directories.

use super::Error;
use std::fs::{self, File};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the check's private directory appears inside the sandbox.
const SANDBOX_WORKDIR: &str = "/work";
/// Read-only system directories (or their symlinks) exposed to the program.
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

pub(crate) fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[derive(Clone, Debug)]
pub(crate) enum Isolation {
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
pub(crate) struct PythonInstall {
    pub executable: PathBuf,
    /// Directory trees to bind read-only (prefix, base prefix), outside the system dirs.
    roots: Vec<PathBuf>,
    bin_dir: PathBuf,
    /// site-packages directories, passed as PYTHONPATH because Python runs with -S.
    site_packages: Vec<PathBuf>,
}

/// The command for one run: `args` go to Python, relative to the check's work dir.
pub(crate) fn command(
    isolation: &Isolation,
    python_install: &PythonInstall,
    check_root: &Path,
    uid: Option<u32>,
    args: &[&str],
) -> Command {
    let work = check_root.join("work");
    let tmp = check_root.join("tmp");
    let mut env: Vec<(&str, String)> = vec![
        (
            "PATH",
            format!(
                "{}:/usr/local/bin:/usr/bin:/bin",
                python_install.bin_dir.display()
            ),
        ),
        ("LANG", "C.UTF-8".into()),
        ("LC_ALL", "C.UTF-8".into()),
        // Deterministic set and dict-of-str ordering, so a check gives the same verdict twice.
        ("PYTHONHASHSEED", "0".into()),
        (
            "PYTHONPATH",
            std::env::join_paths(&python_install.site_packages)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        ("PYTHONIOENCODING", "utf-8".into()),
        ("PYTHONDONTWRITEBYTECODE", "1".into()),
        ("OMP_NUM_THREADS", "1".into()),
        ("OPENBLAS_NUM_THREADS", "1".into()),
        ("MKL_NUM_THREADS", "1".into()),
    ];
    let python = python_install.executable.to_string_lossy().into_owned();
    // -S: no site module, which (with its .pth files) was 60 of CPython's 75 ms startup
    // here; harness.py restores exit/quit, and PYTHONPATH the site-packages.
    let python_args = ["-S", "-B"].into_iter().chain(args.iter().copied());
    let (bwrap, setpriv) = match isolation {
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
    for root in &python_install.roots {
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
        let uid = uid.unwrap_or(super::SANDBOX_UIDS.start).to_string();
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

/// Resolves the interpreter on the host (trusted) and the directories it lives in.
pub(crate) fn resolve_python(python: &Path) -> Result<PythonInstall, Error> {
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
pub(crate) struct CheckDir {
    _guard: tempfile::TempDir,
    pub root: PathBuf,
}

impl CheckDir {
    pub fn create(uid: Option<u32>) -> Result<CheckDir, String> {
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
    pub fn write(&self, name: &str, content: &str) -> Result<(), String> {
        let path = self.root.join("work").join(name);
        fs::write(&path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
    }

    /// A file outside the sandbox's view, opened for reading.
    pub fn private_file(&self, name: &str, content: &str) -> Result<File, String> {
        let path = self.root.join(name);
        fs::write(&path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))
    }
}
