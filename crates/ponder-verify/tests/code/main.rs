//! Integration tests of the code sandbox, with real bubblewrap and Python: programs that
//! try to forge their verdict, hostile programs, and the judge modes. The vendored datasets
//! through the sandbox are ponder-eval's tests (`code_datasets`).

mod forgery;
mod hostile;
mod modes;

use ponder_verify::code::{CheckRequest, Limits, Sandbox, SandboxConfig, TestSpec};

/// The default sandbox; these tests need bubblewrap (Debian package `bubblewrap`).
fn sandbox() -> Sandbox {
    match Sandbox::new(SandboxConfig::default()) {
        Ok(sandbox) => sandbox,
        Err(e) => panic!("{e}"),
    }
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
