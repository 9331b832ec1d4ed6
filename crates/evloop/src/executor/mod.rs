//! Executors wired to the loop: asyncio's `run_in_executor`, `to_thread`, the default executor
//! and its shutdown.
//!
//! Blocking calls and CPU-heavy work must not run on the loop thread. A job goes to a thread pool
//! ([`ThreadPoolExecutor`], the loop's default one unless another is given) or to a process pool
//! ([`ProcessPool`]), and the loop awaits an [`ExecutorFuture`]. The pools are the standalone
//! `evloop-thread-pool` and `evloop-process-pool` crates; this module only adds the loop's side:
//! the per-loop default executor (created lazily, threads named `evloop_0`, `evloop_1`, ...),
//! its shutdown off the loop thread, and asyncio's error texts.
//!
//! asyncio's `set_default_executor` refuses anything but a `ThreadPoolExecutor` at run time
//! ("executor must be ThreadPoolExecutor instance"); here the parameter's type says so, and
//! passing a process pool does not compile.

mod default;
mod future;
mod plug;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "process-pool")]
use evloop_process_pool::{ProcessPool, ProcessPoolError};
use evloop_reactor::{EventLoop, LoopError, get_running_loop};
use evloop_thread_pool::ThreadPoolExecutor;
#[cfg(feature = "process-pool")]
use serde::Serialize;
#[cfg(feature = "process-pool")]
use serde::de::DeserializeOwned;

use crate::error::ExecutorError;
pub(crate) use default::{DefaultExecutor, THREAD_JOIN_TIMEOUT, shutdown_default};
pub use future::ExecutorFuture;
pub use plug::{Call, Executor, ExecutorArg, Job, call};

mod sealed {
    pub trait Sealed {}
    impl Sealed for evloop_reactor::EventLoop {}
}

/// The loop's executor methods (asyncio's `run_in_executor`, `set_default_executor`,
/// `shutdown_default_executor`), plus a process-pool sibling.
///
/// ```
/// use evloop::{ExecutorExt, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::builder().thread_name_prefix("io").build().unwrap();
/// let names = evloop::run(async move {
///     let lp = evloop::get_running_loop().unwrap();
///     let name = || std::thread::current().name().unwrap().to_owned();
///     let default = lp.run_in_executor(None, name).unwrap().await.unwrap();
///     let custom = lp.run_in_executor(Some(&pool), name).unwrap().await.unwrap();
///     (default, custom)
/// });
/// assert_eq!(names.unwrap(), ("evloop_0".to_owned(), "io_0".to_owned()));
/// ```
pub trait ExecutorExt: sealed::Sealed {
    /// Runs `job` on `executor` and returns a future the loop can await (asyncio's
    /// `loop.run_in_executor`).
    ///
    /// `executor` is `None` (the loop's default thread pool), `Some(&thread_pool)`, or
    /// `&executor` for anything implementing [`Executor`]: both pools do, and so can a user type
    /// (a remote job queue, another pool). `job` is a closure (`|| ...`, thread pools only) or
    /// [`call(function, arg)`](call), which a process pool also takes.
    ///
    /// The default executor is created on first use, with threads named `evloop_0`,
    /// `evloop_1`, ... Errors: "Event loop is closed" on a closed loop, "Executor shutdown has
    /// been called" for the default executor after
    /// [`shutdown_default_executor`](ExecutorExt::shutdown_default_executor), and the pool's
    /// refusal ("cannot schedule new futures after shutdown", ...) for an explicit one.
    ///
    /// Dropping the returned future cancels the job if it has not started; a running job's
    /// result is discarded, and so is a result that arrives after the loop closed.
    ///
    /// ```
    /// use evloop::ExecutorExt;
    ///
    /// let text = evloop::run(async {
    ///     let lp = evloop::get_running_loop().unwrap();
    ///     lp.run_in_executor(None, || std::fs::read_to_string("/proc/self/stat"))
    ///         .unwrap()
    ///         .await
    /// });
    /// assert!(text.unwrap().unwrap().is_ok());
    /// ```
    fn run_in_executor<X, J>(
        &self,
        executor: X,
        job: J,
    ) -> Result<ExecutorFuture<X::Output, X::Error>, ExecutorError>
    where
        X: ExecutorArg<J>;

