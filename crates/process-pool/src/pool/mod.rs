//! The pool: a queue of encoded jobs, worker processes that take them, and one reader thread per
//! worker that completes the futures.
//!
//! There is no manager thread. Whoever changes the state (a `submit`, or a reader that has just
//! received results) "pumps" it: moves queued jobs to workers with room, starting workers lazily up
//! to `max_workers`. Frames are written outside the state lock, under a per-worker write lock, and
//! futures are completed outside the state lock too, so a done-callback may submit again.
//!
//! A worker takes a second and further jobs before the first is answered (pipelining), which is what
//! makes many jobs in flight cheap: the worker finds the next job already buffered and answers a
//! burst with one `write`. Pipelining is bounded by [`PIPELINE_DEPTH`](dispatch::PIPELINE_DEPTH)
//! jobs and [`PIPELINE_BYTES`](dispatch::PIPELINE_BYTES) unread bytes per worker; the byte bound
//! keeps every write after the first small enough for the socket buffer, so a parent thread
//! writing to a worker can never wait on that worker while the worker waits on the parent. A job
//! sent to a worker is *running* in the `concurrent.futures` sense (it can no longer be
//! cancelled), like a job in Python's call queue.
//!
//! The files: [`builder`] checks the settings and makes the pool; [`map`] chunks `map`'s items
//! into jobs and yields their results in order; [`dispatch`] is the machinery (the queue, the
//! workers' records, the pump, the reader threads and how a worker's end is judged); this file
//! is the public face and the shutdown.

mod builder;
mod dispatch;
mod map;

use std::sync::Arc;
use std::time::{Duration, Instant};

use evloop_thread_pool::future::{JobFuture, TimeoutError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ProcessPoolError;
use crate::trampoline::{self, Trampoline, assert_zst};

pub use builder::ProcessPoolBuilder;
use dispatch::{Outbox, PoolShared, READER_OF};
pub use map::MapResults;

/// The future of one process-pool job: the shared `concurrent.futures`-style future of
/// `evloop-thread-pool`, with this crate's error.
pub type ProcessFuture<T> = JobFuture<T, ProcessPoolError>;

/// A pool of worker processes running plain Rust functions: `concurrent.futures.ProcessPoolExecutor`.
///
/// Workers are fresh executions of this program, so the program must call [`init`](crate::init)
/// first thing in `main` (see the crate docs). Dropping the pool is `shutdown(true, false)`.
///
/// ```no_run
/// use evloop_process_pool::ProcessPool;
///
/// fn square(x: u64) -> u64 { x * x }
///
/// fn main() {
///     evloop_process_pool::init(); // the Rust form of `if __name__ == '__main__'`
///     let pool = ProcessPool::new();
///     assert_eq!(pool.submit(square, 7).unwrap().wait(), Ok(49));
/// }
/// ```
pub struct ProcessPool {
    shared: Arc<PoolShared>,
}

impl std::fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPool")
            .field("max_workers", &self.shared.max_workers)
            .field("workers", &self.worker_pids())
            .finish()
    }
}

impl Default for ProcessPool {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessPool {
    /// A pool with the default settings: one worker per CPU, no initializer, workers never retire.
    ///
    /// ```
    /// let pool = evloop_process_pool::ProcessPool::new();
    /// assert!(pool.max_workers() >= 1);
    /// ```
    pub fn new() -> Self {
        ProcessPoolBuilder::default()
            .build()
            .expect("the default settings are valid")
    }

    /// Starts configuring a pool.
    ///
    /// ```
    /// let pool = evloop_process_pool::ProcessPool::builder().max_workers(3).build().unwrap();
    /// assert_eq!(pool.max_workers(), 3);
    /// ```
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder::default()
    }

