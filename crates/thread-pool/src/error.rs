//! The pool's error type.
//!
//! One enum carries every way a pool job can fail, so a caller matches on a single type whether the
//! failure came from `submit` (the pool refused the job) or from the job's future (the job was
//! cancelled, panicked, or was dropped by a broken pool). The `Display` texts are Python's
//! `concurrent.futures` messages where Python has one.

use crate::future::{JobAbandoned, JobCancelled};

/// Why a thread-pool job did not produce a value.
///
/// ```
/// use evloop_thread_pool::JobError;
///
/// assert_eq!(
///     JobError::Shutdown.to_string(),
///     "cannot schedule new futures after shutdown"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The job was cancelled before it started (`concurrent.futures.CancelledError`).
    #[error("cancelled")]
    Cancelled,
    /// The job panicked; the payload is the panic message (or a placeholder for a non-string
    /// payload). The worker thread survives.
    #[error("job panicked: {0}")]
    Panicked(String),
    /// `submit` was called after `shutdown` (Python's `RuntimeError`).
    #[error("cannot schedule new futures after shutdown")]
    Shutdown,
    /// A worker's initializer failed; the pool refuses new work and fails queued jobs
    /// (Python's `BrokenThreadPool`).
    #[error("A thread initializer failed, the thread pool is not usable anymore")]
    BrokenPool,
    /// The job was dropped without running (for example the OS refused to start a worker thread).
    #[error("the job was dropped before it completed")]
    Abandoned,
}

impl From<JobCancelled> for JobError {
    fn from(_: JobCancelled) -> Self {
        JobError::Cancelled
    }
}

impl From<JobAbandoned> for JobError {
    fn from(_: JobAbandoned) -> Self {
        JobError::Abandoned
    }
}

/// Why a [`ThreadPoolBuilder`](crate::ThreadPoolBuilder) could not build a pool.
///
/// ```
/// use evloop_thread_pool::{BuildError, ThreadPoolExecutor};
///
/// let err = ThreadPoolExecutor::builder().max_workers(0).build().unwrap_err();
/// assert_eq!(err, BuildError::ZeroWorkers);
/// assert_eq!(err.to_string(), "max_workers must be greater than 0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_workers(0)` (Python's `ValueError`).
    #[error("max_workers must be greater than 0")]
    ZeroWorkers,
}
