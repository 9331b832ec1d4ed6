//! Loop ownership and reports: a future or task of one loop awaited on another is an error with
//! asyncio's meaning, never a silent hang (H3, B3); reports name the task and where it was created
//! (F5, F6).

use std::time::Duration;

use evloop::{EventLoop, FutureError, LoopExt, Runner, TaskError, create_task, sleep};
use evloop_test_support::{record_reports, record_running_reports, vrun};

#[test]
fn a_loop_future_of_another_loop_is_refused_when_awaited() {
    let other = EventLoop::new().unwrap();
    let foreign = other.create_future::<u32>();
    let outcome = vrun(foreign).unwrap();
    let error = outcome.unwrap_err();
    assert!(matches!(error, FutureError::DifferentLoop(_)), "{error}");
    assert!(
        error.to_string().contains("attached to a different loop"),
        "{error}"
    );
    other.close().unwrap();
}

#[test]
fn a_task_of_another_loop_is_refused_by_run_until_complete() {
    let first = EventLoop::new().unwrap();
    let second = EventLoop::new().unwrap();
    let task = first.create_task(async { 1 }).unwrap();
    let outcome = second.run_until_complete(task).unwrap();
    let error = outcome.unwrap_err();
    assert!(matches!(error, TaskError::DifferentLoop(_)), "{error}");
    assert!(
        error.to_string().contains("attached to a different loop"),
        "{error}"
    );
    // On its own loop it still runs.
    first.run_once().unwrap();
    first.close().unwrap();
    second.close().unwrap();
}

#[test]
fn a_task_repr_names_it_and_where_it_was_created() {
    let (repr, line) = vrun(async {
        let line = line!() + 1;
        let task = create_task(sleep(Duration::from_secs(1)));
        task.set_name("worker");
        let repr = format!("{task:?}");
        task.abort();
        (repr, line)
    })
    .unwrap();
    assert!(
        repr.starts_with("<Task pending name='worker' coro=<"),
        "{repr}"
    );
    assert!(
        repr.ends_with(&format!(
            "created at crates/evloop/tests/tasks/task_edges.rs:{line}:20>"
        )),
        "{repr}"
    );
}

#[test]
fn the_slow_callback_report_of_a_task_names_the_task() {
    let mut runner = Runner::with_builder(EventLoop::builder().debug(true));
    let lp = runner.get_loop().unwrap();
    lp.set_slow_callback_duration(Duration::ZERO); // every step counts as slow
    let reports = record_reports(&lp);
    runner
        .run(async {
            let task = create_task(async {});
            task.set_name("slowpoke");
            task.await.unwrap();
        })
        .unwrap();
    runner.close().unwrap();
    let reports = reports.borrow();
    let slow = reports
        .iter()
        .find(|r| r.message.contains("name='slowpoke'"))
        .expect("the task's step was reported");
    assert!(
        slow.message.starts_with("Executing <Task "),
        "{}",
        slow.message
    );
    assert!(
        slow.message
            .contains("created at crates/evloop/tests/tasks/task_edges.rs:")
    );
    assert!(slow.message.ends_with(" seconds"), "{}", slow.message);
}

#[test]
fn an_unretrieved_panic_report_names_the_task() {
    let reports = vrun(async {
        let reports = record_running_reports();
        let task = create_task(async { panic!("boom") });
        task.set_name("doomed");
        sleep(Duration::ZERO).await;
        drop(task);
        reports.take()
    })
    .unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].message, "Task exception was never retrieved");
    let task = reports[0].task.as_deref().unwrap();
    assert!(
        task.starts_with("<Task failed name='doomed' coro=<"),
        "{task}"
    );
    assert!(
        task.contains("created at crates/evloop/tests/tasks/task_edges.rs:"),
        "{task}"
    );
}