    /// The configured maximum number of worker processes.
    ///
    /// ```
    /// assert!(evloop_process_pool::ProcessPool::new().max_workers() >= 1);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.shared.max_workers
    }

    /// The process ids of the workers alive now (Python's `_processes` keys), for diagnostics.
    ///
    /// ```
    /// assert!(evloop_process_pool::ProcessPool::new().worker_pids().is_empty());
    /// ```
    pub fn worker_pids(&self) -> Vec<u32> {
        let st = self.shared.lock();
        st.workers
            .iter()
            .filter(|w| w.child.is_some())
            .map(|w| w.pid)
            .collect()
    }

    /// Schedules `f(arg)` in a worker process and returns its future.
    ///
    /// `f` must be a plain function: a fn item or a closure that captures nothing (anything else
    /// does not compile). `arg` and the result travel through serde and postcard; a value that
    /// fails to encode or decode fails this job only, with [`ProcessPoolError::Serialization`].
    /// A panic in `f` fails the job with [`ProcessPoolError::Panicked`] and the worker lives on.
    ///
    /// Errors: [`ProcessPoolError::Shutdown`] after `shutdown`, or
    /// [`ProcessPoolError::BrokenProcessPool`] once a worker has died abruptly.
    ///
    /// ```no_run
    /// # fn main() {
    /// # evloop_process_pool::init();
    /// let pool = evloop_process_pool::ProcessPool::new();
    /// let future = pool.submit(|s: String| s.len(), "four".to_string()).unwrap();
    /// assert_eq!(future.wait(), Ok(4));
    /// # }
    /// ```
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> Result<ProcessFuture<R>, ProcessPoolError>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        const { assert_zst::<F>() };
        let _ = f;
        let entry: Trampoline = trampoline::job::<F, A, R>;
        self.enqueue(entry, trampoline::job_name::<F, A, R>(), &arg)
    }

    /// Python's `shutdown(wait, cancel_futures=...)`: refuses new jobs; with `cancel_futures`
    /// cancels the jobs no worker has taken yet (taken ones finish); the rest still run. With `wait`
    /// it returns once every worker has exited and been reaped. Idempotent.
    ///
    /// ```
    /// let pool = evloop_process_pool::ProcessPool::new();
    /// pool.shutdown(true, false);
    /// pool.shutdown(true, true);
    /// assert!(pool.worker_pids().is_empty());
    /// ```
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.begin_shutdown(cancel_futures);
        if wait {
            let _ = self.join(None);
        }
    }

    /// `shutdown(wait = true)` bounded by `timeout`: `Err(TimeoutError)` if workers were still running
    /// then. They keep running their taken jobs and are reaped when they exit.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = evloop_process_pool::ProcessPool::new();
    /// assert!(pool.shutdown_timeout(Duration::from_secs(5)).is_ok());
    /// ```
    pub fn shutdown_timeout(&self, timeout: Duration) -> Result<(), TimeoutError> {
        self.begin_shutdown(false);
        self.join(Instant::now().checked_add(timeout))
    }

    fn begin_shutdown(&self, cancel_futures: bool) {
        let mut cancelled = Vec::new();
        let mut outbox = Outbox::default();
        {
            let mut st = self.shared.lock();
            st.shutdown = true;
            if cancel_futures {
                cancelled.extend(st.queue.drain(..).map(|q| q.job));
            }
            self.shared.pump(&mut st, &mut outbox);
            PoolShared::close_idle(&mut st);
        }
        outbox.flush();
        cancelled.into_iter().for_each(|job| job.cancel());
    }

    fn join(&self, deadline: Option<Instant>) -> Result<(), TimeoutError> {
        // A done callback on one of our reader threads that drops the pool: that reader reaps
        // its worker only after the callback returns, so wait for the others only.
        let on_reader = READER_OF.with(|r| r.get()) == Arc::as_ptr(&self.shared) as usize;
        let allowed = usize::from(on_reader);
        let mut st = self.shared.lock();
        while st.live > allowed {
            st = match deadline {
                None => self
                    .shared
                    .reaped
                    .wait(st)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline
                        .checked_duration_since(Instant::now())
                        .ok_or(TimeoutError)?;
                    self.shared
                        .reaped
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        let me = std::thread::current().id();
        let readers = std::mem::take(&mut st.readers);
        drop(st);
        // Every other process is reaped, so each other reader is past its last use of the
        // state; our own thread (if we are a reader) finishes by itself.
        readers
            .into_iter()
            .filter(|r| r.thread().id() != me)
            .for_each(|r| {
                let _ = r.join();
            });
        Ok(())
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}
