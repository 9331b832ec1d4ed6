//! asyncio's synchronization primitives: Event, Lock, Semaphore, BoundedSemaphore, Condition and
//! Barrier, with asyncio 3.13's cancellation rules (each race below was checked against CPython
//! 3.13 with the same steps).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use evloop::sync::{
    Barrier, BoundedSemaphore, BrokenBarrierError, Condition, Event, Lock, Semaphore, ValueError,
};
use evloop::{
    AnyTask, RunError, Task, TaskError, catch_cancel, create_task, sleep, timeout, yield_now,
};
use evloop_test_support::{Rng, ms, record_running_reports, settle, vrun_within};

type Log = Rc<RefCell<Vec<String>>>;

/// Every test's main gets a virtual day: a deadlock fails the test instead of hanging it.
const DAY: Duration = Duration::from_secs(86_400);

/// Starts waiters "a" then "b" and lets both reach their await point.
async fn a_and_b<T>(spawn: impl Fn(&'static str) -> Task<T>) -> (Task<T>, Task<T>) {
    let (a, b) = (spawn("a"), spawn("b"));
    settle().await;
    (a, b)
}

mod barrier;
mod condition;
mod event;
mod lock;
mod semaphore;
