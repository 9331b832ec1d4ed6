//! [`ProcessPool::map`](crate::ProcessPool::map)'s results as a `futures_core::Stream`: the
//! iterator blocks on each chunk (Python's generator), which would stall an event loop; the
//! stream waits without blocking. A separate type, so that `.next()` is never ambiguous between
//! `Iterator` and `StreamExt`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::{MapResults, ProcessPoolError};

/// The results of [`ProcessPool::map`](crate::ProcessPool::map) in input order, as a `Stream`.
/// The first error ends it and cancels the chunks that have not started; dropping it cancels
/// them too. Made by [`MapResults::into_stream`].
///
/// ```no_run
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(waker);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// # fn main() {
/// # evloop_process_pool::init();
/// use futures_core::Stream;
///
/// let pool = evloop_process_pool::ProcessPool::new();
/// let mut squares = pool.map(|x: u64| x * x, 0..4, 2).unwrap().into_stream();
/// let mut next = || block_on(std::future::poll_fn(|cx| std::pin::Pin::new(&mut squares).poll_next(cx)));
/// assert_eq!(next(), Some(Ok(0)));
/// assert_eq!(next(), Some(Ok(1)));
/// # }
/// ```
pub struct MapStream<R> {
    inner: MapResults<R>,
}

impl<R> MapResults<R> {
    /// The same results as a `Stream`, for async code.
    pub fn into_stream(self) -> MapStream<R> {
        MapStream { inner: self }
    }
}

// Nothing in it is ever pinned (results are moved out, futures are `Unpin`), whatever `R` is.
impl<R> Unpin for MapStream<R> {}

impl<R> Stream for MapStream<R> {
    type Item = Result<R, ProcessPoolError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let map = &mut self.inner;
        loop {
            if let Some(value) = map.current.next() {
                return Poll::Ready(Some(Ok(value)));
            }
            if map.failed {
                return Poll::Ready(None);
            }
            let Some(chunk) = map.futures.front_mut() else {
                return Poll::Ready(None);
            };
            let outcome = match Pin::new(chunk).poll(cx) {
                Poll::Ready(outcome) => outcome,
                Poll::Pending => return Poll::Pending,
            };
            map.futures.pop_front();
            match outcome {
                Ok(values) => map.current = values.into_iter(),
                Err(error) => {
                    map.failed = true;
                    for rest in map.futures.drain(..) {
                        rest.cancel();
                    }
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
    }
}

impl<R> fmt::Debug for MapStream<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MapStream").field(&self.inner).finish()
    }
}
