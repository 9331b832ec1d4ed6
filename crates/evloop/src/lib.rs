//! evloop: Python asyncio's event-loop model in Rust, on a loop faster than tokio's
//! current-thread runtime.
//!
//! This facade crate puts the layers together: the engine ([`EventLoop`]: `call_soon`,
//! `call_later`, `call_soon_threadsafe`, `stop`, `close`, the exception handler) from
//! `evloop-reactor`, and on top of it asyncio's coroutine layer: [`Task`]s, [`LoopFuture`]s,
//! [`sleep`], [`timeout`], [`gather`](fn@gather), [`wait`], [`shield`], [`TaskGroup`], cancellation you can
//! catch ([`catch_cancel`]), [`run`] with asyncio's shutdown sequence, and asyncio's
//! synchronization primitives and queues ([`sync`], [`queue`]). Blocking and
//! CPU-bound work goes to executors wired to the loop ([`ExecutorExt::run_in_executor`],
//! [`to_thread`], [`ExecutorExt::run_in_process_pool`]) on the standalone thread and process
//! pools, re-exported here as [`ThreadPoolExecutor`] and [`ProcessPool`].
//!
//! ```
//! use std::time::Duration;
//!
//! async fn worker(name: &'static str) -> &'static str {
//!     evloop::sleep(Duration::from_millis(10)).await;
//!     name
//! }
//!
//! let result = evloop::run(async {
//!     let a = evloop::create_task(worker("a"));
//!     let b = evloop::create_task(worker("b"));
//!     (a.await.unwrap(), b.await.unwrap())
//! });
//! assert_eq!(result.unwrap(), ("a", "b"));
//! ```
//!
//! See `docs/asyncio-mapping.md` in the repository for every asyncio API and its counterpart.

mod combinators;
mod error;
mod executor;
mod future;
pub mod queue;
mod runner;
mod sigint;
pub mod sync;
mod task;
mod task_group;
mod time;

pub use combinators::{
    EmptyWait, Gather, GatherSettled, ReturnWhen, Shield, gather, gather_settled, shield, wait,
};
pub use error::{
    Cancelled, ExecutorError, FutureError, InvalidState, LoopError, Panic, RunError, TaskError,
    TimeoutError,
};
pub use evloop_process_pool::{ProcessPool, ProcessPoolError};
pub use evloop_reactor::{
    Builder, ClockHold, ContextVar, EventLoop, ExceptionContext, ExceptionHandler, Handle,
    RemoteHandle, TimerHandle, copy_context, default_exception_handler, get_running_loop,
};
pub use evloop_reactor::{SignalError, net, process};
pub use evloop_thread_pool::{JobError, ThreadPoolExecutor};
pub use executor::{ExecutorExt, ExecutorFuture, to_thread};
pub use future::LoopFuture;
pub use queue::{LifoQueue, PriorityQueue, Queue, QueueEmpty, QueueFull, QueueShutDown};
pub use runner::{LoopExt, Runner, run};
pub use sync::{
    Barrier, BoundedSemaphore, BrokenBarrierError, Condition, Event, Lock, Semaphore, ValueError,
};
pub use task::{
    AnyTask, CatchCancel, Raise, Task, all_tasks, catch_cancel, create_task,
    create_task_with_context, current_task,
};
pub use task_group::{ChildError, SpawnError, TaskGroup, TaskGroupError};
pub use time::{Sleep, Timeout, YieldNow, sleep, sleep_until, timeout, wait_for, yield_now};

/// Context variables (Python's `contextvars` module): [`ContextVar`],
/// [`Context`](contextvars::Context), [`copy_context`].
///
/// Every task runs in a copy of the context current at `create_task` (or the one given to
/// [`create_task_with_context`]); `call_soon`, `call_later` and `call_at` capture the current
/// context and their callbacks run in a copy of it (`call_*_with_context` take one);
/// [`to_thread`] runs its job in a copy of the caller's context (`run_in_executor` does not, as in
/// asyncio); done callbacks run in the context they were registered in; a [`Runner`] keeps one
/// context across its runs; the exception handler runs in the context of the task or callback
/// that failed. Until a variable is first set, none of this costs
/// anything. The module is named after Python's because its `Context` would otherwise clash with
/// `std::task::Context`.
///
/// ```
/// use evloop::contextvars::ContextVar;
///
/// static REQUEST: ContextVar<u32> = ContextVar::new("request");
///
/// let seen = evloop::run(async {
///     REQUEST.set(7);
///     let child = evloop::create_task(async { REQUEST.get() }); // a copy: sees 7
///     REQUEST.set(8); // not seen by the child
///     child.await.unwrap()
/// });
/// assert_eq!(seen.unwrap(), Some(7));
/// ```
pub mod contextvars {
    pub use evloop_reactor::{Context, ContextError, ContextVar, Token, copy_context};
}

/// The layers underneath, for direct use.
pub mod layers {
    pub use evloop_callbacks as callbacks;
    pub use evloop_reactor as reactor;
}

/// The thread pool crate (`evloop-thread-pool`): builder, futures, `as_completed`.
pub use evloop_thread_pool as thread_pool;

/// The process pool crate (`evloop-process-pool`): builder, `init()`, `test_worker!()`.
pub use evloop_process_pool as process_pool;

/// What most programs import: `use evloop::prelude::*;`.
pub mod prelude {
    pub use crate::{
        EventLoop, ExecutorExt, LoopExt, Task, TaskError, create_task, run, sleep, to_thread,
    };
}

/// The workspace README's examples, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct WorkspaceReadmeDoctests;

#[doc(hidden)]
pub mod __private {
    pub use crate::combinators::{GatherAll, GatherSlot};
}

/// This crate's README example, run as a doc test too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct CrateReadmeDoctests;
