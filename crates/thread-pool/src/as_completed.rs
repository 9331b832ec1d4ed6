//! `as_completed`: futures in the order they finish.
//!
//! Each future gets an internal done signal that pushes its index onto a small queue; the
//! iterator pops from it, blocking on a condvar, and the async form parks a waker there instead.
//! So the same object serves blocking callers (Python's generator) and async ones (a stream-like
//! `next_async`), and yielding costs no polling of the pending futures.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::JobError;
use crate::future::{JobErrorKind, JobFuture, TimeoutError};

/// Indices of the futures that completed, in completion order.
struct Completions {
    state: Mutex<Ready>,
    cond: Condvar,
}

struct Ready {
    indices: VecDeque<usize>,
    waker: Option<Waker>,
    blocked: bool,
}

impl Completions {
    fn lock(&self) -> MutexGuard<'_, Ready> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, index: usize) {
        let mut ready = self.lock();
        ready.indices.push_back(index);
        let waker = ready.waker.take();
        let blocked = ready.blocked;
        drop(ready);
        if blocked {
            self.cond.notify_one();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Yields futures in the order they complete (Python's `concurrent.futures.as_completed`).
///
/// The iterator blocks in `next` until another future is done; each yielded future is done, so
/// its `wait()` returns at once. Futures whose result was already taken count as done. For async
/// code, [`AsCompleted::next_async`] waits without blocking the thread.
///
/// ```
/// use evloop_thread_pool::{ThreadPoolExecutor, future::as_completed};
///
/// let pool = ThreadPoolExecutor::new();
/// let futures: Vec<_> = (0..4).map(|i| pool.submit(move || i * 10).unwrap()).collect();
/// let mut results: Vec<i32> = as_completed(futures).map(|f| f.wait().unwrap()).collect();
/// results.sort();
/// assert_eq!(results, [0, 10, 20, 30]);
/// ```
pub fn as_completed<T, E, I>(futures: I) -> AsCompleted<T, E>
where
    E: JobErrorKind,
    I: IntoIterator<Item = JobFuture<T, E>>,
{
    let completions = Arc::new(Completions {
        state: Mutex::new(Ready {
            indices: VecDeque::new(),
            waker: None,
            blocked: false,
        }),
        cond: Condvar::new(),
    });
    let futures: Vec<Option<JobFuture<T, E>>> = futures
        .into_iter()
        .enumerate()
        .map(|(index, future)| {
            let completions = Arc::clone(&completions);
            future.on_done(Box::new(move || completions.push(index)));
            Some(future)
        })
        .collect();
    AsCompleted {
        remaining: futures.len(),
        futures,
        completions,
    }
}

/// The iterator returned by [`as_completed`].
pub struct AsCompleted<T, E: JobErrorKind = JobError> {
    futures: Vec<Option<JobFuture<T, E>>>,
    completions: Arc<Completions>,
    remaining: usize,
}

impl<T, E: JobErrorKind> AsCompleted<T, E> {
    /// Like `next`, but waits at most `timeout`; `Err(TimeoutError)` if nothing completed in time
    /// (the iterator stays usable), `Ok(None)` when every future has been yielded.
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop_thread_pool::{JobError, future::{as_completed, job_channel}};
    ///
    /// let (promise, future) = job_channel::<u8, JobError>();
    /// let mut it = as_completed([future]);
    /// assert!(it.next_timeout(Duration::from_millis(1)).is_err());
    /// promise.complete(Ok(1));
    /// let done = it.next_timeout(Duration::from_secs(5)).unwrap().unwrap();
    /// assert_eq!(done.wait(), Ok(1));
    /// assert!(it.next_timeout(Duration::from_secs(5)).unwrap().is_none());
    /// ```
    pub fn next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<JobFuture<T, E>>, TimeoutError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut ready = self.completions.lock();
        loop {
            if let Some(index) = ready.indices.pop_front() {
                drop(ready);
                return Ok(self.take(index));
            }
            let left = match deadline {
                Some(deadline) => deadline
                    .checked_duration_since(Instant::now())
                    .filter(|left| !left.is_zero())
                    .ok_or(TimeoutError)?,
                None => Duration::from_secs(u32::MAX.into()),
            };
            ready.blocked = true;
            ready = self
                .completions
                .cond
                .wait_timeout(ready, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            ready.blocked = false;
        }
    }

    /// Polls for the next completed future: the building block of [`next_async`]
    /// (`Poll::Ready(None)` once all were yielded).
    ///
    /// [`next_async`]: AsCompleted::next_async
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// use evloop_thread_pool::{JobError, future::{as_completed, job_channel}};
    ///
    /// let (promise, future) = job_channel::<u8, JobError>();
    /// let mut it = as_completed([future]);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(it.poll_next(&mut cx).is_pending());
    /// promise.complete(Ok(1));
    /// assert!(matches!(it.poll_next(&mut cx), Poll::Ready(Some(_))));
    /// assert!(matches!(it.poll_next(&mut cx), Poll::Ready(None)));
    /// ```
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<JobFuture<T, E>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let mut ready = self.completions.lock();
        match ready.indices.pop_front() {
            Some(index) => {
                drop(ready);
                Poll::Ready(self.take(index))
            }
            None => {
                match &ready.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => ready.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// Waits asynchronously for the next completed future (`None` once all were yielded).
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
    /// # }
    /// use evloop_thread_pool::{ThreadPoolExecutor, future::as_completed};
    ///
    /// let pool = ThreadPoolExecutor::new();
    /// let mut done = as_completed([pool.submit(|| 42).unwrap()]);
    /// let first = block_on(done.next_async()).unwrap();
    /// assert_eq!(first.wait(), Ok(42));
    /// assert!(block_on(done.next_async()).is_none());
    /// ```
    pub fn next_async(&mut self) -> NextCompleted<'_, T, E> {
        NextCompleted { inner: self }
    }

    fn take(&mut self, index: usize) -> Option<JobFuture<T, E>> {
        self.remaining -= 1;
        self.futures[index].take()
    }
}

impl<T, E: JobErrorKind> Iterator for AsCompleted<T, E> {
    type Item = JobFuture<T, E>;

    fn next(&mut self) -> Option<Self::Item> {
        // Every registered signal fires exactly once (a dropped promise still completes its
        // future), so this returns once per future.
        self.next_timeout(Duration::MAX).ok().flatten()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T, E: JobErrorKind> ExactSizeIterator for AsCompleted<T, E> {}

impl<T, E: JobErrorKind> fmt::Debug for AsCompleted<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.remaining)
            .finish()
    }
}

/// The future returned by [`AsCompleted::next_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct NextCompleted<'a, T, E: JobErrorKind = JobError> {
    inner: &'a mut AsCompleted<T, E>,
}

impl<T, E: JobErrorKind> Future for NextCompleted<'_, T, E> {
    type Output = Option<JobFuture<T, E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.poll_next(cx)
    }
}

impl<T, E: JobErrorKind> fmt::Debug for NextCompleted<'_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NextCompleted")
            .field("remaining", &self.inner.remaining)
            .finish()
    }
}
