//! The one error type of the pool.
//!
//! Every way a job or a call can fail is a variant here, and where `concurrent.futures` has a text for
//! the same failure the `Display` output is that text, byte for byte, so logs read the same as in Python.

use std::fmt;

/// Text of [`ProcessPoolError::BrokenProcessPool`] for the futures that were pending or running when a
/// worker died (`concurrent.futures.process`, `_ExecutorManagerThread._terminate_broken`).
pub const TERMINATED_ABRUPTLY: &str = "A process in the process pool was terminated abruptly while the future was running or pending.";

/// Text of [`ProcessPoolError::BrokenProcessPool`] for a `submit` on a pool that is already broken
/// (`ProcessPoolExecutor._broken`).
pub const POOL_NOT_USABLE: &str =
    "A child process terminated abruptly, the process pool is not usable anymore";

/// Why a pool is broken: the Python text plus, when known, the cause (Python's `__cause__`).
///
/// ```
/// use evloop_process_pool::{Broken, TERMINATED_ABRUPTLY};
/// let broken = Broken::new(TERMINATED_ABRUPTLY, Some("initializer failed".into()));
/// assert_eq!(broken.to_string(), format!("{TERMINATED_ABRUPTLY} (initializer failed)"));
/// assert_eq!(broken.message(), TERMINATED_ABRUPTLY);
/// assert_eq!(broken.cause(), Some("initializer failed"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    message: &'static str,
    cause: Option<String>,
}

impl Broken {
    /// A broken-pool report with `message` (one of the two Python texts) and an optional cause.
    ///
    /// ```
    /// use evloop_process_pool::{Broken, POOL_NOT_USABLE};
    /// assert_eq!(Broken::new(POOL_NOT_USABLE, None).cause(), None);
    /// ```
    pub fn new(message: &'static str, cause: Option<String>) -> Self {
        Self { message, cause }
    }

    /// The Python text of this report.
    ///
    /// ```
    /// use evloop_process_pool::{Broken, POOL_NOT_USABLE};
    /// assert_eq!(Broken::new(POOL_NOT_USABLE, None).message(), POOL_NOT_USABLE);
    /// ```
    pub fn message(&self) -> &'static str {
        self.message
    }

    /// What broke the pool, when known: the initializer's panic message, the exit status of the worker
    /// that died, or an I/O error.
    ///
    /// ```
    /// use evloop_process_pool::{Broken, TERMINATED_ABRUPTLY};
    /// let b = Broken::new(TERMINATED_ABRUPTLY, Some("killed by signal 9".into()));
    /// assert_eq!(b.cause(), Some("killed by signal 9"));
    /// ```
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }
}

/// The Python text, then the cause in parentheses when known (Python shows it as the chained
/// `__cause__`; a Rust error has one line to say it).
impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)?;
        match &self.cause {
            Some(cause) => write!(f, " ({cause})"),
            None => Ok(()),
        }
    }
}

/// Everything that can go wrong with a [`ProcessPool`](crate::ProcessPool) or one of its jobs.
///
/// ```
/// use evloop_process_pool::ProcessPoolError;
/// assert_eq!(
///     ProcessPoolError::Shutdown.to_string(),
///     "cannot schedule new futures after shutdown"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessPoolError {
    /// A builder or `map` argument was out of range (Python's `ValueError`), for example
    /// "max_workers must be greater than 0".
    #[error("{0}")]
    InvalidArgument(&'static str),
    /// `submit` or `map` after `shutdown` (Python's `RuntimeError`).
    #[error("cannot schedule new futures after shutdown")]
    Shutdown,
    /// A worker process died abruptly (SIGKILL, `abort`, `process::exit`, a failing initializer):
    /// Python's `BrokenProcessPool`.
    #[error("{0}")]
    BrokenProcessPool(Broken),
    /// The job panicked in the worker; the text is the panic message. The worker survives.
    #[error("{0}")]
    Panicked(String),
    /// The argument or the result could not be serialized or deserialized (Python's pickling errors).
    /// Only the one job fails.
    #[error("{0}")]
    Serialization(String),
    /// The job was cancelled before it started (`concurrent.futures.CancelledError`, whose text is
    /// empty).
    #[error("")]
    Cancelled,
    /// The future's promise was dropped without a result; the pool never does this, it is here for
    /// the shared future type.
    #[error("the job was abandoned without a result")]
    Abandoned,
    /// A worker process could not be started.
    #[error("cannot start a worker process: {0}")]
    Spawn(String),
    /// A pool was built in a process started as a pool worker: its `main` creates a pool before
    /// calling [`init`](crate::init), so every worker would start workers of its own.
    #[error(
        "this process was started as a process-pool worker, but its main creates a pool before \
         calling evloop_process_pool::init(): call init() first thing in main, before anything \
         that creates a pool (evloop::run() calls it for you)"
    )]
    InitMissing,
}

impl From<evloop_thread_pool::future::JobCancelled> for ProcessPoolError {
    fn from(_: evloop_thread_pool::future::JobCancelled) -> Self {
        ProcessPoolError::Cancelled
    }
}

impl From<evloop_thread_pool::future::JobAbandoned> for ProcessPoolError {
    fn from(_: evloop_thread_pool::future::JobAbandoned) -> Self {
        ProcessPoolError::Abandoned
    }
}
