//! asyncio's synchronization primitives on the loop: [`Event`], [`Lock`], [`Semaphore`],
//! [`BoundedSemaphore`], [`Condition`] and [`Barrier`].
//!
//! They exist because the general-purpose crates (async-lock, event-listener) are built for
//! many threads, with atomics on every operation, and lack asyncio's semantics (FIFO hand-over,
//! the bounded semaphore's over-release error, the barrier's broken state, the cancellation
//! rules). On one loop thread they are plain `Rc`/`RefCell` structures over one FIFO wait list,
//! exact and cheap.
//!
//! Each is a cheap handle (clones share it), `!Send`, and bound to the loop it is first waited
//! on. Cancellation is asyncio's, adapted to futures dropped at their await point: a waiter
//! dropped after it was woken passes the wake-up on (a lock or a permit to the next waiter, a
//! notification to the next `Condition` waiter), so nothing is lost; and they compose with
//! [`timeout`](crate::timeout), which drops the waiter when it fires.

mod barrier;
mod condition;
mod error;
mod event;
mod lock;
mod semaphore;
pub(crate) mod wait_list;

pub use barrier::{Barrier, BarrierWait};
pub use condition::{Condition, ConditionWait};
pub use error::{BrokenBarrierError, ValueError};
pub use event::{Event, EventWait};
pub use lock::{Acquire, Lock, LockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreAcquire, SemaphorePermit};
