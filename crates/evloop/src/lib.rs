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
//! pools, re-exported here as [`ThreadPoolExecutor`] and [`ProcessPool`]. Networking comes at
//! asyncio's two levels: [`streams`] (`open_connection`, `start_server`, `StreamReader`,
//! `StreamWriter`) and [`transport`]s with protocols, with names resolved on the default
//! executor ([`NetExt::getaddrinfo`]) and TLS on rustls ([`tls`]).
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

// What each Cargo feature adds (all on by default; `--no-default-features` is the bare loop with
// tasks, futures, timers, `run()` and the combinators):
// `thread-pool`: `executor` (run_in_executor, to_thread, the default executor),
//     `run_coroutine_threadsafe`, `thread_pool`; `process-pool` (needs it): `ProcessPool`,
//     `run_in_process_pool`, the worker entry check; `net` (needs `thread-pool`): `net` (sockets),
//     `transport`, `streams`, `tls`, `NetExt`, name resolution; `signal`:
//     `SignalStream`, `SignalError` and Ctrl-C handling in `run()`; `process` (needs `signal`):
//     `process` (subprocesses); `hyper`, `tokio-io` (off by default): `compat`.
mod combinators;
pub mod compat;
mod dump;
mod entry;
mod error;
#[cfg(feature = "thread-pool")]
pub mod executor;
#[cfg(not(feature = "thread-pool"))]
#[path = "executor_off.rs"]
mod executor;
mod future;
#[cfg(feature = "net")]
mod network;
pub mod queue;
#[cfg(feature = "net")]
mod resolve;
mod runner;
#[cfg(feature = "signal")]
mod sigint;
#[cfg(not(feature = "signal"))]
#[path = "sigint_off.rs"]
mod sigint;
#[cfg(feature = "signal")]
mod signals;
#[cfg(feature = "net")]
pub mod streams;
pub mod sync;
mod task;
mod task_group;
#[cfg(feature = "thread-pool")]
mod threadsafe;
mod time;
#[cfg(feature = "net")]
pub mod tls;

pub use combinators::{
    EmptyWait, Gather, GatherSettled, ReturnWhen, Shield, gather, gather_settled, shield, wait,
};
pub use dump::{Awaited, TaskDump, TaskEntry, task_dump};
pub use error::{
    Cancelled, ExecutorError, FutureError, InvalidState, LoopError, Panic, RunError, TaskError,
    TimeoutError,
};
pub use evloop_macros::{main, test};
#[cfg(feature = "process-pool")]
pub use evloop_process_pool::{ProcessPool, ProcessPoolError};
#[cfg(feature = "signal")]
pub use evloop_reactor::SignalError;
#[cfg(feature = "net")]
pub use evloop_reactor::net;
#[cfg(feature = "process")]
pub use evloop_reactor::process;
#[cfg(feature = "net")]
pub use evloop_reactor::transport;
pub use evloop_reactor::{
    Builder, ClockHold, ContextVar, EventLoop, ExceptionContext, ExceptionHandler, Handle,
    RemoteHandle, Severity, TimerHandle, copy_context, default_exception_handler, get_running_loop,
};
#[cfg(feature = "thread-pool")]
pub use evloop_thread_pool::{JobError, ThreadPoolExecutor};
#[cfg(feature = "thread-pool")]
pub use executor::{Executor, ExecutorExt, ExecutorFuture, to_thread};
pub use future::LoopFuture;
#[cfg(feature = "net")]
pub use network::{ConnectOptions, NetExt, ServeOptions};
pub use queue::{LifoQueue, PriorityQueue, Queue, QueueEmpty, QueueFull, QueueShutDown};
#[cfg(feature = "net")]
pub use resolve::{AddrInfo, AddrInfoHints, ResolveError};
pub use runner::{LoopExt, Runner, run, run_with};
#[cfg(feature = "signal")]
pub use signals::SignalStream;
pub use sync::{
    Barrier, BoundedSemaphore, BrokenBarrierError, Condition, Event, Lock, Semaphore, ValueError,
};
pub use task::{
    AnyTask, CatchCancel, Raise, Task, all_tasks, catch_cancel, create_task,
    create_task_with_context, current_task,
};
pub use task_group::{ChildError, SpawnError, TaskGroup, TaskGroupError};
#[cfg(feature = "thread-pool")]
pub use threadsafe::{ThreadsafeFuture, run_coroutine_threadsafe};
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
#[cfg(feature = "thread-pool")]
pub use evloop_thread_pool as thread_pool;

/// The process pool crate (`evloop-process-pool`): builder, `init()`, `test_worker!()`.
#[cfg(feature = "process-pool")]
pub use evloop_process_pool as process_pool;

/// What most programs import: `use evloop::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "net")]
    pub use crate::NetExt;
    pub use crate::{EventLoop, LoopExt, Task, TaskError, create_task, run, sleep};
    #[cfg(feature = "thread-pool")]
    pub use crate::{ExecutorExt, to_thread};
}

#[doc(hidden)]
pub mod __private {
    pub use crate::combinators::{GatherAll, GatherSlot};
    pub use crate::entry::{register_test_worker, run_main, run_test, worker_entry_check};
}

/// This crate's README example, run as a doc test too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct CrateReadmeDoctests;
