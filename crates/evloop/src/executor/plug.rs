//! The [`Executor`] trait: what `run_in_executor` runs jobs on, so any executor plugs in (asyncio
//! accepts any `concurrent.futures.Executor`; that is how a cluster client such as Dask's plugs
//! in). Both pools implement it; a user type implements it by returning a [`JobFuture`] and
//! completing its [`JobPromise`](crate::thread_pool::future::JobPromise) when the job is done,
//! wherever it ran.
//!
//! A job is a [`Job`]: a closure (`FnOnce() -> R`), which only runs in this process, or a
//! [`Call`] (a plain function and its argument), which can also travel: the process pool sends
//! calls to its workers, and a remote queue can send `type_name::<F>()` and the serialized
//! argument to workers running the same binary. The trait is generic over the job, so the
//! compiler says which executor takes which jobs (a process pool takes no closures).

#[cfg(feature = "process-pool")]
use evloop_process_pool::{ProcessPool, ProcessPoolError};
use evloop_reactor::EventLoop;
use evloop_thread_pool::future::JobErrorKind;
use evloop_thread_pool::{JobError, JobFuture, ThreadPoolExecutor};
#[cfg(feature = "process-pool")]
use serde::Serialize;
#[cfg(feature = "process-pool")]
use serde::de::DeserializeOwned;

use super::DefaultExecutor;
use crate::error::ExecutorError;

/// A unit of work for an [`Executor`]: a closure, or a [`Call`].
///
/// ```
/// use evloop::executor::{Job, call};
///
/// assert_eq!((|| 6 * 7).run(), 42);
/// assert_eq!(call(|x: u32| x + 1, 41).run(), 42);
/// ```
pub trait Job: Send + 'static {
    /// What the job returns.
    type Output: Send + 'static;

    /// Runs the job on the calling thread.
    fn run(self) -> Self::Output;
}

impl<F, R> Job for F
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    type Output = R;

    fn run(self) -> R {
        self()
    }
}

/// A plain function and its argument: a job that can cross a process boundary, because the
/// function is named by its type (a fn item, or a closure that captures nothing) and the argument
/// is data. Made with [`call`].
#[derive(Debug, Clone, Copy)]
pub struct Call<F, A> {
    function: F,
    arg: A,
}

/// The job "`function(arg)`" (what Python's `run_in_executor(executor, func, arg)` passes).
///
/// ```
/// use evloop::ExecutorExt;
/// use evloop::executor::call;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let nine = evloop::run(async {
///     let lp = evloop::get_running_loop().unwrap();
///     let pool = evloop::ThreadPoolExecutor::new();
///     lp.run_in_executor(&pool, call(square, 3)).unwrap().await
/// });
/// assert_eq!(nine.unwrap(), Ok(9));
/// ```
pub fn call<F, A>(function: F, arg: A) -> Call<F, A> {
    Call { function, arg }
}

impl<F, A> Call<F, A> {
    /// The function and the argument.
    pub fn into_parts(self) -> (F, A) {
        (self.function, self.arg)
    }
}

impl<F, A, R> Job for Call<F, A>
where
    F: Fn(A) -> R + Send + Sync + 'static,
    A: Send + 'static,
    R: Send + 'static,
{
    type Output = R;

    fn run(self) -> R {
        (self.function)(self.arg)
    }
}

/// Something that runs jobs of type `J` off the loop thread and hands back a [`JobFuture`] of
/// the result (Python's `concurrent.futures.Executor.submit`).
///
/// The future may be completed from any thread; the awaiting task is woken through its loop's
/// thread-safe queue. Dropping the loop-side future cancels the job if it has not started
/// ([`JobPromise::set_running_or_notify_cancel`] says so), and a promise dropped without a result
/// completes the future with an "abandoned" error, so nothing waits forever.
///
/// # A remote job queue behind it
///
/// evloop builds no cluster, but one plugs in here: implement `Executor<Call<F, A>>` by sending
/// the function's name (`std::any::type_name::<F>()`) and the serialized argument to the queue,
/// keeping the promise, and completing it when the answer comes back. The workers run the same
/// binary and map names to functions with a registry they fill at start-up. Below, a thread
/// stands in for the remote side:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::mpsc;
/// use evloop::executor::{Call, Executor};
/// use evloop::thread_pool::JobError;
/// use evloop::thread_pool::future::{JobFuture, JobPromise, job_channel};
/// use evloop::{ExecutorError, ExecutorExt};
///
/// type Wire = (String, String, JobPromise<String, JobError>); // name, argument, reply slot
///
/// /// The client side: what `run_in_executor` talks to.
/// struct RemoteQueue {
///     outbox: mpsc::Sender<Wire>,
/// }
///
/// impl<F> Executor<Call<F, u64>> for RemoteQueue
/// where
///     F: Fn(u64) -> u64 + Send + Sync + 'static,
/// {
///     type Output = String; // the serialized result; a typed wrapper can decode it
///     type Error = JobError;
///
///     fn submit(&self, job: Call<F, u64>) -> Result<JobFuture<String, JobError>, ExecutorError> {
///         let (promise, future) = job_channel();
///         let (_function, arg) = job.into_parts();
///         let name = std::any::type_name::<F>().to_owned();
///         let message = (name, serde_json::to_string(&arg).unwrap(), promise);
///         self.outbox.send(message).map_err(|e| ExecutorError::Rejected(e.to_string()))?;
///         Ok(future)
///     }
/// }
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// // The remote worker: a registry of functions by name, serving the queue.
/// let (outbox, inbox) = mpsc::channel::<Wire>();
/// let worker = std::thread::spawn(move || {
///     let mut registry: HashMap<&str, fn(u64) -> u64> = HashMap::new();
///     registry.insert(std::any::type_name_of_val(&square), square);
///     for (name, arg, promise) in inbox {
///         if promise.set_running_or_notify_cancel() {
///             let result = registry[name.as_str()](serde_json::from_str(&arg).unwrap());
///             promise.complete(Ok(serde_json::to_string(&result).unwrap()));
///         }
///     }
/// });
///
/// let queue = RemoteQueue { outbox };
/// let answer = evloop::run(async move {
///     let lp = evloop::get_running_loop().unwrap();
///     lp.run_in_executor(&queue, evloop::executor::call(square, 12)).unwrap().await
/// });
/// assert_eq!(answer.unwrap().unwrap(), "144");
/// worker.join().unwrap();
/// ```
///
/// [`JobPromise::set_running_or_notify_cancel`]: crate::thread_pool::future::JobPromise::set_running_or_notify_cancel
pub trait Executor<J> {
    /// What the awaiting task gets: the job's output, or (for a remote queue) its encoding.
    type Output;
    /// How the job can fail once submitted (cancelled, lost, panicked, ...).
    type Error: JobErrorKind;

