//! CPython's `Lib/test/test_asyncio/test_tasks.py` (3.12/3.13), ported: each test names the
//! CPython test it reproduces. Where evloop differs on purpose (docs/asyncio-mapping.md,
//! "Deliberate differences"), the port asserts evloop's documented counterpart and says which
//! difference it is. Time is the virtual clock's.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use super::ms;
use evloop::{
    AnyTask, Cancelled, EventLoop, FutureError, LoopExt, ReturnWhen, RunError, Task, TaskError,
    catch_cancel, create_task, current_task, shield, sleep, wait,
};
use evloop_test_support::{record_reports, run_briefly, test_loop, until_done, vrun};

const TEN: Duration = Duration::from_secs(10);

fn cancelled(message: Option<&str>) -> TaskError {
    TaskError::Cancelled(match message {
        Some(message) => Cancelled::with_message(message),
        None => Cancelled::new(),
    })
}

/// Runs `lp` until `task` is done and checks that it ended cancelled.
#[track_caller]
fn assert_ends_cancelled<T: std::fmt::Debug + 'static>(lp: &EventLoop, task: Task<T>) {
    assert!(
        lp.run_until_complete(task)
            .unwrap()
            .unwrap_err()
            .is_cancelled()
    );
}

/// CPython's closing checks of its cancel tests: the task ends cancelled, is done, and a further
/// cancel() returns false.
#[track_caller]
fn assert_cancelled_for_good<T: std::fmt::Debug + 'static>(lp: &EventLoop, task: Task<T>) {
    let any = task.any();
    assert_eq!(
        lp.run_until_complete(task).unwrap().map(drop),
        Err(cancelled(None))
    );
    assert!(any.done() && any.cancelled());
    assert!(!any.cancel());
}

mod basics;
mod cancel;
mod misc;
mod shield;
mod sleep_current;
mod wait;
