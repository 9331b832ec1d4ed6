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
        [
            "Task starting",
            "Task cleanup (cancelled)",
            "Error: Cannot close a running event loop"
        ]
    );
}

#[test]
fn stop_inside() {
    assert_eq!(
        run_scenario("stop-inside"),
        [
            "Task starting",
            "Main done",
            "Task cleanup (cancelled)",
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
    let lines = run_scenario("executors");
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (line, label) in lines
        .iter()
        .zip(["default thread pool b", "custom thread pool b"])
    {
        // Python's bytes repr of 100 random bytes: b'...' or b"..."
        assert!(line.starts_with(label), "{line}");
        assert!(line.len() >= label.len() + 100 + 2, "{line}");
    }
    assert_eq!(lines[2], "custom process pool 333333283333335000000");
    assert_eq!(lines[3], "Event loop is closed");
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

#[test]
fn queue_join() {
    // CPython's lines for examples/tour/python/queue_join.py (the asyncio docs' Queue example).
    assert_eq!(
        run_scenario("queue-join"),
        [
            "worker-2 has slept for 0.08 seconds",
            "worker-1 has slept for 0.31 seconds",
            "worker-2 has slept for 0.50 seconds",
            "worker-0 has slept for 0.96 seconds",
            "worker-1 has slept for 0.77 seconds",
            "worker-2 has slept for 0.67 seconds",
            "worker-2 has slept for 0.27 seconds",
            "worker-0 has slept for 0.77 seconds",
            "worker-1 has slept for 0.77 seconds",
            "worker-1 has slept for 0.15 seconds",
            "worker-2 has slept for 0.68 seconds",
            "worker-1 has slept for 0.46 seconds",
            "worker-0 has slept for 0.96 seconds",
            "worker-0 has slept for 0.12 seconds",
            "worker-2 has slept for 0.76 seconds",
            "worker-0 has slept for 0.39 seconds",
            "worker-1 has slept for 0.94 seconds",
            "worker-2 has slept for 0.61 seconds",
            "worker-0 has slept for 0.57 seconds",
            "worker-1 has slept for 0.63 seconds",
            "====",
            "3 workers slept in parallel for 4 seconds",
            "total expected sleep time: 11.37 seconds",
            "Event loop is closed",
        ]
    );
}

/// Each tour scenario and the Python program it reproduces (examples/tour/python/).
const ORIGINALS: &[(&str, &str)] = &[
    ("normal-exit", "normal_exit.py"),
    ("early-return", "early_return.py"),
    ("main-fails", "main_fails.py"),
    ("task-fails", "task_fails.py"),
    ("close-inside", "close_inside.py"),
    ("stop-inside", "stop_inside.py"),
    ("task-left-pending", "task_left_pending.py"),
    ("subprocess-outlives", "subprocess_outlives.py"),
    ("thread-blocks-exit", "thread_blocks_exit.py"),
    ("executors", "executors.py"),
    ("executor-futures", "executor_futures.py"),
    ("queue-join", "queue_join.py"),
];

/// Lines that must not appear in the tour more often than in the original.
const STRICT: &[&str] = &["Task starting", "Task done", "Main done"];

/// What CPython prints for `program`, as the tour is compared with it: a traceback counts as its
/// last line's message (`RuntimeError: X` -> `X`), and printed bytes by their label alone.
fn cpython_lines(program: &str) -> Option<Vec<String>> {
    let path = format!(
        "{}/examples/tour/python/{program}",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new("python3")
        .args(["-u", &path])
        .stderr(std::process::Stdio::piped())
        .output()
        .ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let mut lines = Vec::new();
    let mut in_traceback = false;
    for line in text.lines() {
        if line.starts_with("Traceback") {
            in_traceback = true;
            continue;
        }
        let message = line
            .split_once(": ")
            .filter(|(kind, _)| {
                kind.ends_with("Error") || kind.ends_with("Warning") || *kind == "Exception"
            })
            .map(|(_, message)| message.to_owned());
        match (in_traceback, message) {
            (true, Some(message)) => {
                lines.push(message);
                in_traceback = false;
            }
            (true, None) => {}
            (false, _) => lines.push(match line.find(" b'").or_else(|| line.find(" b\"")) {
                Some(at) => line[..at].to_owned(),
                None => line.to_owned(),
            }),
        }
    }
    Some(lines)
}

#[test]
fn every_scenario_prints_cpythons_lines_in_cpythons_order() {
    if Command::new("python3").arg("--version").output().is_err() {
        println!("skipped: python3 is not installed, so there is no CPython to compare with");
        return;
    }
    // The originals sleep for seconds: run them all at once.
    let originals: Vec<_> = ORIGINALS
        .iter()
        .map(|&(name, program)| (name, std::thread::spawn(move || cpython_lines(program))))
        .collect();
    for (name, original) in originals {
        let want = original.join().unwrap().expect("python3 runs");
        let got = run_scenario(name);
        let mut at = 0;
        for line in &want {
            match got[at..].iter().position(|g| g.contains(line.as_str())) {
                Some(found) => at += found + 1,
                None => panic!(
                    "{name}: CPython's line {line:?} is missing or out of order\nCPython: \
                     {want:?}\ntour:    {got:?}"
                ),
            }
        }
        for strict in STRICT {
            let count = |lines: &[String]| lines.iter().filter(|l| l.contains(strict)).count();
            assert!(
                count(&got) <= count(&want),
                "{name}: the tour prints {strict:?} where CPython does not\nCPython: {want:?}\n\
                 tour:    {got:?}"
            );
        }
    }
}
