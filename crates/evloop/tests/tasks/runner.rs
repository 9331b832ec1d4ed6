//! `run`, `Runner` and `run_until_complete`: leftover tasks cancelled and awaited at the end,
//! nesting refused, a runner's loop reused until it is closed.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use evloop::{
    EventLoop, LoopError, LoopExt, RunError, Runner, TaskError, catch_cancel, create_task, sleep,
};

use crate::HOUR;
use evloop_test_support::{DropFlag, Reports, record_running_reports, vrun};

/// Leaks on purpose (it forgets a task handle, see below), so `cargo xtask asan` excludes it by
/// name from the LeakSanitizer run.
#[test]
fn run_cancels_leftover_tasks_waits_for_them_and_reports_their_panics() {
    let (dropped, flag) = DropFlag::new();
    let reports = Rc::new(RefCell::new(None::<Reports>));
    let slot = reports.clone();
    vrun(async move {
        *slot.borrow_mut() = Some(record_running_reports());
        create_task(async move {
            let _guard = flag;
            sleep(HOUR).await;
        })
        .detach();
        let _kept = create_task(async {
            let _ = catch_cancel(sleep(HOUR)).await;
            if true {
                panic!("panicked while cleaning up");
            }
        });
        sleep(Duration::from_secs(1)).await;
        std::mem::forget(_kept); // keep the handle's slot alive: the shutdown reports it
    })
    .unwrap();
    assert!(dropped.get());
    let reports = reports.borrow_mut().take().unwrap();
    let reports = reports.borrow();
    assert!(
        reports.iter().any(
            |r| r.message == "unhandled exception during evloop::run() shutdown"
                && r.exception.as_deref() == Some("panic: panicked while cleaning up")
        ),
        "{reports:?}"
    );
}

#[test]
fn a_main_panic_reaches_the_caller_after_the_clean_up() {
    let (dropped, flag) = DropFlag::new();
    let outcome = vrun(async move {
        create_task(async move {
            let _guard = flag;
            sleep(HOUR).await;
        })
        .detach();
        sleep(Duration::from_secs(1)).await;
        panic!("main failed");
    });
    assert!(dropped.get());
    assert_eq!(
        outcome.unwrap_err(),
        RunError::Task(TaskError::Panicked(evloop::Panic::new("main failed")))
    );
}

#[test]
fn nested_run_is_refused() {
    let outcome = evloop::run(async {
        let nested = evloop::run(async { 1 });
        let mut runner = Runner::new();
        let nested_runner = runner.run(async { 2 });
        (nested, nested_runner)
    })
    .unwrap();
    assert_eq!(outcome.0.unwrap_err(), RunError::NestedRun);
    assert_eq!(outcome.1.unwrap_err(), RunError::NestedRunnerRun);
}

#[test]
fn runner_reuses_its_loop_and_refuses_after_close() {
    let mut runner = Runner::new();
    let first = runner.get_loop().unwrap();
    let leftover = runner
        .run(async {
            create_task(sleep(HOUR)).detach();
            evloop::get_running_loop().unwrap().id()
        })
        .unwrap();
    assert_eq!(leftover, first.id());
    let second = runner.run(async { evloop::all_tasks().len() }).unwrap();
    assert_eq!(
        second, 2,
        "the leftover task and this main are both pending"
    );
    runner.close().unwrap();
    assert!(first.is_closed());
    runner.close().unwrap();
    assert_eq!(runner.run(async {}).unwrap_err(), RunError::RunnerClosed);
    assert_eq!(runner.get_loop().unwrap_err(), RunError::RunnerClosed);
    // Drop closes too.
    let lp = {
        let mut runner = Runner::new();
        runner.run(async {}).unwrap();
        runner.get_loop().unwrap()
    };
    assert!(lp.is_closed());
}

#[test]
fn run_until_complete_stopped_early_then_resumed() {
    let lp = EventLoop::builder().virtual_clock(true).build().unwrap();
    let stopper = lp.clone();
    let outcome = lp.run_until_complete(async move {
        stopper.stop();
        sleep(Duration::from_secs(1)).await;
        "finished"
    });
    assert_eq!(outcome.unwrap_err(), RunError::StoppedBeforeComplete);
    // The first task finishes during this run; its (disarmed) callback must not stop it.
    let value = lp
        .run_until_complete(async {
            sleep(Duration::from_secs(5)).await;
            "second"
        })
        .unwrap();
    assert_eq!(value, "second");
    lp.close().unwrap();
    assert_eq!(
        lp.run_until_complete(async {}).unwrap_err(),
        RunError::Loop(LoopError::Closed)
    );
}
