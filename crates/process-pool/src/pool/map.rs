//! `map`: many items as chunked jobs, and the iterator of their results in input order.

use std::collections::VecDeque;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ProcessFuture, ProcessPool};
use crate::error::ProcessPoolError;
use crate::trampoline::{self, Trampoline, assert_zst};

impl ProcessPool {
    /// Runs `f` over `items` in chunks of `chunksize` items per job and returns the results in input
    /// order. Everything is submitted at once; dropping the iterator cancels the jobs that have not
    /// started. A failed chunk yields its error once and ends the iteration (Python re-raises).
    ///
    /// `chunksize == 0` is refused with "chunksize must be >= 1.".
    ///
    /// ```no_run
    /// # fn main() {
    /// # evloop_process_pool::init();
    /// let pool = evloop_process_pool::ProcessPool::new();
    /// let squares: Result<Vec<u64>, _> = pool.map(|x: u64| x * x, 0..10, 3).unwrap().collect();
    /// assert_eq!(squares.unwrap(), (0..10).map(|x| x * x).collect::<Vec<_>>());
    /// # }
    /// ```
    pub fn map<F, A, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: usize,
    ) -> Result<MapResults<R>, ProcessPoolError>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        const { assert_zst::<F>() };
        let _ = f;
        if chunksize == 0 {
            return Err(ProcessPoolError::InvalidArgument("chunksize must be >= 1."));
        }
        let entry: Trampoline = trampoline::chunk::<F, A, R>;
        let name = trampoline::chunk_name::<F, A, R>();
        let mut futures = VecDeque::new();
        let mut chunk = Vec::with_capacity(chunksize);
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            chunk.extend(items.by_ref().take(chunksize));
            match self.enqueue::<Vec<R>, Vec<A>>(entry, name, &chunk) {
                Ok(future) => futures.push_back(future),
                Err(e) => {
                    futures.iter().for_each(|f: &ProcessFuture<Vec<R>>| {
                        f.cancel();
                    });
                    return Err(e);
                }
            }
            chunk.clear();
        }
        Ok(MapResults {
            futures,
            current: Vec::new().into_iter(),
            failed: false,
        })
    }
}

/// The results of [`ProcessPool::map`], in input order.
///
/// ```no_run
/// # fn main() {
/// # evloop_process_pool::init();
/// let pool = evloop_process_pool::ProcessPool::new();
/// let mut results = pool.map(|x: i32| -x, [1, 2], 1).unwrap();
/// assert_eq!(results.next(), Some(Ok(-1)));
/// # }
/// ```
pub struct MapResults<R> {
    pub(crate) futures: VecDeque<ProcessFuture<Vec<R>>>,
    pub(crate) current: std::vec::IntoIter<R>,
    pub(crate) failed: bool,
}

impl<R> std::fmt::Debug for MapResults<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapResults")
            .field("chunks_left", &self.futures.len())
            .finish()
    }
}

impl<R> Iterator for MapResults<R> {
    type Item = Result<R, ProcessPoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(value) = self.current.next() {
                return Some(Ok(value));
            }
            if self.failed {
                return None;
            }
            match self.futures.pop_front()?.wait() {
                Ok(values) => self.current = values.into_iter(),
                Err(e) => {
                    self.failed = true;
                    self.futures.drain(..).for_each(|f| {
                        f.cancel();
                    });
                    return Some(Err(e));
                }
            }
        }
    }
}

impl<R> Drop for MapResults<R> {
    fn drop(&mut self) {
        for future in &self.futures {
            future.cancel();
        }
    }
}
