//! Helpers shared by the integration tests: isolation in a child process and /proc inspection.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const ISOLATED: &str = "EVLOOP_PP_TEST_ISOLATED";

/// Runs test `name` of this binary in a child process of its own and asserts it passed. Returns
/// `true` in that child (run the body), `false` in the parent (the body already ran in the child).
/// Tests that count fds or child processes, or kill processes, use it so they cannot disturb or
/// be disturbed by tests running in parallel threads.
pub fn isolated(name: &str) -> bool {
    if std::env::var_os(ISOLATED).is_some() {
        return true;
    }
    let out = run_self(name, &[]);
    assert!(
        out.status.success(),
        "isolated test {name} failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// Runs test `name` of this binary in a child process with extra environment variables.
pub fn run_self(name: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = self_command(name);
    cmd.envs(env.iter().copied());
    cmd.output().expect("re-running the test binary")
}

/// The command that runs test `name` of this binary, isolated.
pub fn self_command(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary path"));
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ISOLATED, "1");
    cmd
}

/// The open fds of this process.
pub fn open_fds() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The pids of every process whose parent is this process (live or zombie).
pub fn children() -> Vec<u32> {
    let me = std::process::id();
    let mut kids = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok())
    {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((_, ppid)) = stat(pid) {
            if ppid == me {
                kids.push(pid);
            }
        }
    }
    kids
}

/// `(state, ppid)` from /proc/<pid>/stat, if the process exists.
pub fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` is gone or a zombie (dead, not yet reaped by whoever now owns it).
pub fn is_dead(pid: u32) -> bool {
    !matches!(stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// Polls `cond` until it holds or a generous deadline passes.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
