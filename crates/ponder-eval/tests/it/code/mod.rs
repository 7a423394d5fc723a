//! HumanEval and MBPP in the real sandbox (bubblewrap and Python): reference solutions
//! pass, perturbed ones fail, both halves of the split pass for the reference, and the
//! visible-tests verifier and hidden-tests checker behind ponder-core's contracts.

mod datasets;
mod verifier;

use std::sync::OnceLock;

use ponder_verify::code::{Pool, Sandbox, SandboxConfig};

/// The default sandbox; these tests need bubblewrap (Debian package `bubblewrap`).
fn sandbox() -> Sandbox {
    match Sandbox::new(SandboxConfig::default()) {
        Ok(sandbox) => sandbox,
        Err(e) => panic!("{e}"),
    }
}

/// One default-size pool shared by the dataset tests.
fn shared_pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool::with_default_size(sandbox()))
}
