//! `cargo xtask loom`: the loom model tests of the cross-thread code.
//!
//! The models live next to the code they check (`loom_model` modules in
//! `crates/callbacks/src/remote.rs` and `crates/thread-pool/src/sleep.rs`) and run only when the
//! crates are built with `--cfg loom`, which swaps their sync shims to loom's primitives. That
//! build gets a target directory of its own, so it never invalidates the normal build's cache.

use std::process::Command;

use crate::{TaskResult, cargo_bin, root, run};

/// The crates with loom models.
const CRATES: &[&str] = &["evloop-callbacks", "evloop-thread-pool"];

pub(crate) fn loom() -> TaskResult {
    let mut cmd = Command::new(cargo_bin());
    cmd.args(["test", "--release", "--lib"]);
    for krate in CRATES {
        cmd.args(["-p", krate]);
    }
    // Every model test's name starts with `loom_`; the crates' other unit tests need real threads.
    cmd.args(["loom_", "--", "--test-threads=1"])
        .env("RUSTFLAGS", "--cfg loom")
        // Models run optimized (they explore thousands of interleavings), but line tables are
        // all a failure report needs, and they build much faster than full debug info.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only")
        .env("CARGO_TARGET_DIR", root().join("target").join("loom"));
    run(&mut cmd)
}
