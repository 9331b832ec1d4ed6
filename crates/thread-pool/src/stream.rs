//! The pools' result sequences as `futures_core::Stream`s, for async code: `as_completed` and
//! `map` are blocking iterators (Python's generators), which would stall an event loop, so each
//! has an `into_stream()` that waits without blocking. The stream types are separate from the
//! iterators on purpose: one type with both `Iterator::next` and `StreamExt::next` would make
//! every `.next()` ambiguous.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::JobError;
use crate::as_completed::AsCompleted;
use crate::future::{JobErrorKind, JobFuture};
use crate::map::Map;

/// [`as_completed`](crate::future::as_completed) as a `Stream`: each future as it completes.
/// Made by [`AsCompleted::into_stream`].
///
/// ```
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(waker);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// use futures_core::Stream;
/// use evloop_thread_pool::{ThreadPoolExecutor, future::as_completed};
///
/// let pool = ThreadPoolExecutor::new();
/// let mut done = as_completed((0..3).map(|i| pool.submit(move || i).unwrap())).into_stream();
/// let mut total = 0;
/// while let Some(future) = block_on(std::future::poll_fn(|cx| {
///     std::pin::Pin::new(&mut done).poll_next(cx)
/// })) {
///     total += future.wait().unwrap();
/// }
/// assert_eq!(total, 3);
/// ```
pub struct AsCompletedStream<T, E: JobErrorKind = JobError> {
    inner: AsCompleted<T, E>,
}

impl<T, E: JobErrorKind> AsCompleted<T, E> {
    /// The same sequence as a `Stream`, for async code.
    pub fn into_stream(self) -> AsCompletedStream<T, E> {
        AsCompletedStream { inner: self }
    }
}

impl<T, E: JobErrorKind> Stream for AsCompletedStream<T, E> {
    type Item = JobFuture<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        Iterator::size_hint(&self.inner)
    }
}

impl<T, E: JobErrorKind> fmt::Debug for AsCompletedStream<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AsCompletedStream")
            .field(&self.inner)
            .finish()
    }
}

/// [`ThreadPoolExecutor::map`](crate::ThreadPoolExecutor::map) as a `Stream`: the results in
/// input order, each awaited without blocking. Dropping it cancels the jobs that have not
/// started. Made by [`Map::into_stream`].
///
/// ```
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(waker);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// use futures_core::Stream;
/// use evloop_thread_pool::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::new();
/// let mut lengths = pool.map(|s: &str| s.len(), ["a", "bcd"]).unwrap().into_stream();
/// let mut next = || block_on(std::future::poll_fn(|cx| std::pin::Pin::new(&mut lengths).poll_next(cx)));
/// assert_eq!(next(), Some(Ok(1)));
/// assert_eq!(next(), Some(Ok(3)));
/// assert_eq!(next(), None);
/// ```
pub struct MapStream<R> {
    inner: Map<R>,
}

impl<R> Map<R> {
    /// The same results as a `Stream`, for async code.
    pub fn into_stream(self) -> MapStream<R> {
        MapStream { inner: self }
    }
}

impl<R> Stream for MapStream<R> {
    type Item = Result<R, JobError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(front) = self.inner.front_mut() else {
            return Poll::Ready(None);
        };
        let result = match Pin::new(front).poll(cx) {
            Poll::Ready(result) => result,
            Poll::Pending => return Poll::Pending,
        };
        self.inner.pop_front();
        Poll::Ready(Some(result))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        Iterator::size_hint(&self.inner)
    }
}

impl<R> fmt::Debug for MapStream<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MapStream").field(&self.inner).finish()
    }
}
