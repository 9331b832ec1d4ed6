//! A one-shot result channel with `concurrent.futures.Future` semantics.
//!
//! Pools hand work to other threads (or processes) and give the caller something to wait on. That
//! something has to serve three kinds of caller at once: async code on *any* runtime (so it is a
//! plain [`std::future::Future`] whose waker may come from any thread), blocking code (`wait`,
//! `wait_timeout`), and callback-style code (`add_done_callback`, [`as_completed`]). It also has
//! to follow Python's state machine, because cancellation semantics depend on it: a job can be
//! cancelled only while it is *pending*; once a worker has claimed it with
//! [`JobPromise::set_running_or_notify_cancel`] it runs to the end.
//!
//! The type is generic over the error so that the process pool can reuse it with its own error
//! enum; the only thing the channel needs from an error type is a way to say "cancelled" and
//! "abandoned" (see [`JobErrorKind`]).
//!
//! Cost: one allocation per channel (the shared state; the thread pool also keeps the job's
//! closure in it). The state word is an atomic so that `done()`, `cancelled()` and `running()`
//! never lock; the result, waker and callbacks sit behind one short-lived mutex, and the
//! condition variable is only signalled when a thread is actually blocked in `wait`, so the
//! async path never makes a futex syscall on completion. A blocking `wait` yields its time slice
//! a few times before it blocks, since short jobs are usually done by then.

use std::fmt;
use std::future::Future;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::JobError;
pub use crate::as_completed::{AsCompleted, NextCompleted, as_completed};

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const FINISHED: u8 = 2;
const CANCELLED: u8 = 3;

/// How many times a blocking wait yields before it sleeps on the condvar.
const WAIT_YIELD_ROUNDS: usize = 16;

/// Marker converted into the error type when a future is cancelled.
///
/// ```
/// use evloop_thread_pool::{JobError, future::JobCancelled};
///
/// assert_eq!(JobError::from(JobCancelled), JobError::Cancelled);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct JobCancelled;

/// Marker converted into the error type when a [`JobPromise`] is dropped without completing.
///
/// ```
/// use evloop_thread_pool::{JobError, future::JobAbandoned};
///
/// assert_eq!(JobError::from(JobAbandoned), JobError::Abandoned);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the job was dropped before it completed")]
pub struct JobAbandoned;

/// What the channel needs from an error type: a way to say "cancelled" and "abandoned".
///
/// Implemented automatically for every type with `From<JobCancelled> + From<JobAbandoned>`; a pool
/// implements those two conversions for its own error enum.
///
/// ```
/// use evloop_thread_pool::future::{JobAbandoned, JobCancelled, job_channel};
///
/// #[derive(Debug, PartialEq)]
/// enum MyError { Cancelled, Lost }
/// impl From<JobCancelled> for MyError { fn from(_: JobCancelled) -> Self { MyError::Cancelled } }
/// impl From<JobAbandoned> for MyError { fn from(_: JobAbandoned) -> Self { MyError::Lost } }
///
/// let (promise, future) = job_channel::<u8, MyError>();
/// drop(promise);
/// assert_eq!(future.wait(), Err(MyError::Lost));
/// ```
pub trait JobErrorKind: From<JobCancelled> + From<JobAbandoned> {}

impl<E: From<JobCancelled> + From<JobAbandoned>> JobErrorKind for E {}

/// The observable state of a [`JobFuture`] (Python's `PENDING`, `RUNNING`, `FINISHED`,
/// `CANCELLED`).
///
/// ```
/// use evloop_thread_pool::future::{JobState, job_channel};
///
/// let (promise, future) = job_channel::<u8, evloop_thread_pool::JobError>();
/// assert_eq!(future.state(), JobState::Pending);
/// assert!(promise.set_running_or_notify_cancel());
/// assert_eq!(future.state(), JobState::Running);
/// promise.complete(Ok(1));
/// assert_eq!(future.state(), JobState::Finished);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Not started; can still be cancelled.
    Pending,
    /// Claimed by a worker; runs to the end.
    Running,
    /// Completed with a value or an error.
    Finished,
    /// Cancelled before it started.
    Cancelled,
}

type ResultCallback<T, E> = Box<dyn FnOnce(&Result<T, E>) + Send>;

