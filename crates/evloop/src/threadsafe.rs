//! `run_coroutine_threadsafe`: how a thread that is not the loop's starts work on the loop and
//! gets its result (asyncio's function of that name). The work is a future *factory*, because a
//! loop future is usually `!Send` and cannot be made on another thread; the factory is `Send`,
//! runs on the loop thread, and its future becomes a task there. The caller gets a
//! `concurrent.futures`-style [`JobFuture`]: `wait()` from a plain thread, `.await` from any
//! runtime, `cancel()` to cancel the task.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use evloop_reactor::{LoopError, RemoteHandle};
use evloop_thread_pool::JobFuture;
use evloop_thread_pool::future::{JobAbandoned, job_channel};

use crate::error::{Cancelled, TaskError};

/// The thread-safe future of a [`run_coroutine_threadsafe`] call: the task's value, or why it
/// gave none.
pub type ThreadsafeFuture<T> = JobFuture<T, TaskError>;

impl From<evloop_thread_pool::future::JobCancelled> for TaskError {
    fn from(_: evloop_thread_pool::future::JobCancelled) -> TaskError {
        TaskError::Cancelled(Cancelled::new())
    }
}

/// A promise dropped without a result: the loop closed before the task finished (a closed loop
/// drops its tasks), which cancels the work.
impl From<JobAbandoned> for TaskError {
    fn from(_: JobAbandoned) -> TaskError {
        TaskError::Cancelled(Cancelled::with_message(
            "the event loop closed before the task finished",
        ))
    }
}

/// Runs `factory()` as a task on the loop of `remote`, from any thread, and returns a
/// thread-safe future of its output (asyncio's `run_coroutine_threadsafe(coro, loop)`).
///
/// The factory runs on the loop thread, so the future it makes may be `!Send`. Cancelling the
/// returned future (before the task is done) cancels the task; a task that is cancelled or
/// panics completes it with the [`TaskError`]; a loop that closes first cancels it. Fails with
/// "Event loop is closed" on a closed loop.
///
/// ```
/// use std::time::Duration;
///
/// let lp = evloop::EventLoop::new().unwrap();
/// let remote = lp.remote();
/// let caller = std::thread::spawn(move || {
///     let future = evloop::run_coroutine_threadsafe(&remote, || async {
///         let local = std::rc::Rc::new(21); // !Send is fine: made on the loop thread
///         evloop::sleep(Duration::from_millis(1)).await;
///         *local * 2
///     })
///     .unwrap();
///     let answer = future.wait();
///     remote.stop().unwrap();
///     answer
/// });
/// lp.run_forever().unwrap();
/// assert_eq!(caller.join().unwrap(), Ok(42));
/// lp.close().unwrap();
/// ```
pub fn run_coroutine_threadsafe<F, Fut>(
    remote: &RemoteHandle,
    factory: F,
) -> Result<ThreadsafeFuture<Fut::Output>, LoopError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let (promise, future) = job_channel::<Fut::Output, TaskError>();
    // The task's id, once it exists: what a cancellation from this side looks for on the loop.
    let task_id = Arc::new(AtomicU64::new(0));
    let started = Arc::clone(&task_id);
    remote.call_soon_threadsafe(move || {
        if promise.is_cancelled() {
            return; // cancelled before it started: the factory never runs
        }
        let task = crate::create_task(factory());
        started.store(task.any().id(), Ordering::Release);
        // A second task hands the outcome over, so a panic or a cancellation of the work
        // arrives as the TaskError it is.
        crate::create_task(async move { promise.complete(task.await) }).detach();
    })?;
    let remote = remote.clone();
    future.add_done_callback(move |outcome| {
        if !matches!(outcome, Err(TaskError::Cancelled(_))) {
            return;
        }
        // Cancelled from this side (or the task ended cancelled, when this is a no-op).
        let _ = remote.call_soon_threadsafe(move || {
            let id = task_id.load(Ordering::Acquire);
            if let Some(task) = crate::all_tasks().into_iter().find(|t| t.id() == id) {
                task.cancel();
            }
        });
    });
    Ok(future)
}