    #[cfg(feature = "process-pool")]
    /// Runs `f(arg)` in a worker process of `pool` and returns a future the loop can await
    /// (asyncio's `run_in_executor` with a `ProcessPoolExecutor`).
    ///
    /// `f` is a plain function (a fn item or a closure that captures nothing); `arg` and the
    /// result travel through serde. The program must perform the worker entry check first
    /// thing (`evloop::run` does it; see [`evloop_process_pool::init`]). Errors: "Event loop is
    /// closed", or the pool's refusal.
    ///
    /// ```no_run
    /// use evloop::{ExecutorExt, ProcessPool};
    ///
    /// fn cpu_bound(n: u64) -> u128 {
    ///     (0..n).map(|i| u128::from(i) * u128::from(i)).sum()
    /// }
    ///
    /// fn main() {
    ///     let pool = ProcessPool::builder().max_workers(2).build().unwrap();
    ///     let sum = evloop::run(async move {
    ///         let lp = evloop::get_running_loop().unwrap();
    ///         lp.run_in_process_pool(&pool, cpu_bound, 10_000_000).unwrap().await
    ///     });
    ///     println!("custom process pool {}", sum.unwrap().unwrap());
    /// }
    /// ```
    fn run_in_process_pool<F, A, R>(
        &self,
        pool: &ProcessPool,
        f: F,
        arg: A,
    ) -> Result<ExecutorFuture<R, ProcessPoolError>, ExecutorError>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static;

    /// Makes `executor` the loop's default executor and returns the previous one, which is not
    /// shut down (asyncio C2; dropping the last handle to a pool waits for its jobs).
    ///
    /// Only a [`ThreadPoolExecutor`] is accepted, at compile time: asyncio's "executor must be
    /// ThreadPoolExecutor instance" cannot happen. After
    /// [`shutdown_default_executor`](ExecutorExt::shutdown_default_executor) the new executor
    /// is refused as the old one was ("Executor shutdown has been called"), as in asyncio.
    ///
    /// ```
    /// use evloop::{EventLoop, ExecutorExt, LoopExt, ThreadPoolExecutor};
    ///
    /// let lp = EventLoop::new().unwrap();
    /// let pool = ThreadPoolExecutor::builder().thread_name_prefix("mine").build().unwrap();
    /// assert!(lp.set_default_executor(pool).is_none());
    /// let job = lp.run_in_executor(None, || std::thread::current().name().map(str::to_owned));
    /// let name = lp.run_until_complete(job.unwrap()).unwrap();
    /// assert_eq!(name.unwrap().as_deref(), Some("mine_0"));
    /// lp.close().unwrap();
    /// ```
    ///
    /// A process pool is refused at compile time:
    ///
    /// ```compile_fail
    /// use evloop::{EventLoop, ExecutorExt, ProcessPool};
    ///
    /// let lp = EventLoop::new().unwrap();
    /// lp.set_default_executor(ProcessPool::new()); // executor must be ThreadPoolExecutor
    /// ```
    fn set_default_executor(
        &self,
        executor: impl Into<Arc<ThreadPoolExecutor>>,
    ) -> Option<Arc<ThreadPoolExecutor>>;

