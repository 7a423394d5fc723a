//! Finds a file in the Hugging Face hub cache without touching the network.
//!
//! Layout (huggingface_hub's `file_download.py`):
//! `{cache}/models--{org}--{repo}/refs/{revision}` holds a commit hash, and the file lies at
//! `{cache}/models--{org}--{repo}/snapshots/{hash}/{file}`, usually a symlink into `blobs/`.

use std::path::{Path, PathBuf};

use crate::model_ref::is_clean_relative;
use crate::{check_gguf, Error};

/// The cached, GGUF-checked path of `file` from `repo` at `revision` (a branch, a tag, or a
/// 40-hex commit hash, which is used as the snapshot name directly).
pub fn resolve_hf_in(cache: &Path, repo: &str, file: &str, revision: &str) -> Result<PathBuf, Error> {
    let input = format!("hf:{repo}/{file}@{revision}");
    let bad = |reason: &str| Error::BadRef { input: input.clone(), reason: reason.to_string() };
    if !is_clean_relative(repo) {
        return Err(bad("the repository must be ORG/REPO"));
    }
    if !is_clean_relative(file) {
        return Err(bad("the file path must be relative, without empty, '.' or '..' parts"));
    }
    if !is_clean_relative(revision) {
        return Err(bad("the revision must not contain empty, '.' or '..' parts"));
    }
    let missing = |path: PathBuf| {
        let rev_flag = if revision == "main" { String::new() } else { format!(" --revision {revision}") };
        Error::NotInHfCache {
            repo: repo.to_string(),
            file: file.to_string(),
            revision: revision.to_string(),
            path,
            suggestion: format!("huggingface-cli download {repo} {file}{rev_flag}"),
        }
    };

    let repo_dir = cache.join(format!("models--{}", repo.replace('/', "--")));
    if !repo_dir.is_dir() {
        return Err(missing(repo_dir));
    }
    let commit = if is_commit_hash(revision) {
        revision.to_string()
    } else {
        let ref_path = repo_dir.join("refs").join(revision);
        match std::fs::read_to_string(&ref_path) {
            Ok(s) if is_commit_hash(s.trim()) => s.trim().to_string(),
            Ok(_) => return Err(missing(ref_path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing(ref_path)),
            Err(e) => return Err(Error::io("cannot read", ref_path)(e)),
        }
    };
    let path = repo_dir.join("snapshots").join(commit).join(file);
    // `exists` follows symlinks, so a snapshot link into a deleted blob counts as missing.
    if !path.exists() {
        return Err(missing(path));
    }
    check_gguf(&path)?;
    Ok(path)
}

fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::gguf_header;
    use std::fs;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    /// A hub cache with `org/repo` whose `main` points at COMMIT holding `sub/m.gguf`.
    fn hub() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("models--org--repo");
        fs::create_dir_all(repo.join("refs")).expect("mkdir refs");
        fs::write(repo.join("refs/main"), COMMIT).expect("write ref");
        let snap = repo.join("snapshots").join(COMMIT).join("sub");
        fs::create_dir_all(&snap).expect("mkdir snapshot");
        fs::write(snap.join("m.gguf"), gguf_header(3)).expect("write model");
        fs::write(snap.join("readme.gguf"), b"# not a model").expect("write readme");
        dir
    }

    fn expect_missing(r: Result<PathBuf, Error>, looked_at: &Path) {
        match r {
            Err(e @ Error::NotInHfCache { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&looked_at.display().to_string()), "{msg}");
                assert!(msg.contains("huggingface-cli download org/"), "{msg}");
            }
            other => panic!("expected NotInHfCache for {}, got {other:?}", looked_at.display()),
        }
    }

    #[test]
    fn ref_main_points_at_snapshot() {
        let hub = hub();
        let got = resolve_hf_in(hub.path(), "org/repo", "sub/m.gguf", "main").expect("resolves");
        assert_eq!(got, hub.path().join(format!("models--org--repo/snapshots/{COMMIT}/sub/m.gguf")));
    }

    #[test]
    fn ref_file_may_end_with_newline() {
        let hub = hub();
        fs::write(hub.path().join("models--org--repo/refs/main"), format!("{COMMIT}\n")).expect("write ref");
        assert!(resolve_hf_in(hub.path(), "org/repo", "sub/m.gguf", "main").is_ok());
    }

    #[test]
    fn commit_hash_revision_skips_refs() {
        let hub = hub();
        fs::remove_file(hub.path().join("models--org--repo/refs/main")).expect("rm ref");
        let got = resolve_hf_in(hub.path(), "org/repo", "sub/m.gguf", COMMIT).expect("resolves");
        assert!(got.ends_with(format!("{COMMIT}/sub/m.gguf")));
    }

    #[test]
    fn missing_file_ref_and_repo() {
        let hub = hub();
        let repo = hub.path().join("models--org--repo");
        expect_missing(
            resolve_hf_in(hub.path(), "org/repo", "other.gguf", "main"),
            &repo.join(format!("snapshots/{COMMIT}/other.gguf")),
        );
        expect_missing(resolve_hf_in(hub.path(), "org/repo", "sub/m.gguf", "dev"), &repo.join("refs/dev"));
        expect_missing(
            resolve_hf_in(hub.path(), "org/nope", "sub/m.gguf", "main"),
            &hub.path().join("models--org--nope"),
        );
        let other = "fedcba9876543210fedcba9876543210fedcba98";
        expect_missing(
            resolve_hf_in(hub.path(), "org/repo", "sub/m.gguf", other),
            &repo.join(format!("snapshots/{other}/sub/m.gguf")),
        );
        match resolve_hf_in(hub.path(), "org/repo", "sub/m.gguf", "v2") {
            Err(e) => assert!(e.to_string().contains("--revision v2"), "{e}"),
            Ok(p) => panic!("unexpected {}", p.display()),
        }
    }

    #[test]
    fn non_gguf_file_is_rejected() {
        let hub = hub();
        assert!(matches!(resolve_hf_in(hub.path(), "org/repo", "sub/readme.gguf", "main"), Err(Error::NotGguf { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn snapshot_symlinks_into_blobs() {
        let hub = hub();
        let repo = hub.path().join("models--org--repo");
        fs::create_dir_all(repo.join("blobs")).expect("mkdir blobs");
        fs::write(repo.join("blobs/abc123"), gguf_header(3)).expect("write blob");
        let link = repo.join(format!("snapshots/{COMMIT}/linked.gguf"));
        std::os::unix::fs::symlink("../../blobs/abc123", &link).expect("symlink");
        assert_eq!(resolve_hf_in(hub.path(), "org/repo", "linked.gguf", "main").expect("resolves"), link);
        fs::remove_file(repo.join("blobs/abc123")).expect("rm blob");
        expect_missing(resolve_hf_in(hub.path(), "org/repo", "linked.gguf", "main"), &link);
    }

    #[test]
    fn traversal_is_refused() {
        let hub = hub();
        for (repo, file, rev) in [
            ("org/repo", "../../../etc/passwd", "main"),
            ("org/repo", "/etc/passwd", "main"),
            ("org/repo", "sub/m.gguf", "../../x"),
            ("../x", "m.gguf", "main"),
        ] {
            assert!(
                matches!(resolve_hf_in(hub.path(), repo, file, rev), Err(Error::BadRef { .. })),
                "{repo} {file} {rev}"
            );
        }
    }
}
