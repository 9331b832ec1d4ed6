//! Ctrl-C under `run()` (asyncio G6), by sending SIGINT to a child process.
//!
//! `run()` handles SIGINT only on the main thread, and libtest runs tests on other threads, so
//! this test has its own `main` (`harness = false`): re-executed with `EVLOOP_CTRL_C_MODE`, it
//! runs `examples/ctrl_c.rs`'s main task (included below) under `run()`; otherwise it is the
//! test driver.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use evloop::RunError;

const MODE_ENV: &str = "EVLOOP_CTRL_C_MODE";

/// The example itself: the test drives exactly the program a user runs.
#[allow(dead_code)]
#[path = "../examples/ctrl_c.rs"]
mod example;

fn program(mode: String) {
    let outcome = evloop::run(example::main_task(mode));
    // The default disposition is back once run() returns.
    assert!(evloop::layers::reactor::has_default_disposition(
        libc::SIGINT
    ));
    match outcome {
        Ok(value) => println!("run -> {value}"),
        Err(RunError::Interrupted) => {
            println!("interrupted");
            std::process::exit(130);
        }
        Err(error) => {
            println!("error: {error}");
            std::process::exit(1);
        }
    }
}

/// Starts the program and waits for its "ready" line.
fn start(mode: &str) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(MODE_ENV, mode)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    (child, out)
}

fn sigint(child: &Child) {
    // SAFETY: kill(2) on a child we spawned and have not waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
}

fn rest(mut out: BufReader<ChildStdout>) -> String {
    let mut s = String::new();
    std::io::Read::read_to_string(&mut out, &mut s).unwrap();
    s
}

fn first_ctrl_c_cancels_main_and_run_reports_the_interruption() {
    let (mut child, out) = start("plain");
    sigint(&child);
    let status = child.wait().unwrap();
    assert_eq!(rest(out), "interrupted\n");
    assert_eq!(status.code(), Some(130));
}

fn main_that_catches_the_cancellation_gives_its_value() {
    let (mut child, out) = start("catch");
    sigint(&child);
    let status = child.wait().unwrap();
    assert_eq!(rest(out), "main caught the cancellation\nrun -> 42\n");
    assert!(status.success());
}

fn second_ctrl_c_interrupts_at_once() {
    let (mut child, mut out) = start("stubborn");
    sigint(&child);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "main ignores the first Ctrl-C\n");
    sigint(&child);
    let status = child.wait().unwrap();
    assert_eq!(rest(out), "interrupted\n");
    assert_eq!(status.code(), Some(130));
}

fn ctrl_c_cancels_the_task_main_awaits_too() {
    let (mut child, out) = start("awaits-task");
    sigint(&child);
    let status = child.wait().unwrap();
    assert_eq!(
        rest(out),
        "the task main awaits was cancelled too\ninterrupted\n"
    );
    assert_eq!(status.code(), Some(130));
}

fn ctrl_c_after_the_program_cancelled_main_reports_the_cancellation() {
    let (mut child, out) = start("cancelled-first");
    let status = child.wait().unwrap();
    assert_eq!(rest(out), "error: cancelled\n");
    assert_eq!(status.code(), Some(1));
}

fn run_off_the_main_thread_leaves_sigint_alone() {
    // Named "main" on purpose: only the process's main thread counts, not a thread's name.
    std::thread::Builder::new()
        .name("main".to_owned())
        .spawn(|| {
            let value = evloop::run(async {
                assert!(evloop::layers::reactor::has_default_disposition(
                    libc::SIGINT
                ));
                7
            })
            .unwrap();
            assert_eq!(value, 7);
        })
        .unwrap()
        .join()
        .unwrap();
}

fn main() {
    if let Ok(mode) = std::env::var(MODE_ENV) {
        return program(mode);
    }
    let tests: [evloop_test_support::NamedTest; 6] = [
        (
            "first_ctrl_c_cancels_main_and_run_reports_the_interruption",
            first_ctrl_c_cancels_main_and_run_reports_the_interruption,
        ),
        (
            "main_that_catches_the_cancellation_gives_its_value",
            main_that_catches_the_cancellation_gives_its_value,
        ),
        (
            "second_ctrl_c_interrupts_at_once",
            second_ctrl_c_interrupts_at_once,
        ),
        (
            "ctrl_c_cancels_the_task_main_awaits_too",
            ctrl_c_cancels_the_task_main_awaits_too,
        ),
        (
            "ctrl_c_after_the_program_cancelled_main_reports_the_cancellation",
            ctrl_c_after_the_program_cancelled_main_reports_the_cancellation,
        ),
        (
            "run_off_the_main_thread_leaves_sigint_alone",
            run_off_the_main_thread_leaves_sigint_alone,
        ),
    ];
    evloop_test_support::run_named_tests(&tests);
}
