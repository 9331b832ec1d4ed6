//! CPython's `Lib/test/test_asyncio/test_runners.py` (3.12/3.13), ported to `evloop::run` and
//! `Runner`. The Ctrl-C tests (`test_interrupt_call_soon`, `test_interrupt_wait`,
//! `test_interrupt_cancelled_task`) need a process of their own: they are in `ctrl_c.rs`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use evloop::contextvars::{ContextVar, copy_context};
use evloop::{EventLoop, RunError, Runner, catch_cancel, create_task, sleep};
use evloop_test_support::record_running_reports;

fn virtual_runner() -> Runner {
    Runner::with_builder(EventLoop::builder().virtual_clock(true))
}

// test_asyncio_run_return
#[test]
fn asyncio_run_return() {
    let answer = evloop::run(async {
        sleep(Duration::ZERO).await;
        42
    });
    assert_eq!(answer.unwrap(), 42);
}

// test_asyncio_run_raises (a panic is evloop's exception: deliberate difference 2)
#[test]
fn asyncio_run_raises() {
    let outcome = evloop::run(async {
        sleep(Duration::ZERO).await;
        panic!("spam");
    });
    let error = outcome.unwrap_err();
    assert!(
        matches!(&error, RunError::Task(e) if e.is_panic()),
        "{error}"
    );
    assert!(error.to_string().contains("spam"), "{error}");
}

// test_asyncio_run_debug
#[test]
fn asyncio_run_debug() {
    let main = || async { evloop::get_running_loop().unwrap().get_debug() };
    assert!(!evloop::run(main()).unwrap());
    let mut runner = Runner::with_builder(EventLoop::builder().debug(true));
    assert!(runner.run(main()).unwrap());
    runner.close().unwrap();
}

// test_asyncio_run_from_running_loop
#[test]
fn asyncio_run_from_running_loop() {
    let inner = evloop::run(async { evloop::run(async {}) }).unwrap();
    let error = inner.unwrap_err();
    assert_eq!(error, RunError::NestedRun);
    assert!(
        error
            .to_string()
            .contains("cannot be called from a running event loop"),
        "{error}"
    );
}

// test_asyncio_run_cancels_hanging_tasks
#[test]
fn asyncio_run_cancels_hanging_tasks() {
    let lo_task: Rc<Cell<Option<evloop::AnyTask>>> = Rc::default();
    let slot = lo_task.clone();
    let answer = evloop::run(async move {
        slot.set(Some(create_task(sleep(Duration::from_millis(100))).any()));
        123
    });
    assert_eq!(answer.unwrap(), 123);
    let lo_task = lo_task.take().unwrap();
    assert!(lo_task.done() && lo_task.cancelled());
}

// test_asyncio_run_reports_hanging_tasks_errors: a leftover task failing in its clean-up is
// reported, naming the task, with "... run() shutdown" in the message.
#[test]
fn asyncio_run_reports_hanging_tasks_errors() {
    let reports: Rc<Cell<Option<evloop_test_support::Reports>>> = Rc::default();
    let slot = reports.clone();
    // CPython's `nonlocal lo_task` keeps the task referenced, as this handle does.
    let lo_task: Rc<Cell<Option<evloop::Task<()>>>> = Rc::default();
    let task_slot = lo_task.clone();
    let answer = evloop::run(async move {
        slot.set(Some(record_running_reports()));
        let leftover = create_task(async {
            if catch_cancel(sleep(Duration::from_millis(100)))
                .await
                .is_err()
            {
                panic!("ZeroDivisionError");
            }
        });
        task_slot.set(Some(leftover));
        123
    });
    assert_eq!(answer.unwrap(), 123);
    assert!(lo_task.take().unwrap().done());
    let reports = reports.take().unwrap();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = &reports[0];
    assert!(
        report.message.contains("run() shutdown"),
        "{}",
        report.message
    );
    assert!(
        report
            .task
            .as_deref()
            .unwrap()
            .starts_with("<Task failed name='Task-")
    );
    assert!(
        report
            .exception
            .as_deref()
            .unwrap()
            .contains("ZeroDivisionError")
    );
}

// RunnerTests.test_non_debug / test_debug
#[test]
fn runner_debug() {
    let mut runner = Runner::new();
    assert!(!runner.get_loop().unwrap().get_debug());
    runner.close().unwrap();
    let mut runner = Runner::with_builder(EventLoop::builder().debug(true));
    assert!(runner.get_loop().unwrap().get_debug());
    runner.close().unwrap();
}

// RunnerTests.test_run: after close, the runner refuses ("Runner is closed") and its loop is
// closed.
#[test]
fn runner_run() {
    let mut runner = virtual_runner();
    let done = runner.run(async {
        sleep(Duration::ZERO).await;
        "done"
    });
    assert_eq!(done.unwrap(), "done");
    let lp = runner.get_loop().unwrap();
    runner.close().unwrap();
    let error = runner.get_loop().unwrap_err();
    assert_eq!(error.to_string(), "Runner is closed");
    assert!(lp.is_closed());
}

// RunnerTests.test_explicit_close / test_double_close
#[test]
fn runner_explicit_and_double_close() {
    let mut runner = virtual_runner();
    let lp = runner.get_loop().unwrap();
    runner.close().unwrap();
    assert!(lp.is_closed());
    assert_eq!(runner.get_loop().unwrap_err(), RunError::RunnerClosed);
    runner.close().unwrap(); // the second call is a no-op
    assert!(lp.is_closed());
}

// RunnerTests.test_second_with_block_raises
#[test]
fn runner_second_run_after_close_raises() {
    let ret = Rc::new(Cell::new(Vec::new()));
    let mut runner = virtual_runner();
    let r = ret.clone();
    runner
        .run(async move {
            let mut seen = r.take();
            seen.push(1);
            r.set(seen);
        })
        .unwrap();
    runner.close().unwrap();
    let r = ret.clone();
    let error = runner
        .run(async move {
            let mut seen = r.take();
            seen.push(2);
            r.set(seen);
        })
        .unwrap_err();
    assert_eq!(error.to_string(), "Runner is closed");
    assert_eq!(ret.take(), [1]);
}

static CVAR: ContextVar<i32> = ContextVar::with_default("cvar", -1);

// RunnerTests.test_run_keeps_context
#[test]
fn runner_run_keeps_context() {
    let f = |val: i32| async move {
        let old = CVAR.get().unwrap();
        sleep(Duration::ZERO).await;
        CVAR.set(val);
        old
    };
    let mut runner = virtual_runner();
    assert_eq!(runner.run(f(1)).unwrap(), -1);
    assert_eq!(runner.run(f(2)).unwrap(), 1);
    let ctx = runner.run(async { copy_context() }).unwrap();
    assert_eq!(ctx.get(&CVAR), Some(2));
    runner.close().unwrap();
}

// RunnerTests.test_recursive_run
#[test]
fn runner_recursive_run() {
    let mut runner = virtual_runner();
    let inner = runner
        .run(async { virtual_runner().run(async {}) })
        .unwrap();
    let error = inner.unwrap_err();
    assert_eq!(
        error.to_string(),
        "Runner.run() cannot be called from a running event loop"
    );
    runner.close().unwrap();
}