    /// Starts `job`; an error if the executor refuses it (shut down, broken, unreachable).
    fn submit(&self, job: J) -> Result<JobFuture<Self::Output, Self::Error>, ExecutorError>;
}

impl<J: Job> Executor<J> for ThreadPoolExecutor {
    type Output = J::Output;
    type Error = JobError;

    fn submit(&self, job: J) -> Result<JobFuture<J::Output, JobError>, ExecutorError> {
        Ok(ThreadPoolExecutor::submit(self, traced(job))?)
    }
}

/// A shared executor (the default executor's handle, a pool kept in an `Arc`) is one too:
/// `run_in_executor(&arc, job)`.
impl<J, X: Executor<J> + ?Sized> Executor<J> for std::sync::Arc<X> {
    type Output = X::Output;
    type Error = X::Error;

    fn submit(&self, job: J) -> Result<JobFuture<X::Output, X::Error>, ExecutorError> {
        (**self).submit(job)
    }
}

/// The process pool takes calls only: a closure cannot be sent to another process.
#[cfg(feature = "process-pool")]
impl<F, A, R> Executor<Call<F, A>> for ProcessPool
where
    F: Fn(A) -> R + Send + Sync + 'static,
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    type Output = R;
    type Error = ProcessPoolError;

    fn submit(&self, job: Call<F, A>) -> Result<JobFuture<R, ProcessPoolError>, ExecutorError> {
        Ok(ProcessPool::submit(self, job.function, job.arg)?)
    }
}

/// `job` as a closure for a thread pool; with the `tracing` feature it runs inside an
/// `executor_job` span (target `evloop`, the job's type as `job`) whose parent is the span
/// current at submission (the submitting task's), so the worker thread's events carry both.
fn traced<J: Job>(job: J) -> impl FnOnce() -> J::Output + Send + 'static {
    #[cfg(feature = "tracing")]
    let span =
        tracing::info_span!(target: "evloop", "executor_job", job = std::any::type_name::<J>());
    move || {
        #[cfg(feature = "tracing")]
        let _entered = span.enter();
        job.run()
    }
}

/// The executor argument of [`run_in_executor`](crate::ExecutorExt::run_in_executor): `None`
/// (the loop's default thread pool), `Some(&thread_pool)` (asyncio's spelling), or `&executor`
/// for any [`Executor`]. Not meant to be implemented outside evloop.
///
/// ```
/// use evloop::ExecutorExt;
///
/// let pool = evloop::ThreadPoolExecutor::new();
/// let sum = evloop::run(async move {
///     let lp = evloop::get_running_loop().unwrap();
///     let a = lp.run_in_executor(None, || 1).unwrap().await.unwrap();
///     let b = lp.run_in_executor(Some(&pool), || 2).unwrap().await.unwrap();
///     let c = lp.run_in_executor(&pool, || 3).unwrap().await.unwrap();
///     a + b + c
/// });
/// assert_eq!(sum.unwrap(), 6);
/// ```
pub trait ExecutorArg<J> {
    /// What the awaiting task gets.
    type Output;
    /// How the submitted job can fail.
    type Error: JobErrorKind;

    /// Submits `job` for the loop `lp`.
    fn submit_for(
        self,
        lp: &EventLoop,
        job: J,
    ) -> Result<JobFuture<Self::Output, Self::Error>, ExecutorError>;
}

impl<J: Job> ExecutorArg<J> for Option<&ThreadPoolExecutor> {
    type Output = J::Output;
    type Error = JobError;

    fn submit_for(
        self,
        lp: &EventLoop,
        job: J,
    ) -> Result<JobFuture<J::Output, JobError>, ExecutorError> {
        let f = traced(job);
        Ok(match self {
            Some(pool) => pool.submit(f)?,
            None => DefaultExecutor::of(lp).with(lp, |pool| pool.submit(f))??,
        })
    }
}

impl<J, X: Executor<J> + ?Sized> ExecutorArg<J> for &X {
    type Output = X::Output;
    type Error = X::Error;

    fn submit_for(
        self,
        _lp: &EventLoop,
        job: J,
    ) -> Result<JobFuture<X::Output, X::Error>, ExecutorError> {
        self.submit(job)
    }
}
