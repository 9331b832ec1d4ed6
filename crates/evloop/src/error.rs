//! The facade's error types: how a task, a future or `run()` can end other than with a value.

use std::fmt;
use std::sync::Arc;

pub use evloop_reactor::{LoopError, Panic};

/// A task or future was cancelled (asyncio's `CancelledError`), with the message given to
/// `cancel_with`, if any.
///
/// ```
/// use evloop::Cancelled;
/// assert_eq!(Cancelled::new().to_string(), "cancelled");
/// assert_eq!(Cancelled::with_message("bye").to_string(), "cancelled: bye");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cancelled {
    message: Option<String>,
}

impl Cancelled {
    /// A cancellation without a message.
    pub fn new() -> Cancelled {
        Cancelled { message: None }
    }

    /// A cancellation carrying `message`.
    pub fn with_message(message: impl Into<String>) -> Cancelled {
        Cancelled {
            message: Some(message.into()),
        }
    }

    /// The message given to `cancel_with`, if any.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
}

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(message) => write!(f, "cancelled: {message}"),
            None => f.write_str("cancelled"),
        }
    }
}

impl std::error::Error for Cancelled {}

/// Why a task produced no value: it was cancelled, or it panicked.
///
/// (A task whose future returns `Err(..)` did produce a value: that `Result` is its output.)
///
/// ```
/// use evloop::{Cancelled, Panic, TaskError};
/// assert!(TaskError::Cancelled(Cancelled::new()).is_cancelled());
/// assert_eq!(TaskError::Panicked(Panic::new("boom")).to_string(), "task panicked: boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The task was cancelled before it finished.
    #[error("{0}")]
    Cancelled(Cancelled),
    /// The task's future panicked; the panic was caught and the loop went on.
    #[error("task panicked: {}", .0.message())]
    Panicked(Panic),
    /// The task was awaited from another loop than its own (asyncio's "... attached to a
    /// different loop"): it can only make progress on its own loop.
    #[error("{0}")]
    DifferentLoop(String),
}

impl TaskError {
    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled(_))
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, TaskError::Panicked(_))
    }
}

impl From<Cancelled> for TaskError {
    fn from(cancelled: Cancelled) -> TaskError {
        TaskError::Cancelled(cancelled)
    }
}

/// A loop future's state did not allow the call (asyncio's `InvalidStateError`, with its texts).
///
/// ```
/// use evloop::InvalidState;
/// assert_eq!(InvalidState::ResultNotSet.to_string(), "Result is not set.");
/// assert_eq!(InvalidState::AlreadyDone.to_string(), "invalid state");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidState {
    /// The result was asked for before the future finished.
    #[error("Result is not set.")]
    ResultNotSet,
    /// A result or error was set on a future that is already done.
    #[error("invalid state")]
    AlreadyDone,
}

/// How a loop future ([`LoopFuture`](crate::LoopFuture)) can end other than with a value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FutureError {
    /// It was cancelled.
    #[error("{0}")]
    Cancelled(Cancelled),
    /// An error was set on it with `set_error`. Shared (every awaiter gets a clone) and
    /// `Send + Sync`, so a `FutureError` goes into `anyhow::Error` or across threads.
    #[error("{0}")]
    Failed(Arc<dyn std::error::Error + Send + Sync>),
    /// Its result was asked for too early.
    #[error("{0}")]
    InvalidState(InvalidState),
    /// It was awaited from another loop than its own (asyncio's "... attached to a different
    /// loop"); only its own loop's callbacks can complete it.
    #[error("{0}")]
    DifferentLoop(String),
}

/// The deadline of a [`timeout`](crate::timeout) passed before the future finished (asyncio's
/// `TimeoutError`); the future was dropped before this error was returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out")]
pub struct TimeoutError;

/// Why [`run`](crate::run), a [`Runner`](crate::Runner) or
/// [`run_until_complete`](crate::LoopExt::run_until_complete) gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The loop refused (closed, already running, another loop running).
    #[error(transparent)]
    Loop(#[from] LoopError),
    /// `stop()` ended the loop before the main future finished (asyncio B3).
    #[error("Event loop stopped before Future completed.")]
    StoppedBeforeComplete,
    /// `run()` was called from inside a running loop (asyncio G1, in evloop's words).
    #[error("evloop::run() cannot be called from a running event loop")]
    NestedRun,
    /// `Runner::run` was called from inside a running loop (asyncio G2).
    #[error("Runner.run() cannot be called from a running event loop")]
    NestedRunnerRun,
    /// The runner was closed (asyncio G2).
    #[error("Runner is closed")]
    RunnerClosed,
    /// The main task was cancelled or panicked.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The event loop could not be created (the reactor's system calls failed).
    #[error("cannot create the event loop: {0}")]
    LoopCreation(String),
    /// Ctrl-C (SIGINT) interrupted the run: asyncio's `KeyboardInterrupt`.
    #[error("interrupted (KeyboardInterrupt)")]
    Interrupted,
}

/// Why [`run_in_executor`](crate::ExecutorExt::run_in_executor),
/// [`run_in_process_pool`](crate::ExecutorExt::run_in_process_pool) or
/// [`to_thread`](crate::to_thread) gave no value. The texts are asyncio's and
/// `concurrent.futures`'.
///
/// ```
/// use evloop::{ExecutorError, LoopError};
///
/// assert_eq!(
///     ExecutorError::ExecutorShutdown.to_string(),
///     "Executor shutdown has been called"
/// );
/// assert_eq!(ExecutorError::from(LoopError::Closed).to_string(), "Event loop is closed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExecutorError {
    /// The loop refused: it is closed, or (for `to_thread`) there is no running loop.
    #[error(transparent)]
    Loop(#[from] LoopError),
    /// The default executor was asked for after `shutdown_default_executor` (asyncio's
    /// `RuntimeError`, also after `set_default_executor`).
    #[error("Executor shutdown has been called")]
    ExecutorShutdown,
    /// The thread pool refused the job, or (for `to_thread`) the job was cancelled or panicked.
    #[cfg(feature = "thread-pool")]
    #[error(transparent)]
    Job(#[from] evloop_thread_pool::JobError),
    /// The process pool refused the job.
    #[cfg(feature = "process-pool")]
    #[error(transparent)]
    Process(#[from] evloop_process_pool::ProcessPoolError),
    /// A user [`Executor`](crate::Executor) refused the job, for the reason given.
    #[error("{0}")]
    Rejected(String),
}
