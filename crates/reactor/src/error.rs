//! The loop's lifecycle errors, with asyncio's exact messages.

use std::any::Any;

/// Why a loop operation was refused. The messages are asyncio's.
///
/// ```
/// use evloop_reactor::LoopError;
/// assert_eq!(LoopError::Closed.to_string(), "Event loop is closed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoopError {
    /// The loop was closed; nothing can be scheduled on it any more.
    #[error("Event loop is closed")]
    Closed,
    /// `run_forever` (or another `run_*`) was called on a loop that is already running.
    #[error("This event loop is already running")]
    AlreadyRunning,
    /// Another loop is already running on this thread; loops do not nest.
    #[error("Cannot run the event loop while another loop is running")]
    AnotherLoopRunning,
    /// `close()` was called while the loop runs (for example from inside a callback).
    #[error("Cannot close a running event loop")]
    CloseRunning,
    /// An operation that needs the running loop was called outside of one.
    #[error("no running event loop")]
    NoRunningLoop,
    /// Polling the reactor failed this many times in a row that the run gave up (the errno of
    /// the last failure): asyncio's `run_forever` raises the selector's `OSError`.
    #[error("polling the reactor keeps failing: {}", std::io::Error::from_raw_os_error(*.0))]
    ReactorFailed(i32),
}

/// A caught panic, carried as an error value: its message, as `panic!` formatted it.
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("nope")).unwrap_err();
/// let panic = evloop_reactor::Panic::from_payload(payload);
/// assert_eq!(panic.message(), "nope");
/// assert_eq!(panic.to_string(), "panic: nope");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("panic: {message}")]
pub struct Panic {
    message: String,
}

impl Panic {
    /// Extracts the message from a payload returned by `catch_unwind`.
    pub fn from_payload(payload: Box<dyn Any + Send>) -> Panic {
        let message = match payload.downcast::<String>() {
            Ok(text) => *text,
            Err(payload) => match payload.downcast::<&'static str>() {
                Ok(text) => (*text).to_owned(),
                Err(_) => "Box<dyn Any>".to_owned(),
            },
        };
        Panic { message }
    }

    /// A panic error with the given message.
    pub fn new(message: impl Into<String>) -> Panic {
        Panic {
            message: message.into(),
        }
    }

    /// The panic's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}
