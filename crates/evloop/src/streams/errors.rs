//! The streams' errors, with asyncio's texts.

use std::fmt;
use std::io;

/// EOF came before the bytes asked for (asyncio's `IncompleteReadError`); `partial` holds
/// what was read, and is no longer buffered.
///
/// ```
/// let e = evloop::streams::IncompleteReadError { partial: b"ab".to_vec(), expected: Some(5) };
/// assert_eq!(e.to_string(), "2 bytes read on a total of 5 expected bytes");
/// let e = evloop::streams::IncompleteReadError { partial: Vec::new(), expected: None };
/// assert_eq!(e.to_string(), "0 bytes read on a total of None expected bytes");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteReadError {
    /// The bytes read before EOF.
    pub partial: Vec<u8>,
    /// How many were expected (`None` for `readuntil`).
    pub expected: Option<usize>,
}

impl fmt::Display for IncompleteReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expected {
            Some(n) => write!(
                f,
                "{} bytes read on a total of {n} expected bytes",
                self.partial.len()
            ),
            None => write!(
                f,
                "{} bytes read on a total of None expected bytes",
                self.partial.len()
            ),
        }
    }
}

impl std::error::Error for IncompleteReadError {}

/// A separator was not found within the limit (asyncio's `LimitOverrunError`); the data stays
/// buffered, and `consumed` says how much of it was searched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LimitOverrunError {
    /// asyncio's message.
    pub message: String,
    /// How many bytes were looked at.
    pub consumed: usize,
}

/// Why a stream read, drain or close failed.
///
/// ```
/// use evloop::streams::StreamError;
/// let e = StreamError::Value("Separator should be at least one-byte string".into());
/// assert_eq!(e.to_string(), "Separator should be at least one-byte string");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// EOF before the bytes asked for.
    #[error(transparent)]
    IncompleteRead(#[from] IncompleteReadError),
    /// The separator was not found within the limit.
    #[error(transparent)]
    LimitOverrun(#[from] LimitOverrunError),
    /// Bad argument, or `readline` past the limit (asyncio's `ValueError`).
    #[error("{0}")]
    Value(String),
    /// Misuse, such as two tasks reading at once (asyncio's `RuntimeError`).
    #[error("{0}")]
    Runtime(String),
    /// The connection failed (reset, lost: asyncio's `ConnectionResetError` and kin).
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<StreamError> for io::Error {
    fn from(error: StreamError) -> io::Error {
        match error {
            StreamError::Io(error) => error,
            StreamError::IncompleteRead(e) => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}
