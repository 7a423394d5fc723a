//! ponder-e2e: workspace-level tests, no code. `tests/it` runs the crates together as a
//! user does: `ponder serve`'s gateway on the real engine (SmolLM2-135M) over real HTTP,
//! and ponder-http's backend against that gateway, so that neither crate's own tests need
//! the other (ponder-http's own tests use small local servers). `tidy` checks every source
//! file of the workspace: its `//!` first line, its size, and what it compiles in.
