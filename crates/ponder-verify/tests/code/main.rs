//! Integration tests of the code sandbox, with real bubblewrap and Python: the vendored
//! datasets, hostile programs, and the judge modes.

mod datasets;
mod forgery;
mod hostile;
mod modes;
mod verifier;

use ponder_verify::code::{CheckRequest, Limits, Pool, Sandbox, SandboxConfig, TestSpec};
use std::sync::OnceLock;

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

fn asserts(program: &str, tests: &str) -> CheckRequest {
    CheckRequest {
        program: program.into(),
        tests: TestSpec::Asserts(tests.into()),
        limits: Limits::default(),
    }
}

fn with_limits(mut request: CheckRequest, limits: Limits) -> CheckRequest {
    request.limits = limits;
    request
}
