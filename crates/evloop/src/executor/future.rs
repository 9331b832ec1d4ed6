//! The loop-side future of an executor job: a pool's `JobFuture` with asyncio's loop semantics.
//!
//! asyncio wraps the `concurrent.futures.Future` in an asyncio future (`wrap_future`) and chains
//! their states with callbacks. evloop needs none of that machinery: a pool's `JobFuture` is
//! already a `std::future::Future` whose waker may be called from any thread, and a task's waker
//! sends the task back to its loop through the loop's remote queue (batched: one eventfd write
//! wakes the loop for any number of completions). So the wrapper only adds what the loop needs:
//!
//! - dropping it unfinished cancels the job if it has not started (a cancelled task drops its
//!   future, which is how asyncio's cancellation reaches the concurrent future);
//! - it holds a virtual clock while the job is in flight, so a test loop waits for real work
//!   instead of jumping its clock ahead to the next timer. The hold ends when the result is
//!   taken (the await returns), the job is cancelled, or the future is dropped: ending it on
//!   the worker thread instead would race with the task's wake-up, and the loop could jump
//!   its clock in between;
//! - a result that arrives after the loop closed stays in the job's state and is dropped with
//!   the wrapper, silently (the task's wake-up is refused by the closed loop).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use evloop_reactor::{ClockHold, EventLoop};
use evloop_thread_pool::future::{JobErrorKind, JobState};
use evloop_thread_pool::{JobError, JobFuture};

/// The result of [`run_in_executor`](crate::ExecutorExt::run_in_executor) and
/// [`run_in_process_pool`](crate::ExecutorExt::run_in_process_pool): awaits the job on the loop.
///
/// Its output is the job's value, or the pool's error ([`JobError`] for a thread pool,
/// [`ProcessPoolError`](crate::ProcessPoolError) for a process pool). Dropping it before the job
/// has started cancels the job; a running job runs to the end and its result is discarded
/// (asyncio C1).
///
/// ```
/// use evloop::ExecutorExt;
///
/// let answer = evloop::run(async {
///     let lp = evloop::get_running_loop().unwrap();
///     lp.run_in_executor(None, || 6 * 7).unwrap().await
/// });
/// assert_eq!(answer.unwrap(), Ok(42));
/// ```
#[must_use = "dropping an ExecutorFuture cancels its job if it has not started"]
pub struct ExecutorFuture<R, E: JobErrorKind = JobError> {
    job: JobFuture<R, E>,
    /// Held while the job is in flight, only on a loop with a virtual clock.
    hold: Cell<Option<ClockHold>>,
    /// The output was handed out: nothing left to cancel, and polling again is a bug.
    finished: bool,
}

impl<R, E: JobErrorKind> ExecutorFuture<R, E> {
    pub(crate) fn new(lp: &EventLoop, job: JobFuture<R, E>) -> Self {
        // A real clock never jumps, so the hold (an atomic and a wake-up message on release)
        // is only paid for where it matters.
        let hold = lp.has_virtual_clock().then(|| lp.remote().hold_clock());
        ExecutorFuture {
            job,
            hold: Cell::new(hold),
            finished: false,
        }
    }

    /// Cancels the job if it has not started: `true` if it is (now) cancelled, `false` if it is
    /// running or finished (a running job cannot be stopped). Awaiting a cancelled future gives
    /// the pool's "cancelled" error.
    ///
    /// ```
    /// use evloop::{ExecutorExt, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::with_max_workers(1).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let result = evloop::run(async move {
    ///     let lp = evloop::get_running_loop().unwrap();
    ///     let busy = lp.run_in_executor(Some(&pool), move || rx.recv().unwrap()).unwrap();
    ///     let queued = lp.run_in_executor(Some(&pool), || "never runs").unwrap();
    ///     assert!(queued.cancel());
    ///     tx.send(()).unwrap();
    ///     busy.await.unwrap();
    ///     queued.await
    /// });
    /// assert!(result.unwrap().is_err());
    /// ```
    pub fn cancel(&self) -> bool {
        let cancelled = self.job.cancel();
        if cancelled {
            drop(self.hold.take());
        }
        cancelled
    }

    /// Whether the job finished or was cancelled.
    ///
    /// ```
    /// use evloop::{ExecutorExt, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::with_max_workers(1).unwrap();
    /// evloop::run(async move {
    ///     let lp = evloop::get_running_loop().unwrap();
    ///     let (tx, rx) = std::sync::mpsc::channel::<()>();
    ///     let job = lp.run_in_executor(Some(&pool), move || rx.recv().unwrap()).unwrap();
    ///     assert!(!job.done());
    ///     tx.send(()).unwrap();
    ///     job.await.unwrap();
    /// })
    /// .unwrap();
    /// ```
    pub fn done(&self) -> bool {
        self.job.done()
    }

    /// Whether the job was cancelled before it started.
    ///
    /// ```
    /// use evloop::{ExecutorExt, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::with_max_workers(1).unwrap();
    /// evloop::run(async move {
    ///     let lp = evloop::get_running_loop().unwrap();
    ///     let (tx, rx) = std::sync::mpsc::channel::<()>();
    ///     let busy = lp.run_in_executor(Some(&pool), move || rx.recv().unwrap()).unwrap();
    ///     let queued = lp.run_in_executor(Some(&pool), || ()).unwrap();
    ///     assert!(queued.cancel() && queued.cancelled() && queued.done());
    ///     tx.send(()).unwrap();
    ///     busy.await.unwrap();
    /// })
    /// .unwrap();
    /// ```
    pub fn cancelled(&self) -> bool {
        self.job.cancelled()
    }

    /// The job's state: pending (queued), running, finished or cancelled.
    ///
    /// ```
    /// use evloop::ExecutorExt;
    /// use evloop::thread_pool::future::JobState;
    ///
    /// evloop::run(async {
    ///     let lp = evloop::get_running_loop().unwrap();
    ///     let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    ///     let (tx, rx) = std::sync::mpsc::channel::<()>();
    ///     let job = lp
    ///         .run_in_executor(None, move || {
    ///             started_tx.send(()).unwrap();
    ///             rx.recv().unwrap()
    ///         })
    ///         .unwrap();
    ///     started_rx.recv().unwrap();
    ///     assert_eq!(job.state(), JobState::Running);
    ///     tx.send(()).unwrap();
    ///     job.await.unwrap();
    /// })
    /// .unwrap();
    /// ```
    pub fn state(&self) -> JobState {
        self.job.state()
    }
}

impl<R, E: JobErrorKind> Future for ExecutorFuture<R, E> {
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.finished, "ExecutorFuture polled after completion");
        match Pin::new(&mut this.job).poll(cx) {
            Poll::Ready(output) => {
                this.finished = true;
                // Released only now, on the loop thread with the task running: between the
                // job's completion and this poll the task was queued, so the loop never saw
                // "nothing held, nothing ready" and could not jump its clock in between.
                drop(this.hold.take());
                Poll::Ready(output)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<R, E: JobErrorKind> Drop for ExecutorFuture<R, E> {
    fn drop(&mut self) {
        if !self.finished {
            // Succeeds only while the job is queued; a running job's result is discarded.
            self.job.cancel();
        }
    }
}

impl<R, E: JobErrorKind> fmt::Debug for ExecutorFuture<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorFuture")
            .field("state", &self.job.state())
            .finish()
    }
}
