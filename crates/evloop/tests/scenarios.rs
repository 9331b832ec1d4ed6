//! The tour's scenarios (asyncio's classic exit programs), each run in a child process with
//! short sleeps, checked line by line and in order.

use std::process::Command;

#[allow(dead_code)]
#[path = "../examples/tour/scenarios.rs"]
mod scenarios;

// The `executors` scenario starts process-pool workers: they are this test binary, run again.
evloop::process_pool::test_worker!();

/// The child side: runs the scenario named by `EVLOOP_SCENARIO` (a no-op in a normal run).
#[test]
fn scenario_child() {
    if let Ok(name) = std::env::var("EVLOOP_SCENARIO") {
        let (_, scenario) = scenarios::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .expect("known scenario");
        scenario(&scenarios::Timing::fast());
    }
}

/// Runs one scenario in a child process and returns its stdout lines (libtest's own lines
/// removed). Reading to end of file also collects what orphaned grandchildren print.
fn run_scenario(name: &str) -> Vec<String> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "scenario_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env("EVLOOP_SCENARIO", name)
        .output()
        .unwrap();
    assert!(out.status.success(), "scenario {name} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with("running ")
                || l.starts_with("test result:")
                || l.trim_matches('.').is_empty())
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn callbacks() {
    let lines = run_scenario("callbacks");
    assert_eq!(
        &lines[..3],
        [
            "call_soon: callback 1",
            "call_soon: callback 2",
            "call_soon: callback 3"
        ]
    );
    assert_eq!(lines[3], "call_soon_threadsafe: hello from another thread");
    assert_eq!(lines[4], "call_later: fired after 50 ms");
    assert!(
        lines[5].starts_with("exception handler: Exception in callback "),
        "{lines:?}"
    );
    assert!(lines[5].ends_with("(panic: boom)"), "{lines:?}");
    assert_eq!(
        &lines[6..],
        [
            "the loop goes on after the panic",
            "stop: run_forever returned",
            "Event loop is closed"
        ]
    );
}

#[test]
fn normal_exit() {
    assert_eq!(
        run_scenario("normal-exit"),
        [
            "Task starting",
            "Task done",
            "Main done",
            "Event loop is closed"
        ]
    );
}

#[test]
fn early_return() {
    assert_eq!(
        run_scenario("early-return"),
        [
            "Task starting",
            "Main done",
            "Task cleanup (cancelled)",
            "Event loop is closed"
        ]
    );
}

#[test]
fn task_left_pending() {
    assert_eq!(
        run_scenario("task-left-pending"),
        [
            "Task starting",
            "Main done",
            "Task cleanup (cancelled)",
            "Event loop is closed"
        ]
    );
}

#[test]
fn main_fails() {
    assert_eq!(
        run_scenario("main-fails"),
        [
            "Task starting",
            "Task cleanup (cancelled)",
            "Error: Stop this thing"
        ]
    );
}

#[test]
fn task_fails() {
    assert_eq!(
        run_scenario("task-fails"),
        ["Task starting", "Error: Stop this thing"]
    );
}

#[test]
fn close_inside() {
    assert_eq!(
        run_scenario("close-inside"),
        ["Error: Cannot close a running event loop"]
    );
}

#[test]
fn stop_inside() {
    assert_eq!(
        run_scenario("stop-inside"),
        [
            "Main done",
            "Error: Event loop stopped before Future completed."
        ]
    );
}

#[test]
fn thread_blocks_exit() {
    assert_eq!(
        run_scenario("thread-blocks-exit"),
        [
            "Task starting",
            "Main done",
            "Task done",
            "Event loop is closed"
        ]
    );
}

#[test]
fn shutdown_timeout() {
    assert_eq!(
        run_scenario("shutdown-timeout"),
        [
            "RuntimeWarning: The executor did not finish joining its threads within 0.05 seconds.",
            "shutdown_default_executor returned",
            "run_in_executor after shutdown -> Executor shutdown has been called",
            "thread finished sleeping",
            "Event loop is closed"
        ]
    );
}

#[test]
fn executors() {
    assert_eq!(
        run_scenario("executors"),
        [
            "default thread pool: 100 random bytes",
            "custom thread pool: 100 random bytes",
            "custom process pool: 333333283333335000000",
            "Event loop is closed"
        ]
    );
}

#[test]
fn executor_futures() {
    assert_eq!(
        run_scenario("executor-futures"),
        [
            "The result is 42 (done callback)",
            "The result is 42 (as_completed)",
            "The result is 42 (run_in_executor)",
            "Event loop is closed"
        ]
    );
}

#[test]
fn subprocess_outlives() {
    let started = std::time::Instant::now();
    assert_eq!(
        run_scenario("subprocess-outlives"),
        ["Task starting", "Main done", "Event loop is closed", "hi"]
    );
    // "hi" came from the child after its sleep, long after main returned.
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
}

#[test]
fn streams_echo() {
    let lines = run_scenario("streams-echo");
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert!(
        lines[0].starts_with("Serving on ('127.0.0.1', "),
        "{lines:?}"
    );
    assert_eq!(lines[1], "Send: 'Hello World!'");
    assert!(
        lines[2].starts_with("Received 'Hello World!' from ('127.0.0.1', "),
        "{lines:?}"
    );
    assert_eq!(
        &lines[3..],
        [
            "Send: 'Hello World!'",
            "Close the connection",
            "Received: 'Hello World!'",
            "Close the connection"
        ]
    );
}