enum Callback<T, E> {
    /// A user callback that sees the result.
    Result(ResultCallback<T, E>),
    /// An internal "it is done" signal (for `as_completed`); it needs no access to the result,
    /// so it can fire even after the result was taken.
    Signal(Box<dyn FnOnce() + Send>),
}

struct Slot<T, E> {
    output: Option<Result<T, E>>,
    /// The output has been handed to the consumer.
    taken: bool,
    waker: Option<Waker>,
    callbacks: Vec<Callback<T, E>>,
    /// Threads blocked in `wait`/`wait_timeout`; the condvar is signalled only when non-zero.
    blocked: usize,
}

/// Whatever a producer keeps in the same allocation as the future's state (the thread pool
/// keeps the job's closure there, saving an allocation per job). The consumer never sees it.
pub(crate) trait Payload: Send + Sync {}

impl<P: Send + Sync> Payload for P {}

/// The state shared by a promise (or a queued job) and its future.
pub(crate) struct JobCell<T, E, P: ?Sized = dyn Payload> {
    state: AtomicU8,
    slot: Mutex<Slot<T, E>>,
    cond: Condvar,
    pub(crate) payload: P,
}

impl<T, E, P> JobCell<T, E, P> {
    pub(crate) fn new(payload: P) -> Self {
        JobCell {
            state: AtomicU8::new(PENDING),
            slot: Mutex::new(Slot {
                output: None,
                taken: false,
                waker: None,
                callbacks: Vec::new(),
                blocked: 0,
            }),
            cond: Condvar::new(),
            payload,
        }
    }
}

