//! The engine of evloop: asyncio's event loop on mio.
//!
//! An [`EventLoop`] runs callbacks in order ([`call_soon`](EventLoop::call_soon)), fires timers
//! ([`call_later`](EventLoop::call_later), [`call_at`](EventLoop::call_at)), accepts work from
//! other threads ([`RemoteHandle::call_soon_threadsafe`]) and blocks in the reactor when idle.
//! Its lifecycle ([`run_forever`](EventLoop::run_forever), [`stop`](EventLoop::stop),
//! [`close`](EventLoop::close)) and its error texts are asyncio's; failures nobody awaits go to
//! the [exception handler](EventLoop::set_exception_handler).
//!
//! The loop's I/O: asyncio's fd callbacks ([`add_reader`](EventLoop::add_reader),
//! [`add_writer`](EventLoop::add_writer), level-triggered as in asyncio), async sockets in
//! [`net`], signal handlers ([`add_signal_handler`](EventLoop::add_signal_handler)) and
//! subprocesses with async pipes in [`process`], and asyncio's transports and protocols, the
//! callback level of networking, in [`transport`].
//!
//! ```
//! use evloop_reactor::EventLoop;
//! use std::time::Duration;
//!
//! let lp = EventLoop::new()?;
//! let remote = lp.remote();
//! lp.call_soon(|| println!("hello"))?;
//! std::thread::spawn(move || {
//!     remote.call_soon_threadsafe(|| println!("hello from a thread")).unwrap();
//! });
//! let stopper = lp.clone();
//! lp.call_later(Duration::from_millis(50), move || stopper.stop())?;
//! lp.run_forever()?;
//! lp.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Internal helpers shared by the I/O features (the fd registry's edge cases, the accept
// back-off's timer, weak loop handles) are dead in a build without some of them; the full
// build, which CI lints, uses them all.
#![cfg_attr(
    not(all(feature = "net", feature = "process", feature = "signal")),
    allow(dead_code)
)]

mod clock;
#[doc(hidden)]
pub mod doc_support;
mod error;
mod event_loop;
mod exception;
mod io;
#[cfg(feature = "net")]
pub mod net;
#[cfg(feature = "process")]
pub mod process;
mod remote;
#[cfg(feature = "signal")]
mod signal;
mod time;
#[cfg(feature = "net")]
pub mod transport;
mod wakers;

pub use error::{LoopError, Panic};
pub use event_loop::{Builder, EventLoop, debug_from_env, get_running_loop};
pub use evloop_callbacks::{
    Context, ContextError, ContextVar, Handle, Scope, Snapshot, TaskRef, TaskRefVTable,
    TimerHandle, Token, copy_context,
};
pub use exception::{ExceptionContext, ExceptionHandler, Severity, default_exception_handler};
pub use remote::{ClockHold, RemoteHandle};
#[cfg(feature = "signal")]
pub use signal::{SignalError, has_default_disposition};
pub use time::Timer;
pub use wakers::Wakers;
