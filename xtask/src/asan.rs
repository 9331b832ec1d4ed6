//! `cargo xtask asan`: the workspace's tests under AddressSanitizer, LeakSanitizer included.
//!
//! Sanitizers need the nightly toolchain (`-Zsanitizer=address`); without one installed the task
//! says so and skips. The build targets the host triple explicitly so that build scripts and
//! proc macros stay uninstrumented, and it gets a target directory of its own so it never
//! invalidates the normal build's cache. LeakSanitizer runs at the exit of every test process,
//! and of the child processes tests start (isolated tests, process-pool workers), which inherit
//! `ASAN_OPTIONS`. The benchmarks and xtask are left out: they are not the product.
//! The standard library itself is not instrumented (that would need `-Zbuild-std` and rust-src);
//! what it allocates on our behalf is still tracked, because the allocator is.

use std::process::Command;

use crate::{TaskResult, has_nextest, root, run};

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Tests excluded by name, and why: most leak on purpose; one times a window that instrumented
/// code is too slow to stay inside (the normal test step runs it).
const EXCLUDED: &[(&str, &str)] = &[
    (
        "run_cancels_leftover_tasks_waits_for_them_and_reports_their_panics",
        "forgets a task handle so that run()'s shutdown has an unretrieved panic to report",
    ),
    (
        "a_queue_is_bound_to_the_loop_it_was_first_waited_on",
        "its second run fails on purpose, and vrun_within then forgets the runner unclosed",
    ),
    (
        "a_primitive_is_bound_to_the_loop_it_was_first_waited_on",
        "its second run fails on purpose, and vrun_within then forgets the runner unclosed",
    ),
    (
        "a_guard_of_another_lock_is_refused",
        "its run fails on purpose, and vrun_within then forgets the runner unclosed",
    ),
    (
        "a_cross_thread_round_trip_polls_once",
        "counts polls skipped inside a 50 us window, which ASan's slowdown overruns; not a memory check",
    ),
];

fn nightly_installed() -> bool {
    Command::new("cargo")
        .args(["+nightly", "--version"])
        .output()
        .is_ok_and(|out| out.status.success())
}

pub(crate) fn asan() -> TaskResult {
    if !nightly_installed() {
        println!(
            "no nightly toolchain (`rustup toolchain install nightly` adds one): \
             AddressSanitizer run skipped"
        );
        return Ok(());
    }
    for (name, why) in EXCLUDED {
        println!("excluded: {name} ({why})");
    }
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly");
    if has_nextest() {
        let filter = EXCLUDED
            .iter()
            // By the name's last segment: a test moved into a module of a test binary
            // (`runner::name`) is still the same test.
            .map(|(name, _)| format!("not test(/(^|::){name}$/)"))
            .collect::<Vec<_>>()
            .join(" and ");
        cmd.args(["nextest", "run", "--no-fail-fast", "-E", &filter]);
    } else {
        cmd.args(["test", "--lib", "--bins", "--tests"]);
    }
    cmd.args([
        "--workspace",
        "--exclude",
        "evloop-benches",
        "--exclude",
        "xtask",
        "--target",
        TARGET,
    ]);
    if !has_nextest() {
        cmd.arg("--");
        for (name, _) in EXCLUDED {
            cmd.args(["--skip", name]);
        }
    }
    cmd.env("RUSTFLAGS", "-Zsanitizer=address")
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        // Line tables are all ASan's reports need, and they build faster than full debug info.
        .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
        .env("CARGO_TARGET_DIR", root().join("target").join("asan"));
    run(&mut cmd)
}
