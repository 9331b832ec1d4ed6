//! Tasks: futures driven by the loop (asyncio's `Task`), and the join handle to await them.
//!
//! `create_task` takes any `Future + 'static`, `Send` or not, and returns a [`Task`]. The task
//! is polled on the loop thread whenever its waker fires; cancelling it drops the future at its
//! current await point (its destructors run, which is Rust's `finally`), unless the task is
//! inside a [`catch_cancel`], which turns the request into an `Err` the task can act on.

mod catch;
mod cell;
mod current;
mod registry;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use evloop_reactor::{EventLoop, LoopError};

use crate::error::{Cancelled, TaskError};
pub use catch::{CatchCancel, catch_cancel};
use cell::{JoinTarget, Status, TaskCell, TaskObject};
use registry::TaskRegistry;

/// Task ids (and default names, `Task-N`) count up from 1 across the process, as asyncio's do.
static NEXT_TASK_ID: AtomicU64 = AtomicU64::new(1);

/// Starts `future` as a task on `lp` (the body of `create_task` and `LoopExt::create_task`).
pub(crate) fn spawn_on<F>(lp: &EventLoop, future: F) -> Result<Task<F::Output>, LoopError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    if lp.is_closed() {
        return Err(LoopError::Closed);
    }
    let id = NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed);
    let cell = TaskCell::new(future, id, lp.id(), lp.remote());
    TaskRegistry::of(lp).add(cell.clone());
    if lp.is_running() {
        cell.schedule_first();
    } else {
        // Not running yet (the loop thread builds work before run_until_complete): queue the
        // first poll directly, exactly as call_soon would.
        let again = cell.clone();
        lp.call_soon(move || again.schedule_first())?;
    }
    Ok(Task {
        cell,
        _not_send: PhantomData,
    })
}

/// Starts `future` as a task on the running loop (asyncio's `asyncio.create_task`).
///
/// The future need not be `Send`. Its first poll happens on a later loop iteration, never inside
/// this call.
///
/// # Panics
///
/// Outside a running loop ("no running event loop"), like `tokio::spawn` outside a runtime; use
/// [`LoopExt::create_task`](crate::LoopExt::create_task) to choose a loop and get an error instead.
///
/// ```
/// let answer = evloop::run(async {
///     let task = evloop::create_task(async { 6 * 7 });
///     task.await
/// });
/// assert_eq!(answer.unwrap().unwrap(), 42);
/// ```
#[track_caller]
pub fn create_task<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let lp = evloop_reactor::get_running_loop().unwrap_or_else(|e| panic!("{e}"));
    spawn_on(&lp, future).unwrap_or_else(|e| panic!("{e}"))
}

/// A task on the loop, and the handle to its result (asyncio's `Task`).
///
/// Awaiting a `Task` gives `Ok(output)`, or a [`TaskError`] if the task was cancelled or
/// panicked. **Dropping a `Task` does not cancel it** (asyncio semantics: the task runs on,
/// detached); use [`abort`](Task::abort) to cancel and let go at once. A `Task` is `!Send`: it
/// belongs to its loop's thread.
///
/// ```
/// use evloop::{Cancelled, TaskError};
/// use std::time::Duration;
///
/// let outcome = evloop::run(async {
///     let sleeper = evloop::create_task(evloop::sleep(Duration::from_secs(3600)));
///     evloop::sleep(Duration::ZERO).await;
///     sleeper.cancel_with("enough");
///     sleeper.await
/// });
/// assert_eq!(
///     outcome.unwrap(),
///     Err(TaskError::Cancelled(Cancelled::with_message("enough")))
/// );
/// ```
pub struct Task<T> {
    cell: Arc<dyn JoinTarget<T>>,
    _not_send: PhantomData<*const ()>,
}

impl<T> Task<T> {
    /// Requests cancellation (asyncio's `cancel()`). Returns false if the task is already done.
    ///
    /// The future is dropped at its current await point on the task's next step, unless it is
    /// inside [`catch_cancel`], which receives the request instead.
    pub fn cancel(&self) -> bool {
        self.cell.cancel(Cancelled::new())
    }

    /// Requests cancellation with a message, which the awaiter's [`Cancelled`] carries.
    pub fn cancel_with(&self, message: impl Into<String>) -> bool {
        self.cell.cancel(Cancelled::with_message(message))
    }

    /// Cancels the task and drops the handle.
    pub fn abort(self) {
        self.cancel();
    }

    /// Drops the handle and lets the task run on (what dropping does; this says it aloud).
    pub fn detach(self) {}

    /// Whether the task finished (with a value, cancelled, or panicked).
    pub fn done(&self) -> bool {
        self.cell.status() != Status::Pending
    }

    /// Whether the task ended cancelled.
    pub fn cancelled(&self) -> bool {
        self.cell.status() == Status::Cancelled
    }

    /// Whether the task ended by panicking.
    pub fn panicked(&self) -> bool {
        self.cell.status() == Status::Panicked
    }

    /// How many cancel requests are pending (asyncio's `cancelling()`).
    pub fn cancelling(&self) -> u32 {
        self.cell.cancelling()
    }

