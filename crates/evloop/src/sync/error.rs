//! The primitives' errors, named and worded as asyncio's.

/// A bad argument or an over-count (asyncio's `ValueError`, with its texts).
///
/// ```
/// use evloop::sync::ValueError;
/// assert_eq!(
///     ValueError::TaskDoneTooManyTimes.to_string(),
///     "task_done() called too many times"
/// );
/// assert_eq!(
///     ValueError::ReleasedTooManyTimes.to_string(),
///     "BoundedSemaphore released too many times"
/// );
/// assert_eq!(ValueError::NoParties.to_string(), "parties must be > 0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// `Queue::task_done` was called more times than items were put.
    #[error("task_done() called too many times")]
    TaskDoneTooManyTimes,
    /// `BoundedSemaphore::release` would raise the count above its initial value.
    #[error("BoundedSemaphore released too many times")]
    ReleasedTooManyTimes,
    /// A `Barrier` for zero parties.
    #[error("parties must be > 0")]
    NoParties,
}

/// A [`Barrier`](crate::sync::Barrier) was aborted, or reset while this task waited (asyncio's
/// `BrokenBarrierError`, with its two texts).
///
/// ```
/// use evloop::sync::BrokenBarrierError;
/// assert_eq!(BrokenBarrierError::Broken.to_string(), "Barrier aborted");
/// assert_eq!(
///     BrokenBarrierError::Interrupted.to_string(),
///     "Abort or reset of barrier"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BrokenBarrierError {
    /// `wait` was called on a barrier that is broken (aborted).
    #[error("Barrier aborted")]
    Broken,
    /// The barrier was aborted or reset while this task waited in it.
    #[error("Abort or reset of barrier")]
    Interrupted,
}
