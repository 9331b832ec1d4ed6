//! `#[evloop::test]`: the body runs under `evloop::run` on a loop of its own, `?` and the return
//! type work as written, a panic fails the test, and process pools work without `test_worker!()`.

use std::num::ParseIntError;
use std::time::Duration;

use evloop::{ExecutorExt, ProcessPool, create_task, get_running_loop, sleep};

#[evloop::test]
async fn the_body_runs_on_a_running_loop() {
    let lp = get_running_loop().expect("the body runs on a loop");
    let child = create_task(async { 6 * 7 });
    sleep(Duration::from_millis(1)).await;
    assert_eq!(child.await.unwrap(), 42);
    assert!(lp.is_running());
}

#[evloop::test]
async fn question_mark_works_with_the_declared_return_type() -> Result<(), ParseIntError> {
    let n: u32 = "42".parse()?;
    assert_eq!(n, 42);
    Ok(())
}

#[evloop::test]
#[should_panic(expected = "task panicked: boom")]
async fn a_panicking_body_fails_the_test() {
    sleep(Duration::from_millis(1)).await;
    panic!("boom");
}

fn square(x: u64) -> u64 {
    x * x
}

// No `test_worker!()` in this file: the workers start as one of the `#[evloop::test]` functions.
#[evloop::test]
async fn process_pools_work_without_test_worker() {
    let pool = ProcessPool::builder().max_workers(1).build().unwrap();
    let lp = get_running_loop().unwrap();
    let nine = lp.run_in_process_pool(&pool, square, 3).unwrap().await;
    assert_eq!(nine.unwrap(), 9);
    // The worker was started as one of this file's tests, alone.
    let pid = pool.worker_pids()[0];
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let tests = [
        "the_body_runs_on_a_running_loop",
        "question_mark_works_with_the_declared_return_type",
        "a_panicking_body_fails_the_test",
        "process_pools_work_without_test_worker",
    ];
    assert!(tests.contains(&args[1].as_str()), "{args:?}");
    assert_eq!(args[2], "--exact");
    pool.shutdown(true, false);
}
