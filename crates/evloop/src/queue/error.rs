//! The queue's errors, named as asyncio's exceptions. asyncio raises them without a message, so
//! each displays as its name; the ones a put can meet hand the rejected item back.

use std::fmt;

/// `get_nowait` found the queue empty (asyncio's `QueueEmpty`).
///
/// ```
/// use evloop::queue::{GetNowaitError, Queue, QueueEmpty};
///
/// let queue: Queue<u8> = Queue::new(0);
/// assert_eq!(queue.get_nowait(), Err(GetNowaitError::Empty(QueueEmpty)));
/// assert_eq!(QueueEmpty.to_string(), "QueueEmpty");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("QueueEmpty")]
pub struct QueueEmpty;

/// `put_nowait` found the queue full (asyncio's `QueueFull`); the item is handed back.
///
/// ```
/// use evloop::queue::{PutNowaitError, Queue, QueueFull};
///
/// let queue = Queue::new(1);
/// queue.put_nowait("first").unwrap();
/// assert_eq!(queue.put_nowait("second"), Err(PutNowaitError::Full(QueueFull("second"))));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("QueueFull")]
pub struct QueueFull<T>(pub T);

/// The queue was shut down (asyncio's `QueueShutDown`, 3.13). A put hands its item back in it; a
/// get carries `()`.
///
/// ```
/// use evloop::queue::{GetNowaitError, PutNowaitError, Queue, QueueShutDown};
///
/// let queue = Queue::new(0);
/// queue.put_nowait(1).unwrap();
/// queue.shutdown(false);
/// assert_eq!(queue.put_nowait(2), Err(PutNowaitError::ShutDown(QueueShutDown(2))));
/// assert_eq!(queue.get_nowait(), Ok(1)); // items put before the shutdown still come out
/// assert_eq!(queue.get_nowait(), Err(GetNowaitError::ShutDown(QueueShutDown(()))));
/// assert_eq!(QueueShutDown(()).to_string(), "QueueShutDown");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("QueueShutDown")]
pub struct QueueShutDown<T = ()>(pub T);

/// Why [`get_nowait`](crate::queue::GenericQueue::get_nowait) gave no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GetNowaitError {
    /// The queue is empty.
    #[error(transparent)]
    Empty(#[from] QueueEmpty),
    /// The queue is shut down and empty, or was shut down with `immediate`.
    #[error(transparent)]
    ShutDown(#[from] QueueShutDown),
}

/// Why [`put_nowait`](crate::queue::GenericQueue::put_nowait) refused the item, which it hands
/// back.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PutNowaitError<T> {
    /// The queue is full.
    #[error(transparent)]
    Full(QueueFull<T>),
    /// The queue is shut down.
    #[error(transparent)]
    ShutDown(QueueShutDown<T>),
}

impl<T> PutNowaitError<T> {
    /// The refused item.
    pub fn into_inner(self) -> T {
        match self {
            PutNowaitError::Full(QueueFull(item))
            | PutNowaitError::ShutDown(QueueShutDown(item)) => item,
        }
    }
}

// Debug without `T: Debug`, so that `unwrap()` works for any item (the item is not shown).
impl<T> fmt::Debug for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueFull(..)")
    }
}

impl<T> fmt::Debug for QueueShutDown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueShutDown(..)")
    }
}

impl<T> fmt::Debug for PutNowaitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutNowaitError::Full(e) => f.debug_tuple("Full").field(e).finish(),
            PutNowaitError::ShutDown(e) => f.debug_tuple("ShutDown").field(e).finish(),
        }
    }
}