    /// Shuts the default executor down and waits for its threads, on a helper thread so the
    /// loop keeps running (asyncio's `shutdown_default_executor`).
    ///
    /// From the call on, [`run_in_executor`](ExecutorExt::run_in_executor) with the default
    /// executor fails with "Executor shutdown has been called" (explicit executors still
    /// work). With a `timeout` that passes first, the warning "The executor did not finish
    /// joining its threads within 0.5 seconds." goes to the exception handler and the
    /// future returns without joining; the jobs keep running. On a loop with a virtual clock
    /// the clock is held while joining, so the limit is effectively real time.
    ///
    /// [`run`](crate::run) and [`Runner::close`](crate::Runner::close) call it with asyncio's
    /// 300-second limit after cancelling the tasks, so a running [`to_thread`] job keeps
    /// `run()` from returning until it finishes.
    ///
    /// ```
    /// use evloop::ExecutorExt;
    ///
    /// evloop::run(async {
    ///     let lp = evloop::get_running_loop().unwrap();
    ///     lp.run_in_executor(None, || ()).unwrap().await.unwrap();
    ///     lp.shutdown_default_executor(None).await;
    ///     let refused = lp.run_in_executor(None, || ()).unwrap_err();
    ///     assert_eq!(refused.to_string(), "Executor shutdown has been called");
    /// })
    /// .unwrap();
    /// ```
    fn shutdown_default_executor(
        &self,
        timeout: Option<Duration>,
    ) -> impl Future<Output = ()> + 'static;
}

impl ExecutorExt for EventLoop {
    fn run_in_executor<X, J>(
        &self,
        executor: X,
        job: J,
    ) -> Result<ExecutorFuture<X::Output, X::Error>, ExecutorError>
    where
        X: ExecutorArg<J>,
    {
        if self.is_closed() {
            return Err(LoopError::Closed.into());
        }
        let job = executor.submit_for(self, job)?;
        Ok(ExecutorFuture::new(self, job))
    }

    #[cfg(feature = "process-pool")]
    fn run_in_process_pool<F, A, R>(
        &self,
        pool: &ProcessPool,
        f: F,
        arg: A,
    ) -> Result<ExecutorFuture<R, ProcessPoolError>, ExecutorError>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.run_in_executor(pool, call(f, arg))
    }

    fn set_default_executor(
        &self,
        executor: impl Into<Arc<ThreadPoolExecutor>>,
    ) -> Option<Arc<ThreadPoolExecutor>> {
        DefaultExecutor::of(self).install(self, executor.into())
    }

    fn shutdown_default_executor(
        &self,
        timeout: Option<Duration>,
    ) -> impl Future<Output = ()> + 'static {
        shutdown_default(self.clone(), timeout)
    }
}

/// Runs `f` on the running loop's default executor and awaits it (asyncio's `to_thread`).
///
/// `f` runs in a copy of the caller's context (its [`ContextVar`](crate::ContextVar)s), as in
/// asyncio. Fails with "no running event loop" outside a loop, "Executor shutdown has been called" after
/// [`shutdown_default_executor`](ExecutorExt::shutdown_default_executor), or with the job's
/// error (a panic in `f` is caught and returned). The thread cannot be cancelled: cancelling
/// the awaiting task leaves it running, and [`run`](crate::run) waits for it before returning.
///
/// ```
/// use std::time::Duration;
///
/// let slept = evloop::run(async {
///     evloop::to_thread(|| {
///         std::thread::sleep(Duration::from_millis(10));
///         "slept off the loop"
///     })
///     .await
/// });
/// assert_eq!(slept.unwrap().unwrap(), "slept off the loop");
/// ```
pub async fn to_thread<F, R>(f: F) -> Result<R, ExecutorError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let lp = get_running_loop()?;
    // asyncio's to_thread runs the function in a copy of the caller's context
    // (`ctx = contextvars.copy_context()`); run_in_executor does not.
    let mut context = evloop_reactor::copy_context();
    Ok(lp.run_in_executor(None, move || context.run(f))?.await?)
}

/// `run()`'s step 3 (asyncio G4): join the default executor, if there is one, with asyncio's
/// limit. Called with the loop stopped and open, after the tasks were cancelled.
pub(crate) fn join_default_on_exit(lp: &EventLoop) -> Result<(), crate::RunError> {
    use crate::LoopExt;
    if !DefaultExecutor::of(lp).exists() {
        return Ok(());
    }
    lp.run_until_complete(shutdown_default(lp.clone(), Some(THREAD_JOIN_TIMEOUT)))
}
