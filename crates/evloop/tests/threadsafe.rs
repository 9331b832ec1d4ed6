//! `run_coroutine_threadsafe`: from another thread, a future factory runs as a task on the loop
//! and its outcome (value, panic, cancellation, closed loop) reaches the caller; cancelling the
//! caller's future cancels the task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use evloop::{EventLoop, LoopError, TaskError, catch_cancel, run_coroutine_threadsafe};

/// Runs the loop on this thread until `caller` (on another thread) returns, then closes it.
fn with_loop<T: Send + 'static>(
    caller: impl FnOnce(evloop::RemoteHandle) -> T + Send + 'static,
) -> T {
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    let thread = std::thread::spawn(move || {
        let out = caller(remote.clone());
        remote.stop().unwrap();
        out
    });
    lp.run_forever().unwrap();
    let out = thread.join().unwrap();
    lp.close().unwrap();
    out
}

#[test]
fn the_value_is_awaited_from_another_loop_on_another_thread() {
    let value = with_loop(|remote| {
        // The caller is itself an evloop program: it awaits the other loop's result.
        evloop::run(async move {
            run_coroutine_threadsafe(&remote, || async { 6 * 7 })
                .unwrap()
                .await
        })
        .unwrap()
    });
    assert_eq!(value, Ok(42));
}

#[test]
fn a_panic_in_the_task_reaches_the_caller() {
    let outcome = with_loop(|remote| {
        run_coroutine_threadsafe(&remote, || async {
            evloop::sleep(Duration::from_millis(1)).await;
            panic!("boom");
        })
        .unwrap()
        .wait()
    });
    let error: TaskError = outcome.unwrap_err();
    assert!(error.is_panic());
    assert_eq!(error.to_string(), "task panicked: boom");
}

#[test]
fn cancelling_the_callers_future_cancels_the_task() {
    let (cancelled, saw_cancel, outcome) = with_loop(move |remote| {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (cancel_tx, cancel_rx) = std::sync::mpsc::channel();
        let future = run_coroutine_threadsafe(&remote, move || async move {
            started_tx.send(()).unwrap();
            if catch_cancel(evloop::sleep(Duration::from_secs(3600)))
                .await
                .is_err()
            {
                cancel_tx.send(()).unwrap();
            }
        })
        .unwrap();
        started_rx.recv().unwrap();
        let cancelled = future.cancel();
        let saw_cancel = cancel_rx.recv_timeout(Duration::from_secs(30)).is_ok();
        (cancelled, saw_cancel, future.wait())
    });
    assert!(cancelled);
    assert!(saw_cancel, "the task was cancelled");
    assert!(outcome.unwrap_err().is_cancelled());
}

#[test]
fn a_future_cancelled_before_the_loop_runs_it_never_starts() {
    let lp = EventLoop::new().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let future = run_coroutine_threadsafe(&lp.remote(), move || {
        flag.store(true, Ordering::SeqCst);
        async {}
    })
    .unwrap();
    assert!(future.cancel());
    evloop::LoopExt::run_until_complete(&lp, evloop::yield_now()).unwrap();
    assert!(!ran.load(Ordering::SeqCst));
    lp.close().unwrap();
}

#[test]
fn a_closed_loop_refuses_and_closing_cancels_a_pending_task() {
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    let pending =
        run_coroutine_threadsafe(&remote, || evloop::sleep(Duration::from_secs(3600))).unwrap();
    evloop::LoopExt::run_until_complete(&lp, evloop::yield_now()).unwrap();
    lp.close().unwrap();
    let error = pending.wait().unwrap_err();
    assert!(error.is_cancelled(), "{error}");
    let refused = run_coroutine_threadsafe(&remote, || async {}).unwrap_err();
    assert_eq!(refused, LoopError::Closed);
}
