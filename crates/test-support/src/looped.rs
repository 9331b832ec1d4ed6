//! What needs the facade (feature `evloop`): running a future on a loop with a virtual clock,
//! a test loop of one's own, the recording exception handler on the facade's loop, and waiting
//! on the loop for a condition.

use std::future::Future;
use std::time::Duration;

use evloop::{AnyTask, EventLoop, LoopExt, RunError, Runner};

use crate::Reports;

/// Runs `main` as `evloop::run` would, on a loop with a virtual clock: long sleeps take no real
/// time and timer tests are exact.
pub fn vrun<F: Future + 'static>(main: F) -> Result<F::Output, RunError>
where
    F::Output: 'static,
{
    let mut runner = Runner::with_builder(EventLoop::builder().virtual_clock(true));
    let outcome = runner.run(main);
    let closed = runner.close();
    closed.and(outcome)
}

/// A loop of the test's own with a virtual clock (CPython's `new_test_loop()`); close it at the
/// end.
///
/// ```
/// let lp = evloop_test_support::test_loop();
/// assert!(lp.has_virtual_clock());
/// lp.close().unwrap();
/// ```
pub fn test_loop() -> EventLoop {
    EventLoop::builder()
        .virtual_clock(true)
        .build()
        .expect("a loop can be built")
}

/// CPython's `test_utils.run_briefly(loop)`: runs `lp` until a trivial task is done, which lets
/// every step and callback already queued run once.
///
/// ```
/// use evloop::LoopExt;
///
/// let lp = evloop_test_support::test_loop();
/// let task = lp.create_task(async { 5 }).unwrap();
/// evloop_test_support::run_briefly(&lp);
/// assert!(task.done());
/// lp.close().unwrap();
/// ```
pub fn run_briefly(lp: &EventLoop) {
    lp.run_until_complete(async {})
        .expect("the loop runs a trivial task");
}

/// Completes once `task` is done, whoever owns its handle (asyncio's `await asyncio.wait([t])`).
///
/// ```
/// use evloop::LoopExt;
///
/// let lp = evloop_test_support::test_loop();
/// let task = lp.create_task(evloop::sleep(std::time::Duration::from_secs(1))).unwrap();
/// let any = task.any();
/// lp.run_until_complete(evloop_test_support::until_done(any.clone())).unwrap();
/// assert!(any.done());
/// lp.close().unwrap();
/// ```
pub async fn until_done(task: AnyTask) {
    let fut = evloop::get_running_loop()
        .expect("inside a running loop")
        .create_future::<()>();
    let setter = fut.clone();
    task.add_done_callback(move || {
        let _ = setter.set_result(());
    });
    let _ = fut.await;
}

/// [`vrun`] with a deadline of `limit` (virtual time, so free) on `main`: a main still waiting by
/// then panics ("main finished within ...: no deadlock"), so a deadlock fails the test at once
/// instead of hanging it.
///
/// After such a failure the loop is not closed: tasks that refused their cancellation and block
/// again (a broken primitive under test) would make closing wait forever.
///
/// ```
/// use std::time::Duration;
///
/// let hung = evloop_test_support::vrun_within(Duration::from_secs(60), async {
///     std::future::pending::<()>().await
/// });
/// assert!(hung.is_err());
/// ```
pub fn vrun_within<F: Future + 'static>(limit: Duration, main: F) -> Result<F::Output, RunError>
where
    F::Output: 'static,
{
    let mut runner = Runner::with_builder(EventLoop::builder().virtual_clock(true));
    let outcome = runner.run(async move {
        evloop::timeout(limit, main)
            .await
            .unwrap_or_else(|_| panic!("main finished within {limit:?}: no deadlock"))
    });
    if outcome.is_err() {
        std::mem::forget(runner);
        return outcome;
    }
    let closed = runner.close();
    closed.and(outcome)
}

/// Installs on `lp` an exception handler that records every report instead of printing it
/// ([`record_reports!`](crate::record_reports!) as a function, for the facade's loop).
///
/// ```
/// let lp = evloop::EventLoop::new().unwrap();
/// let reports = evloop_test_support::record_reports(&lp);
/// lp.call_soon(|| panic!("boom")).unwrap();
/// lp.run_once().unwrap();
/// assert_eq!(reports.borrow()[0].exception.as_deref(), Some("panic: boom"));
/// ```
pub fn record_reports(lp: &EventLoop) -> Reports {
    crate::record_reports!(lp, evloop)
}

/// [`record_reports()`] on the running loop.
///
/// # Panics
///
/// Outside a running loop.
pub fn record_running_reports() -> Reports {
    record_reports(&evloop::get_running_loop().expect("inside a running loop"))
}

/// Sleeps on the loop in small steps until `done()` holds; a bounded wait (a failure, not a
/// hang), for conditions that depend on the kernel delivering bytes.
///
/// ```
/// evloop::run(async {
///     let start = std::time::Instant::now();
///     evloop_test_support::until(|| start.elapsed() > std::time::Duration::from_millis(1)).await;
/// })
/// .unwrap();
/// ```
pub async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if done() {
            return;
        }
        evloop::sleep(Duration::from_micros(100)).await;
    }
    panic!("condition not reached");
}

/// Lets every task woken so far take one more step (a few loop iterations; tasks run in wake
/// order), for tests that check who got a wake-up before anything else happens.
///
/// ```
/// evloop::run(async {
///     let task = evloop::create_task(async { 7 });
///     evloop_test_support::settle().await;
///     assert!(task.done());
/// })
/// .unwrap();
/// ```
pub async fn settle() {
    for _ in 0..4 {
        evloop::yield_now().await;
    }
}