    /// Decrements the pending cancel requests and returns the rest (asyncio's `uncancel()`).
    pub fn uncancel(&self) -> u32 {
        self.cell.uncancel()
    }

    /// The task's name: `Task-N` unless set.
    pub fn name(&self) -> String {
        self.cell.name()
    }

    /// Renames the task.
    pub fn set_name(&self, name: impl Into<String>) {
        self.cell.set_name(name.into());
    }

    /// The task's result if it has finished and the result was not taken yet; `None` otherwise.
    ///
    /// ```
    /// evloop::run(async {
    ///     let mut task = evloop::create_task(async { "done" });
    ///     assert!(task.take_result().is_none(), "not run yet");
    ///     evloop::sleep(std::time::Duration::ZERO).await;
    ///     assert_eq!(task.take_result(), Some(Ok("done")));
    /// })
    /// .unwrap();
    /// ```
    pub fn take_result(&mut self) -> Option<Result<T, TaskError>> {
        self.cell.take_output()
    }

    /// Schedules `callback` to run (with `call_soon`, never synchronously) once the task is done.
    pub fn add_done_callback(&self, callback: impl FnOnce() + 'static) {
        self.cell.add_done_callback(Box::new(callback));
    }

    /// A type-erased handle to the same task (what `all_tasks()` returns).
    pub fn any(&self) -> AnyTask
    where
        T: 'static,
    {
        AnyTask {
            cell: self.cell.clone(),
            _not_send: PhantomData,
        }
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.cell.poll_join(cx)
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.cell.handle_dropped();
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Task {} {:?}>", self.cell.name(), self.cell.status())
    }
}

/// A type-erased task handle: name, state and cancellation, without the result.
///
/// ```
/// evloop::run(async {
///     let task = evloop::create_task(evloop::sleep(std::time::Duration::from_secs(1)));
///     let names: Vec<String> = evloop::all_tasks().iter().map(|t| t.name()).collect();
///     assert!(names.contains(&task.name()));
///     task.abort();
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct AnyTask {
    cell: Arc<dyn TaskObject>,
    _not_send: PhantomData<*const ()>,
}

impl AnyTask {
    /// A process-unique id (`Task-N`'s N).
    pub fn id(&self) -> u64 {
        self.cell.id()
    }

    /// The task's name.
    pub fn name(&self) -> String {
        self.cell.name()
    }

    /// Renames the task.
    pub fn set_name(&self, name: impl Into<String>) {
        self.cell.set_name(name.into());
    }

    /// Requests cancellation; false if already done.
    pub fn cancel(&self) -> bool {
        self.cell.cancel(Cancelled::new())
    }

    /// Requests cancellation with a message.
    pub fn cancel_with(&self, message: impl Into<String>) -> bool {
        self.cell.cancel(Cancelled::with_message(message))
    }

    /// Whether the task finished.
    pub fn done(&self) -> bool {
        self.cell.status() != Status::Pending
    }

    /// Whether the task ended cancelled.
    pub fn cancelled(&self) -> bool {
        self.cell.status() == Status::Cancelled
    }

    /// Whether the task ended by panicking.
    pub fn panicked(&self) -> bool {
        self.cell.status() == Status::Panicked
    }

    /// Pending cancel requests (asyncio's `cancelling()`).
    pub fn cancelling(&self) -> u32 {
        self.cell.cancelling()
    }

    /// Decrements the pending cancel requests (asyncio's `uncancel()`).
    pub fn uncancel(&self) -> u32 {
        self.cell.uncancel()
    }

    /// Schedules `callback` once the task is done.
    pub fn add_done_callback(&self, callback: impl FnOnce() + 'static) {
        self.cell.add_done_callback(Box::new(callback));
    }

    /// Whether two handles refer to the same task.
    pub fn ptr_eq(&self, other: &AnyTask) -> bool {
        self.id() == other.id()
    }

    pub(crate) fn take_unreported_panic(&self) -> Option<evloop_reactor::Panic> {
        self.cell.take_unreported_panic()
    }
}

impl fmt::Debug for AnyTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Task {} {:?}>", self.cell.name(), self.cell.status())
    }
}

/// The task being polled right now, if any (asyncio's `current_task()`).
///
/// ```
/// evloop::run(async {
///     let me = evloop::current_task().unwrap();
///     assert!(me.name().starts_with("Task-"));
/// })
/// .unwrap();
/// assert!(evloop::current_task().is_none());
/// ```
pub fn current_task() -> Option<AnyTask> {
    current::current().map(|cell| AnyTask {
        cell,
        _not_send: PhantomData,
    })
}

/// The running loop's tasks that are not done (asyncio's `all_tasks()`); empty outside a loop.
pub fn all_tasks() -> Vec<AnyTask> {
    match EventLoop::running() {
        Some(lp) => tasks_of(&lp),
        None => Vec::new(),
    }
}

/// The not-done tasks of `lp`.
pub(crate) fn tasks_of(lp: &EventLoop) -> Vec<AnyTask> {
    TaskRegistry::of(lp)
        .pending()
        .into_iter()
        .map(|cell| AnyTask {
            cell,
            _not_send: PhantomData,
        })
        .collect()
}
