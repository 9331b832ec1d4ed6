//! `cargo xtask soak --secs N`: mixed load on one loop for N seconds, failing on a leak trend.
//!
//! The load and the verdict are the `soak` example of the evloop crate (TCP echo over 50
//! connections, timers, executor jobs, tasks created and cancelled; RSS, fds and threads sampled
//! every few seconds). This task builds it in release mode and runs it.

use crate::{TaskResult, cargo};

/// How long CI soaks.
pub(crate) const CI_SECS: u64 = 30;

pub(crate) fn soak(args: &[String]) -> TaskResult {
    let secs = match args {
        [] => CI_SECS,
        [flag, n] if flag == "--secs" => n
            .parse()
            .map_err(|_| format!("--secs takes a whole number of seconds, not {n:?}"))?,
        _ => return Err("usage: cargo xtask soak [--secs N]".into()),
    };
    let secs = secs.to_string();
    cargo(&[
        "run",
        "--release",
        "-p",
        "evloop",
        "--example",
        "soak",
        "--",
        "--secs",
        &secs,
    ])
}
