//! The iterator behind `ThreadPoolExecutor::map`.

use std::collections::VecDeque;
use std::fmt;

use crate::JobError;
use crate::future::JobFuture;

/// Results of [`ThreadPoolExecutor::map`](crate::ThreadPoolExecutor::map) in input order.
///
/// `next` blocks until the next result in order is ready. Dropping the iterator cancels the jobs
/// that have not started (as closing Python's `map` generator does).
///
/// ```
/// use evloop_thread_pool::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::new();
/// let mut results = pool.map(|x: i32| x + 1, [1, 2, 3]).unwrap();
/// assert_eq!(results.len(), 3);
/// assert_eq!(results.next(), Some(Ok(2)));
/// ```
pub struct Map<R> {
    futures: VecDeque<JobFuture<R>>,
}

impl<R> Map<R> {
    pub(crate) fn new(futures: VecDeque<JobFuture<R>>) -> Self {
        Map { futures }
    }

    /// The job whose result comes next (for the stream form).
    pub(crate) fn front_mut(&mut self) -> Option<&mut JobFuture<R>> {
        self.futures.front_mut()
    }

    /// Forgets the front job once its result was taken.
    pub(crate) fn pop_front(&mut self) {
        self.futures.pop_front();
    }
}

impl<R> Iterator for Map<R> {
    type Item = Result<R, JobError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.futures.pop_front().map(JobFuture::wait)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.futures.len(), Some(self.futures.len()))
    }
}

impl<R> ExactSizeIterator for Map<R> {}

impl<R> Drop for Map<R> {
    fn drop(&mut self) {
        for future in &self.futures {
            future.cancel();
        }
    }
}

impl<R> fmt::Debug for Map<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("remaining", &self.futures.len())
            .finish()
    }
}