impl<T, E, P: ?Sized> JobCell<T, E, P> {
    /// Python's `set_running_or_notify_cancel`: true if the job may run (now running).
    pub(crate) fn set_running_or_notify_cancel(&self) -> bool {
        match self
            .state
            .compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(CANCELLED) => false,
            Err(other) => panic!("set_running_or_notify_cancel on a future in state {other}"),
        }
    }

    /// Completes with `output` unless already settled.
    pub(crate) fn complete(&self, output: Result<T, E>) {
        self.settle(output, FINISHED);
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T, E>> {
        // User code never runs while the lock is held except done callbacks, which are wrapped in
        // catch_unwind, so a poisoned lock still guards consistent data.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> JobState {
        match self.state.load(Ordering::Acquire) {
            PENDING => JobState::Pending,
            RUNNING => JobState::Running,
            FINISHED => JobState::Finished,
            _ => JobState::Cancelled,
        }
    }

    /// Moves to `to` (`FINISHED` or `CANCELLED`) and publishes `output`. Returns false, dropping
    /// `output`, if the transition is not allowed (already settled, or cancelling a running job).
    fn settle(&self, output: Result<T, E>, to: u8) -> bool {
        let mut slot = self.lock();
        let allowed = if to == CANCELLED {
            self.state
                .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        } else {
            // Completion is allowed from PENDING (a producer that skips the running state) and
            // from RUNNING.
            let mut current = self.state.load(Ordering::Acquire);
            loop {
                if current != PENDING && current != RUNNING {
                    break false;
                }
                match self.state.compare_exchange(
                    current,
                    FINISHED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break true,
                    Err(now) => current = now,
                }
            }
        };
        if !allowed {
            drop(slot);
            return false;
        }
        let callbacks = mem::take(&mut slot.callbacks);
        let output = slot.output.insert(output);
        for callback in callbacks {
            // Python logs and ignores an exception raised by a done callback; a panicking
            // callback must not skip the others or take the completing worker down.
            let outcome = catch_unwind(AssertUnwindSafe(|| match callback {
                Callback::Result(f) => f(output),
                Callback::Signal(f) => f(),
            }));
            if outcome.is_err() {
                eprintln!("evloop-thread-pool: a done callback panicked; ignored");
            }
        }
        let waker = slot.waker.take();
        let blocked = slot.blocked > 0;
        drop(slot);
        // Wake outside the lock: a woken thread or task goes straight for the lock, and finding
        // it still held would cost it a second sleep and us a second futex wake.
        if blocked {
            self.cond.notify_all();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    pub(crate) fn cancel(&self) -> bool
    where
        E: JobErrorKind,
    {
        match self.state.load(Ordering::Acquire) {
            CANCELLED => return true,
            RUNNING | FINISHED => return false,
            _ => {}
        }
        self.settle(Err(E::from(JobCancelled)), CANCELLED)
            || self.state.load(Ordering::Acquire) == CANCELLED
    }
}

/// Creates a connected promise (producer half) and future (consumer half).
///
/// ```
/// use evloop_thread_pool::{JobError, future::job_channel};
///
/// let (promise, future) = job_channel::<u32, JobError>();
/// std::thread::spawn(move || {
///     if promise.set_running_or_notify_cancel() {
///         promise.complete(Ok(42));
///     }
/// });
/// assert_eq!(future.wait(), Ok(42));
/// ```
pub fn job_channel<T, E: JobErrorKind>() -> (JobPromise<T, E>, JobFuture<T, E>) {
    let shared: Arc<JobCell<T, E>> = Arc::new(JobCell::new(()));
    (
        JobPromise {
            shared: Some(Arc::clone(&shared)),
        },
        JobFuture { shared },
    )
}

/// The producer half: the worker that runs a job completes it through this.
///
/// Dropping a promise without calling [`complete`](JobPromise::complete) completes the future
/// with `E::from(JobAbandoned)`, so no waiter is ever left hanging.
///
/// ```
/// use evloop_thread_pool::{JobError, future::job_channel};
///
/// let (promise, future) = job_channel::<u32, JobError>();
/// drop(promise);
/// assert_eq!(future.wait(), Err(JobError::Abandoned));
/// ```
pub struct JobPromise<T, E: JobErrorKind = JobError> {
    // None once completed, so that Drop knows there is nothing left to do.
    shared: Option<Arc<JobCell<T, E>>>,
}

impl<T, E: JobErrorKind> JobPromise<T, E> {
    fn shared(&self) -> &JobCell<T, E> {
        self.shared.as_ref().expect("promise used after completion")
    }

    /// Claims the job for running: returns `true` and moves the future to *running* (it can no
    /// longer be cancelled), or returns `false` if the future was cancelled, in which case the
    /// job must not run. Python's `Future.set_running_or_notify_cancel`.
    ///
    /// # Panics
    ///
    /// If the future is already running or finished (a producer bug).
    ///
    /// ```
    /// use evloop_thread_pool::{JobError, future::job_channel};
    ///
    /// let (promise, future) = job_channel::<u32, JobError>();
    /// assert!(future.cancel());
    /// assert!(!promise.set_running_or_notify_cancel());
    /// ```
    pub fn set_running_or_notify_cancel(&self) -> bool {
        self.shared().set_running_or_notify_cancel()
    }

    /// Completes the future with `result`, waking an awaiting task, blocked waiters and running
    /// the done callbacks on this thread. A result for a cancelled future is dropped.
    ///
    /// ```
    /// use evloop_thread_pool::{JobError, future::job_channel};
    ///
    /// let (promise, future) = job_channel::<&str, JobError>();
    /// promise.complete(Ok("done"));
    /// assert_eq!(future.wait(), Ok("done"));
    /// ```
    pub fn complete(mut self, result: Result<T, E>) {
        if let Some(shared) = self.shared.take() {
            shared.settle(result, FINISHED);
        }
    }

    /// Cancels the future if it is still pending (used by a pool that drains its queue).
    /// Returns whether the future is now cancelled.
    ///
    /// ```
    /// use evloop_thread_pool::{JobError, future::job_channel};
    ///
    /// let (promise, future) = job_channel::<u32, JobError>();
    /// assert!(promise.cancel());
    /// assert_eq!(future.wait(), Err(JobError::Cancelled));
    /// ```
    pub fn cancel(&self) -> bool {
        self.shared().cancel()
    }

    /// Whether the consumer cancelled the future.
    ///
    /// ```
    /// use evloop_thread_pool::{JobError, future::job_channel};
    ///
    /// let (promise, future) = job_channel::<u32, JobError>();
    /// assert!(!promise.is_cancelled());
    /// future.cancel();
    /// assert!(promise.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.shared().state.load(Ordering::Acquire) == CANCELLED
    }
}

impl<T, E: JobErrorKind> Drop for JobPromise<T, E> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            // Nothing is lost: a job that never completed still completes its future.
            shared.settle(Err(E::from(JobAbandoned)), FINISHED);
        }
    }
}

