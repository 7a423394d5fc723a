//! What a user may write for `--model`: a registry name, a GGUF path, or a Hugging Face cache entry.

use std::path::PathBuf;

use crate::registry::{find, known_names, ModelSpec};
use crate::Error;

/// A parsed `--model` value; [`crate::Fetcher::resolve`] turns it into a file path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    Named(&'static ModelSpec),
    Path(PathBuf),
    Hf { repo: String, file: String, revision: String },
}

/// Registry names first; then `hf:ORG/REPO/FILE[@REVISION]` (revision `main` by default);
/// then anything ending in `.gguf` or containing a path separator is a path.
pub fn parse_ref(s: &str) -> Result<ModelRef, Error> {
    if let Some(spec) = find(s) {
        return Ok(ModelRef::Named(spec));
    }
    if let Some(rest) = s.strip_prefix("hf:") {
        return parse_hf(s, rest);
    }
    if s.to_ascii_lowercase().ends_with(".gguf") || s.contains('/') || s.contains(std::path::MAIN_SEPARATOR) {
        return Ok(ModelRef::Path(PathBuf::from(s)));
    }
    Err(Error::UnknownModel { name: s.to_string(), known: known_names() })
}

fn parse_hf(input: &str, rest: &str) -> Result<ModelRef, Error> {
    let bad = |reason: &str| Error::BadRef { input: input.to_string(), reason: reason.to_string() };
    // Revisions may hold '/' (`refs/pr/1`) but never '@'; file names practically never do.
    let (path, revision) = match rest.rsplit_once('@') {
        Some((path, rev)) => (path, rev),
        None => (rest, "main"),
    };
    if revision.is_empty() {
        return Err(bad("the revision after '@' is empty"));
    }
    let mut parts = path.splitn(3, '/');
    let (org, repo, file) = match (parts.next(), parts.next(), parts.next()) {
        (Some(o), Some(r), Some(f)) if !o.is_empty() && !r.is_empty() && !f.is_empty() => (o, r, f),
        _ => return Err(bad("it needs an organisation, a repository and a file")),
    };
    if !is_clean_relative(file) {
        return Err(bad("the file path must be relative, without empty, '.' or '..' parts"));
    }
    if !is_clean_relative(revision) {
        return Err(bad("the revision must not contain empty, '.' or '..' parts"));
    }
    Ok(ModelRef::Hf { repo: format!("{org}/{repo}"), file: file.to_string(), revision: revision.to_string() })
}

/// True when `p` is a '/'-separated relative path that cannot climb out of the folder it is
/// joined to.
pub(crate) fn is_clean_relative(p: &str) -> bool {
    !p.is_empty() && !p.contains('\\') && p.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: ModelRef) {
        match parse_ref(input) {
            Ok(got) => assert_eq!(got, expected, "{input}"),
            Err(e) => panic!("{input}: {e}"),
        }
    }

    fn hf(repo: &str, file: &str, revision: &str) -> ModelRef {
        ModelRef::Hf { repo: repo.into(), file: file.into(), revision: revision.into() }
    }

    fn check_bad(input: &str) {
        match parse_ref(input) {
            Err(Error::BadRef { input: i, .. }) => assert_eq!(i, input),
            other => panic!("{input}: expected BadRef, got {other:?}"),
        }
    }

    #[test]
    fn registry_names() {
        for spec in crate::registry() {
            check(spec.name, ModelRef::Named(spec));
        }
    }

    #[test]
    fn hf_refs() {
        check("hf:org/repo/file.gguf", hf("org/repo", "file.gguf", "main"));
        check("hf:org/repo/sub/dir/file.gguf@v1.0", hf("org/repo", "sub/dir/file.gguf", "v1.0"));
        let sha = "0123456789abcdef0123456789abcdef01234567";
        check(&format!("hf:o/r/f.gguf@{sha}"), hf("o/r", "f.gguf", sha));
        check("hf:o/r/f.gguf@refs/pr/1", hf("o/r", "f.gguf", "refs/pr/1"));
    }

    #[test]
    fn bad_hf_refs() {
        for input in [
            "hf:",
            "hf:org",
            "hf:org/repo",
            "hf:org/repo/",
            "hf:/repo/f.gguf",
            "hf:org//f.gguf",
            "hf:org/repo/f.gguf@",
            "hf:org/repo/../../etc/passwd",
            "hf:org/repo/a//b.gguf",
            "hf:org/repo/f.gguf@../../x",
        ] {
            check_bad(input);
        }
    }

    #[test]
    fn paths() {
        check("model.gguf", ModelRef::Path("model.gguf".into()));
        check("MODEL.GGUF", ModelRef::Path("MODEL.GGUF".into()));
        check("./models/x.bin", ModelRef::Path("./models/x.bin".into()));
        check("/abs/path/model", ModelRef::Path("/abs/path/model".into()));
        check("smollm2-135m.gguf", ModelRef::Path("smollm2-135m.gguf".into()));
    }

    #[test]
    fn unknown_names_list_the_registry() {
        for input in ["smollm2", "", "llama"] {
            match parse_ref(input) {
                Err(e @ Error::UnknownModel { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("{input:?}")), "{msg}");
                    for spec in crate::registry() {
                        assert!(msg.contains(spec.name), "{msg}");
                    }
                }
                other => panic!("{input}: expected UnknownModel, got {other:?}"),
            }
        }
    }
}
