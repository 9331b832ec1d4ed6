//! `#[evloop::main]`: the worker entry check comes first, the body runs under `evloop::run`, and
//! the outcome is the exit code. This binary's `main` is itself an `#[evloop::main]`
//! (`harness = false`): re-executed with `EVLOOP_MAIN_MODE` it is the program under test,
//! otherwise it drives the tests.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use evloop::{ExecutorExt, ProcessPool};

const MODE_ENV: &str = "EVLOOP_MAIN_MODE";

fn square(x: u64) -> u64 {
    x * x
}

#[evloop::main]
async fn main() -> Result<(), String> {
    let Ok(mode) = std::env::var(MODE_ENV) else {
        // The driver: blocking in the loop is fine here, nothing else runs on it.
        evloop_test_support::run_named_tests(&TESTS);
        return Ok(());
    };
    println!("main body started");
    match mode.as_str() {
        "ok" => {
            evloop::sleep(Duration::from_millis(1)).await;
            Ok(())
        }
        "err" => Err("bad input".to_owned()),
        "panic" => panic!("boom"),
        "interrupt" => {
            evloop::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
        "pool" => {
            let pool = ProcessPool::builder().max_workers(2).build().unwrap();
            let lp = evloop::get_running_loop().unwrap();
            let a = lp.run_in_process_pool(&pool, square, 7).unwrap();
            let b = lp.run_in_process_pool(&pool, square, 8).unwrap();
            println!("{} {}", a.await.unwrap(), b.await.unwrap());
            pool.shutdown(true, false);
            Ok(())
        }
        other => Err(format!("unknown mode {other}")),
    }
}

fn program(mode: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .env(MODE_ENV, mode)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok_body_exits_with_success() {
    let out = program("ok");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "main body started\n");
}

fn err_is_printed_and_exits_with_1() {
    let out = program("err");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "Error: \"bad input\"\n");
}

fn panic_is_reported_and_exits_with_1() {
    let out = program("panic");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).ends_with("Error: task panicked: boom\n"),
        "{}",
        text(&out.stderr)
    );
}

fn ctrl_c_exits_with_130() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(MODE_ENV, "interrupt")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "main body started\n");
    // SAFETY: kill(2) on a child we spawned and have not waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(text(&out.stderr), "interrupted (KeyboardInterrupt)\n");
}

/// Workers re-execute this binary with the parent's environment, mode included: the body's first
/// line printing once proves the entry check ran before it in each worker.
fn workers_never_run_the_body() {
    let out = program("pool");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "main body started\n49 64\n");
}

const TESTS: [evloop_test_support::NamedTest; 5] = [
    ("ok_body_exits_with_success", ok_body_exits_with_success),
    (
        "err_is_printed_and_exits_with_1",
        err_is_printed_and_exits_with_1,
    ),
    (
        "panic_is_reported_and_exits_with_1",
        panic_is_reported_and_exits_with_1,
    ),
    ("ctrl_c_exits_with_130", ctrl_c_exits_with_130),
    ("workers_never_run_the_body", workers_never_run_the_body),
];
