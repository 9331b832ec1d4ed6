//! A work-stealing thread pool with Python's `concurrent.futures.ThreadPoolExecutor` semantics,
//! whose futures can be awaited from any async runtime or waited on from plain threads.
//!
//! - [`ThreadPoolExecutor`]: lazy thread start (a thread starts only when no idle worker can
//!   take a job), `submit`, `map`, Python's `shutdown(wait, cancel_futures)`, a bounded
//!   [`shutdown_timeout`](ThreadPoolExecutor::shutdown_timeout), per-thread initializer, idle
//!   keep-alive. Panics in jobs are caught and reported through the job's future.
//! - [`JobFuture`] (in [`future`]): a `std::future::Future` that also offers blocking `wait`,
//!   `cancel`, done callbacks and [`as_completed`]. The [`future`] module
//!   is generic over the error type so other pools (the process pool) reuse it.
//!
//! # Awaiting from an event loop
//!
//! A [`JobFuture`] stores the waker of its last poll and calls `Waker::wake` exactly once, on
//! the completing worker thread, after releasing its lock; the worker never spins or blocks on
//! the consumer. A loop whose remote waker batches (an enqueue while the loop runs) therefore
//! pays one cheap wake per completion, however many arrive together. Dropping a `JobFuture` does
//! not cancel the job (Python's semantics); a loop-side wrapper calls
//! [`JobFuture::cancel`] from its own `Drop`, which succeeds only if the job has not started.
//!
//! # Scheduling
//!
//! Submissions go to a crossbeam `Injector`; workers take small batches into their own deques
//! and steal from each other. A worker that runs out of work declares itself idle, yields a few
//! times, then sleeps on a condition variable; a submit wakes one idle worker or, if none is
//! idle, starts a thread (up to `max_workers`) that holds the oldest queued job from the start,
//! so a `shutdown(cancel_futures = true)` right after cannot cancel it (Python's `submit` returns
//! after `Thread.start()`, once the thread runs). See the `sleep` module for why no wake-up is
//! lost.
//!
//! ```
//! use evloop_thread_pool::ThreadPoolExecutor;
//!
//! let pool = ThreadPoolExecutor::builder().max_workers(2).build().unwrap();
//! let a = pool.submit(|| 20).unwrap();
//! let b = pool.submit(|| 22).unwrap();
//! assert_eq!(a.wait().unwrap() + b.wait().unwrap(), 42);
//! ```

mod as_completed;
mod builder;
mod error;
pub mod future;
mod job;
mod map;
mod pool;
mod sleep;
mod stream;
mod sync;
mod worker;

pub use builder::{ThreadPoolBuilder, default_max_workers, process_cpu_count};
pub use error::{BuildError, JobError};
pub use future::{JobFuture, JobPromise, as_completed, job_channel};
pub use map::Map;
pub use pool::ThreadPoolExecutor;
pub use stream::{AsCompletedStream, MapStream};

// The README's example runs as a doc test too.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