impl<T, E: JobErrorKind> fmt::Debug for JobPromise<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.as_ref().map(|s| s.state());
        f.debug_struct("JobPromise").field("state", &state).finish()
    }
}

/// The consumer half: the result of a job running elsewhere.
///
/// Await it on any runtime (the waker may come from any thread), or block with
/// [`wait`](JobFuture::wait) / [`wait_timeout`](JobFuture::wait_timeout). Dropping it does *not*
/// cancel the job (as in Python); call [`cancel`](JobFuture::cancel) first if that is wanted.
///
/// ```
/// use evloop_thread_pool::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::new();
/// let future = pool.submit(|| 6 * 7).unwrap();
/// assert_eq!(future.wait(), Ok(42));
/// ```
#[must_use = "a JobFuture does nothing unless waited on or awaited"]
pub struct JobFuture<T, E: JobErrorKind = JobError> {
    shared: Arc<JobCell<T, E>>,
}

impl<T, E: JobErrorKind> JobFuture<T, E> {
    /// The consumer half of state created by a pool.
    pub(crate) fn from_shared(shared: Arc<JobCell<T, E>>) -> Self {
        JobFuture { shared }
    }

    /// The current state.
    ///
    /// ```
    /// use evloop_thread_pool::{JobError, future::{JobState, job_channel}};
    ///
    /// let (_promise, future) = job_channel::<u8, JobError>();
    /// future.cancel();
    /// assert_eq!(future.state(), JobState::Cancelled);
    /// ```
    pub fn state(&self) -> JobState {
        self.shared.state()
    }

    /// Cancels the job if it has not started. Returns `true` if the future is (now) cancelled,
    /// `false` if the job is running or finished. Python's `Future.cancel`.
    ///
    /// ```
    /// use evloop_thread_pool::{JobError, future::job_channel};
    ///
    /// let (promise, future) = job_channel::<u8, JobError>();
    /// assert!(promise.set_running_or_notify_cancel());
    /// assert!(!future.cancel()); // already running
    /// ```
    pub fn cancel(&self) -> bool {
        self.shared.cancel()
    }

