//! A cheap sanity check of a GGUF file's header, so a wrong path fails with a clear message
//! here rather than deep inside llama.cpp.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::Error;

const MAGIC: &[u8; 4] = b"GGUF";
/// magic (4) + version (u32) + tensor count (u64) + metadata key-value count (u64), little-endian.
const HEADER_LEN: usize = 24;
/// Versions llama.cpp has ever written; 1 is still readable by older builds.
const KNOWN_VERSIONS: std::ops::RangeInclusive<u32> = 1..=3;

/// Checks that `path` is a readable regular file with the GGUF magic and a known version.
pub fn check_gguf(path: &Path) -> Result<(), Error> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound(path.to_path_buf()),
        _ => Error::Io { op: "cannot inspect", path: path.to_path_buf(), source: e },
    })?;
    if !meta.is_file() {
        return Err(Error::NotAFile(path.to_path_buf()));
    }
    let mut header = Vec::with_capacity(HEADER_LEN);
    File::open(path)
        .and_then(|f| f.take(HEADER_LEN as u64).read_to_end(&mut header))
        .map_err(Error::io("cannot read", path))?;
    check_header(path, &header)
}

fn check_header(path: &Path, header: &[u8]) -> Result<(), Error> {
    let n = header.len().min(MAGIC.len());
    if header[..n] != MAGIC[..n] {
        return Err(Error::NotGguf { path: path.to_path_buf(), found: escape(&header[..n]) });
    }
    let truncated = || Error::Truncated { path: path.to_path_buf(), len_bytes: header.len() as u64 };
    let version_bytes: [u8; 4] = header.get(4..8).and_then(|b| b.try_into().ok()).ok_or_else(truncated)?;
    let version = u32::from_le_bytes(version_bytes);
    if !KNOWN_VERSIONS.contains(&version) {
        let hint = if KNOWN_VERSIONS.contains(&version.swap_bytes()) { " (the file is big-endian)" } else { "" };
        return Err(Error::UnsupportedGgufVersion { path: path.to_path_buf(), version, hint });
    }
    if header.len() < HEADER_LEN {
        return Err(truncated());
    }
    Ok(())
}

/// The bytes as a quoted string with non-printable bytes escaped, e.g. `"PK\x03\x04"`.
fn escape(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::gguf_header as header;

    fn check(contents: &[u8]) -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, contents).expect("write");
        check_gguf(&path)
    }

    #[test]
    fn valid_headers_pass() {
        for v in 1..=3 {
            assert!(check(&header(v)).is_ok(), "version {v}");
        }
        let mut with_body = header(3);
        with_body.extend_from_slice(&[0u8; 1000]);
        assert!(check(&with_body).is_ok());
    }

    #[test]
    fn empty_file_is_truncated() {
        assert!(matches!(check(b""), Err(Error::Truncated { len_bytes: 0, .. })));
        assert!(matches!(check(b"GGU"), Err(Error::Truncated { len_bytes: 3, .. })));
        assert!(matches!(check(&header(3)[..20]), Err(Error::Truncated { len_bytes: 20, .. })));
    }

    #[test]
    fn wrong_magic_is_not_gguf() {
        match check(b"PK\x03\x04 a zip file, not a model") {
            Err(e @ Error::NotGguf { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(r#""PK\x03\x04""#) && msg.contains("m.gguf"), "{msg}");
            }
            other => panic!("expected NotGguf, got {other:?}"),
        }
        assert!(matches!(check(b"{}"), Err(Error::NotGguf { .. })));
        assert!(matches!(check(b"ggufxxxxxxxxxxxxxxxxxxxxxxxx"), Err(Error::NotGguf { .. })));
    }

    #[test]
    fn implausible_versions_are_rejected() {
        assert!(matches!(check(&header(0)), Err(Error::UnsupportedGgufVersion { version: 0, .. })));
        assert!(matches!(check(&header(99)), Err(Error::UnsupportedGgufVersion { version: 99, .. })));
        match check(&header(3u32.swap_bytes())) {
            Err(e @ Error::UnsupportedGgufVersion { .. }) => assert!(e.to_string().contains("big-endian")),
            other => panic!("expected UnsupportedGgufVersion, got {other:?}"),
        }
    }

    #[test]
    fn missing_file_and_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.gguf");
        match check_gguf(&missing) {
            Err(Error::NotFound(p)) => assert_eq!(p, missing),
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert!(matches!(check_gguf(dir.path()), Err(Error::NotAFile(_))));
    }
}
