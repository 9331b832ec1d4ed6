//! The callback queue of evloop: the data structures an asyncio-style event loop schedules with.
//!
//! This crate is pure data structures: no I/O, no threads of its own, no clock. The loop engine in
//! `evloop-reactor` owns one of each and drives them:
//!
//! - [`Handle`]: a scheduled callback that can be cancelled, dropping what it captured at once.
//! - [`ReadyQueue`]: the FIFO of work for this iteration ([`Ready`] entries: handles, or
//!   [`TaskRef`]s for tasks to poll).
//! - [`TimerHeap`] / [`TimerHandle`]: deadline-ordered timers with asyncio's lazy clean-up.
//! - [`RemoteQueue`]: the many-producer queue for `call_soon_threadsafe`, which asks for a
//!   wake-up only when its consumer is about to sleep.
//! - [`SendCallback`]: a `FnOnce() + Send` that carries small closures without allocating.
//! - [`ContextVar`] / [`Context`]: asyncio's context variables; every handle carries the context
//!   it was scheduled in.
//!
//! ```
//! use evloop_callbacks::{Handle, Ready, ReadyQueue, TimerHeap};
//! use std::time::{Duration, Instant};
//!
//! let mut ready = ReadyQueue::new();
//! let mut timers = TimerHeap::new();
//! let now = Instant::now();
//! ready.push_handle(Handle::new(|| println!("soon")));
//! timers.schedule(now, || println!("timer"));
//! // One loop iteration: move due timers, then run the batch that is ready.
//! timers.clean_up();
//! while let Some(h) = timers.pop_due(now + Duration::from_nanos(1)) {
//!     ready.push_handle(h);
//! }
//! for _ in 0..ready.len() {
//!     if let Some(Ready::Handle(h)) = ready.pop() {
//!         h.run();
//!     }
//! }
//! ```

mod context;
mod handle;
mod pool;
mod prefetch;
mod ready;
mod remote;
mod send_callback;
mod sync;
mod timers;

pub use context::{Context, ContextError, ContextVar, Scope, Snapshot, Token, copy_context};
pub use handle::Handle;
pub use ready::{Ready, ReadyQueue, TaskRef, TaskRefVTable};
pub use remote::{Closed, RemoteQueue, Wakeup};
pub use send_callback::SendCallback;
pub use timers::{
    CANCELLED_FRACTION_FOR_REBUILD, MIN_SCHEDULED_FOR_REBUILD, TimerHandle, TimerHeap,
};