    /// Whether the future is finished or cancelled.
    ///
    /// ```
    /// use evloop_thread_pool::{JobError, future::job_channel};
    ///
    /// let (promise, future) = job_channel::<u8, JobError>();
    /// assert!(!future.done());
    /// promise.complete(Ok(1));
    /// assert!(future.done());
    /// ```
    pub fn done(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) >= FINISHED
    }

    /// Whether the future was cancelled.
    ///
    /// ```
    /// use evloop_thread_pool::{JobError, future::job_channel};
    ///
    /// let (_promise, future) = job_channel::<u8, JobError>();
    /// future.cancel();
    /// assert!(future.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) == CANCELLED
    }

    /// Whether a worker is running the job right now.
    ///
    /// ```
    /// use evloop_thread_pool::{JobError, future::job_channel};
    ///
    /// let (promise, future) = job_channel::<u8, JobError>();
    /// promise.set_running_or_notify_cancel();
    /// assert!(future.running());
    /// ```
    pub fn running(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) == RUNNING
    }

    /// Blocks the current thread until the job is done and returns its result.
    ///
    /// # Panics
    ///
    /// If the result was already taken (by `poll` or `wait_timeout`).
    ///
    /// ```
    /// use evloop_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new();
    /// assert_eq!(pool.submit(|| "hi").unwrap().wait(), Ok("hi"));
    /// ```
    pub fn wait(self) -> Result<T, E> {
        self.yield_until_done();
        let mut slot = self.shared.lock();
        loop {
            if let Some(output) = take_output(&mut slot) {
                return output;
            }
            slot.blocked += 1;
            slot = self
                .shared
                .cond
                .wait(slot)
                .unwrap_or_else(|e| e.into_inner());
            slot.blocked -= 1;
        }
    }

    /// Blocks for at most `timeout`: returns `Some(result)` if the job finished in time, or `None`
    /// if the time ran out, leaving the future usable (wait again, await it, or cancel it).
    ///
    /// # Panics
    ///
    /// If the result was already taken.
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop_thread_pool::{JobError, future::job_channel};
    ///
    /// let (promise, mut future) = job_channel::<u8, JobError>();
    /// assert_eq!(future.wait_timeout(Duration::from_millis(1)), None);
    /// promise.complete(Ok(3));
    /// assert_eq!(future.wait_timeout(Duration::from_secs(1)), Some(Ok(3)));
    /// ```
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Result<T, E>> {
        let deadline = Instant::now().checked_add(timeout);
        if !timeout.is_zero() {
            self.yield_until_done();
        }
        let mut slot = self.shared.lock();
        loop {
            if let Some(output) = take_output(&mut slot) {
                return Some(output);
            }
            let left = match deadline {
                Some(deadline) => deadline.checked_duration_since(Instant::now())?,
                // A timeout too large to represent: wait as long as it takes.
                None => Duration::from_secs(u32::MAX.into()),
            };
            if left.is_zero() {
                return None;
            }
            slot.blocked += 1;
            slot = self
                .shared
                .cond
                .wait_timeout(slot, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            slot.blocked -= 1;
        }
    }

    /// Gives the time slice away a few times while the job is not done, before a caller
    /// blocks: short jobs finish within a few microseconds, and seeing that while still awake
    /// saves a futex wait here and a futex wake on the completing thread.
    fn yield_until_done(&self) {
        for _ in 0..WAIT_YIELD_ROUNDS {
            if self.done() {
                return;
            }
            std::thread::yield_now();
        }
    }

    /// Registers `callback` to run with the result when the future completes (finished or
    /// cancelled). If it is already done, `callback` runs at once on this thread; otherwise it
    /// runs on the completing thread (concurrent.futures semantics). Callbacks run in the order
    /// they were added; a panicking callback is reported on stderr and ignored.
    ///
    /// Callbacks run while the future's internal lock is held: keep them short and do not block
    /// in them. If the result was already taken by `poll`/`wait_timeout`, the callback is dropped
    /// without running (there is no result left to show it).
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use evloop_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new();
    /// let (tx, rx) = mpsc::channel();
    /// let future = pool.submit(|| 42).unwrap();
    /// future.add_done_callback(move |result| tx.send(*result.as_ref().unwrap()).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 42);
    /// ```
    pub fn add_done_callback<F>(&self, callback: F)
    where
        F: FnOnce(&Result<T, E>) + Send + 'static,
    {
        self.push_callback(Callback::Result(Box::new(callback)));
    }

    /// Calls `signal` once the future is done (at once if it already is), even if the result
    /// was already taken. For `as_completed`.
    pub(crate) fn on_done(&self, signal: Box<dyn FnOnce() + Send>) {
        self.push_callback(Callback::Signal(signal));
    }

    fn push_callback(&self, callback: Callback<T, E>) {
        let mut slot = self.shared.lock();
        if let Some(output) = slot.output.as_ref() {
            let outcome = catch_unwind(AssertUnwindSafe(|| match callback {
                Callback::Result(f) => f(output),
                Callback::Signal(f) => f(),
            }));
            if outcome.is_err() {
                eprintln!("evloop-thread-pool: a done callback panicked; ignored");
            }
        } else if slot.taken {
            if let Callback::Signal(f) = callback {
                drop(slot);
                f();
            }
        } else {
            slot.callbacks.push(callback);
        }
    }
}

fn take_output<T, E>(slot: &mut Slot<T, E>) -> Option<Result<T, E>> {
    if let Some(output) = slot.output.take() {
        slot.taken = true;
        return Some(output);
    }
    assert!(!slot.taken, "JobFuture result already taken");
    None
}

impl<T, E: JobErrorKind> Future for JobFuture<T, E> {
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.shared.lock();
        if let Some(output) = take_output(&mut slot) {
            return Poll::Ready(output);
        }
        // Re-polls by the same task are common; skip the clone (and its refcount traffic).
        match &slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T, E: JobErrorKind> fmt::Debug for JobFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobFuture")
            .field("state", &self.state())
            .finish()
    }
}

/// A wait ran out of time (Python's `TimeoutError`).
///
/// ```
/// use evloop_thread_pool::future::TimeoutError;
///
/// assert_eq!(TimeoutError.to_string(), "timed out");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out")]
pub struct TimeoutError;
