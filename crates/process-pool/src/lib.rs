//! A pool of worker processes for CPU-bound Rust functions, with a [`std::future::Future`]
//! interface: Python's `concurrent.futures.ProcessPoolExecutor`, in Rust.
//!
//! Use it when work must not share the caller's process: isolation from crashes and memory leaks,
//! separate global state, or a library that is not thread-safe. It stands alone (any runtime can
//! `.await` its futures, and blocking code can `wait()`), and the `evloop` facade wires it to the
//! event loop.
//!
//! # The entry check: `if __name__ == '__main__'`, in Rust
//!
//! Workers are fresh executions of the current binary (Python's "spawn" start method), told by an
//! environment variable and a one-shot token that they are workers. So the program must check for
//! that first thing in `main`, by calling [`init`] (`evloop::run()` does it for you). In a worker,
//! `init` never returns: it serves jobs until the pool lets it go. In any other process it is one
//! environment-variable read. **Code before that call runs in every worker too**, exactly like
//! module-level code above `if __name__ == '__main__':` in Python.
//!
//! Test binaries, whose `main` belongs to libtest, use [`test_worker!`] once instead.
//!
//! # Naming a function across processes
//!
//! Jobs are plain functions (fn items or closures that capture nothing: anything else fails to
//! compile). A function is sent as the offset of a monomorphized trampoline from a function of
//! this crate, valid because the worker runs the very same executable (checked by inode before the
//! first job), with the trampoline's type name checked on arrival. See the `trampoline` module's
//! docs (and the README) for why this is sound. The offset itself is not validated: the parent is
//! trusted, and the channel is private to it and the worker. A secure-execution process (setuid,
//! setgid, file capabilities) refuses to act as a worker.
//!
//! # When things go wrong
//!
//! A job whose argument or result is too large for the channel (see
//! [`ProcessPoolBuilder::max_message_bytes`]) or cannot be encoded fails alone with
//! [`ProcessPoolError::Serialization`]. A worker that dies breaks the pool
//! ([`ProcessPoolError::BrokenProcessPool`], whose text names the exit code or signal). A `main`
//! that forgets [`init`] is caught both ways: a pool built in a worker process fails with
//! [`ProcessPoolError::InitMissing`], and a worker that exits before its handshake breaks the pool
//! with a cause naming `init()`.
//!
//! # The job channel
//!
//! Each worker gets one end of a `socketpair` as an inherited fd (everything else is
//! close-on-exec), so a job's `println!` and `eprintln!` reach the parent's stdout and stderr
//! untouched and can never corrupt the channel. Frames are length-prefixed postcard.
//!
//! ```no_run
//! use evloop_process_pool::ProcessPool;
//!
//! fn cpu_bound(n: u64) -> u128 {
//!     (0..n).map(|i| u128::from(i) * u128::from(i)).sum()
//! }
//!
//! fn main() {
//!     evloop_process_pool::init();
//!     let pool = ProcessPool::builder().max_workers(2).build().unwrap();
//!     let future = pool.submit(cpu_bound, 10_000_000).unwrap();
//!     println!("custom process pool {}", future.wait().unwrap());
//! }
//! ```

mod codec;
mod error;
mod pool;
mod spawn;
mod stream;
pub mod testing;
mod trampoline;
mod wire;
mod worker;

pub use error::{Broken, POOL_NOT_USABLE, ProcessPoolError, TERMINATED_ABRUPTLY};
pub use evloop_thread_pool::future::TimeoutError;
pub use pool::{MapResults, ProcessFuture, ProcessPool, ProcessPoolBuilder};
pub use stream::MapStream;

/// The worker entry check: call it first thing in `main`.
///
/// In a process started as a pool worker it runs the worker and never returns; anywhere else it
/// returns at once after reading one environment variable. It is the Rust form of Python's
/// `if __name__ == '__main__':` guard: code that runs before it runs in every worker too.
///
/// ```
/// evloop_process_pool::init();
/// // ... the program proper, which may create process pools ...
/// ```
pub fn init() {
    worker::check();
}
