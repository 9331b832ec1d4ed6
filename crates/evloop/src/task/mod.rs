//! Tasks: futures driven by the loop (asyncio's `Task`), and the join handle to await them.
//!
//! `create_task` takes any `Future + 'static`, `Send` or not, and returns a [`Task`]. The task
//! is polled on the loop thread whenever its waker fires; cancelling it drops the future at its
//! current await point (its destructors run, which is Rust's `finally`), unless the task is
//! inside a [`catch_cancel`], which turns the request into an `Err` the task can act on.

mod cancel;
mod catch;
mod cell;
mod current;
mod object;
mod registry;
mod schedule;
mod step;
mod waker;

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use evloop_reactor::{EventLoop, ExceptionContext, LoopError, Snapshot};

use crate::error::{Cancelled, TaskError};
pub use cancel::Raise;
pub(crate) use cancel::{
    Cancellable, Recorded, Waiter, peek_waiter, register_waiter, resolve_delegation,
};
pub use catch::{CatchCancel, catch_cancel};
use cell::{JoinTarget, Status, TaskCell, TaskObject};
use registry::TaskHost;

/// Task ids (and default names, `Task-N`) are unique across the process and increase in
/// creation order on each thread; a thread takes them from this counter in blocks of
/// [`ID_BLOCK`], so only the thread that takes the first block starts at 1.
static NEXT_TASK_ID: AtomicU64 = AtomicU64::new(1);

/// How many ids a thread takes at once. A locked read-modify-write per task was 7% of a spawn:
/// it waits for the stores that just wrote the new cell to drain.
const ID_BLOCK: u64 = 1024;

thread_local! {
    /// This thread's next id and the end of its block.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The next task id: consecutive on one thread within a block, as asyncio numbers its tasks;
/// threads creating tasks at once get ids from different blocks (see docs/asyncio-mapping.md).
#[inline]
fn next_task_id() -> u64 {
    IDS.with(|ids| {
        let (mut next, mut end) = ids.get();
        if next == end {
            next = NEXT_TASK_ID.fetch_add(ID_BLOCK, Ordering::Relaxed);
            end = next + ID_BLOCK;
        }
        ids.set((next + 1, end));
        next
    })
}

/// Starts `future` as a task on `lp` (the body of `create_task` and `LoopExt::create_task`),
/// in a copy of `context` (the current one when `None` is given: asyncio's `copy_context()`).
pub(crate) fn spawn_on<F>(
    lp: &EventLoop,
    future: F,
    created_at: &'static Location<'static>,
    context: Option<Option<Snapshot>>,
) -> Result<Task<F::Output>, LoopError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    if lp.is_closed() {
        return Err(LoopError::Closed);
    }
    Ok(spawn(&TaskHost::of(lp), future, created_at, context))
}

/// Starts `future` as a task of `host`'s loop, which is not closed.
#[inline]
fn spawn<F>(
    host: &TaskHost,
    future: F,
    created_at: &'static Location<'static>,
    context: Option<Option<Snapshot>>,
) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let id = next_task_id();
    let context = context.unwrap_or_else(Snapshot::capture);
    let cell = TaskCell::new(future, id, host.schedule(), created_at, context);
    cell.set_slot(host.add(cell.clone()));
    // The first step is queued now, in call_soon's order (asyncio's Task.__init__ calls
    // `call_soon(self.__step)`), whether or not the loop runs yet: off the running loop it goes
    // through the thread-safe queue, which keeps that order (see `LoopSchedule`).
    cell.schedule_first();
    Task {
        cell,
        _not_send: PhantomData,
    }
}

/// The running loop's task host, or a panic at the caller's line that says what to do. (A
/// running loop is never closed.)
#[track_caller]
#[inline]
fn running_host_for(what: &str) -> std::rc::Rc<TaskHost> {
    match TaskHost::running() {
        Some(host) => host,
        None => no_running_loop(what, LoopError::NoRunningLoop),
    }
}

/// Reports through the running loop's exception handler, or the default one outside a loop.
pub(crate) fn report(context: ExceptionContext) {
    EventLoop::with_running(|lp| match lp {
        Some(lp) => lp.call_exception_handler(context),
        None => evloop_reactor::default_exception_handler(&context),
    });
}

#[track_caller]
#[cold]
#[inline(never)]
fn no_running_loop(what: &str, error: LoopError) -> ! {
    panic!(
        "{what} called outside a running event loop ({error}): run it inside evloop::run \
         (or Runner::run / run_until_complete)"
    )
}

/// Starts `future` as a task on the running loop (asyncio's `asyncio.create_task`).
///
/// The future need not be `Send`. Its first poll happens on a later loop iteration, never inside
/// this call. It runs in a copy of the current context (see [`ContextVar`](crate::ContextVar)).
///
/// # Panics
///
/// Outside a running loop, at the caller's line ("no running event loop"), like `tokio::spawn`
/// outside a runtime; use [`LoopExt::create_task`](crate::LoopExt::create_task) to choose a loop
/// and get an error instead.
///
/// ```
/// let answer = evloop::run(async {
///     let task = evloop::create_task(async { 6 * 7 });
///     task.await
/// });
/// assert_eq!(answer.unwrap().unwrap(), 42);
/// ```
#[track_caller]
#[inline]
pub fn create_task<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let host = running_host_for("create_task()");
    spawn(&host, future, Location::caller(), None)
}

/// [`create_task`] in a copy of `context` instead of the current one (asyncio's
/// `create_task(coro, context=ctx)`).
///
/// # Panics
///
/// Outside a running loop, as [`create_task`].
///
/// ```
/// use evloop::contextvars::{Context, ContextVar};
///
/// static USER: ContextVar<&'static str> = ContextVar::new("user");
/// let seen = evloop::run(async {
///     let mut ctx = Context::new();
///     ctx.run(|| USER.set("ada"));
///     evloop::create_task_with_context(async { USER.get() }, &ctx).await
/// });
/// assert_eq!(seen.unwrap().unwrap(), Some("ada"));
/// ```
#[track_caller]
pub fn create_task_with_context<F>(future: F, context: &evloop_reactor::Context) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let host = running_host_for("create_task_with_context()");
    spawn(&host, future, Location::caller(), Some(context.snapshot()))
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
#[must_use = "dropping a Task detaches it: it runs on, its result is lost and a panic is reported as \"Task exception was never retrieved\" (call detach() to say so, abort() to cancel)"]
pub struct Task<T> {
    cell: Arc<dyn JoinTarget<T>>,
    _not_send: PhantomData<*const ()>,
}

impl<T> Task<T> {
    /// Requests cancellation (asyncio's `cancel()`). Returns false if the task is already done;
    /// on a task that panicked, the panic then counts as seen, as asyncio's `cancel()` clears
    /// `__log_traceback` (no "Task exception was never retrieved" report).
    ///
    /// If the task is suspended on one of evloop's awaitables (a [`LoopFuture`](crate::LoopFuture),
    /// another `Task`, a [`gather`](fn@crate::gather)), that is cancelled, and the cancellation
    /// comes back to this task through it, as in asyncio: an awaited task that catches its
    /// cancellation and returns a value gives this task that value. Otherwise the future is
    /// dropped at its current await point on the task's next step (a request made while the task
    /// runs is still delivered if that step is its last), unless it is inside [`catch_cancel`],
    /// which receives the request instead.
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

    /// Decrements the pending cancel requests and returns the rest (asyncio's `uncancel()`);
    /// reaching zero withdraws a request not delivered yet (asyncio 3.13).
    pub fn uncancel(&self) -> u32 {
        self.cell.uncancel()
    }

    /// The task's context: a copy of its context variables as they are now (asyncio's
    /// `Task.get_context()`).
    pub fn get_context(&self) -> evloop_reactor::Context {
        self.cell.context()
    }

    /// Where the task was created (the caller of `create_task`).
    pub fn created_at(&self) -> &'static Location<'static> {
        self.cell.created_at()
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

    /// Schedules `callback` to run (with `call_soon`, never synchronously) once the task is done,
    /// in the context current now (asyncio H2: the context it was registered with).
    pub fn add_done_callback(&self, callback: impl FnOnce() + 'static) {
        self.cell.add_done_callback(in_current_context(callback));
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

impl<T: 'static> Task<T> {
    /// Polls for the result without taking part in cancellation: what combinators that decide
    /// themselves how a cancellation reaches their children (gather, shield) use.
    #[inline]
    pub(crate) fn poll_quiet(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>> {
        match self.cell.poll_join(cx) {
            Poll::Ready(outcome) => Poll::Ready(outcome),
            Poll::Pending => match self.foreign_loop() {
                Some(error) => Poll::Ready(Err(error)),
                None => Poll::Pending,
            },
        }
    }

    /// The error for a task awaited from another loop than its own, which would never wake the
    /// awaiter: asyncio's "attached to a different loop".
    fn foreign_loop(&self) -> Option<TaskError> {
        let running = EventLoop::running_id();
        (running != 0 && running != self.cell.loop_id())
            .then(|| TaskError::DifferentLoop(different_loop(&self.cell.describe())))
    }

    fn waiter_id(&self) -> usize {
        Arc::as_ptr(&self.cell).cast::<()>() as usize
    }
}

/// `callback`, to be run in (a copy of) the context current now, wherever it is called from: a
/// done callback runs in the context it was registered in, not in that of whoever completed
/// the task or future (asyncio H2).
fn in_current_context(callback: impl FnOnce() + 'static) -> Box<dyn FnOnce()> {
    let mut context = evloop_reactor::copy_context();
    Box::new(move || context.run(callback))
}

/// asyncio's text for an awaitable of another loop, `what` being its repr: "Task <...> got Future
/// <...> attached to a different loop" when awaited by a task.
pub(crate) fn different_loop(what: &str) -> String {
    match current_task() {
        Some(task) => format!("Task {task:?} got Future {what} attached to a different loop"),
        None => format!("{what} is attached to a different loop"),
    }
}

/// Awaiting a task suspends the awaiting task on it: cancelling the awaiter cancels this task,
/// and the awaiter is cancelled in turn if this one ends cancelled (asyncio H4).
impl<T: 'static> Future for Task<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.poll_quiet(cx) {
            Poll::Ready(outcome) => {
                let cancelled = matches!(outcome, Err(TaskError::Cancelled(_)));
                if resolve_delegation(self.waiter_id(), cancelled) {
                    return Poll::Pending;
                }
                Poll::Ready(outcome)
            }
            Poll::Pending => {
                // (A task polling its own handle is refused there: "cannot await on itself".)
                register_waiter(self.waiter_id(), || {
                    Waiter::Task(self.cell.clone().as_task_object())
                });
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.cell.handle_dropped();
    }
}

/// asyncio's repr: `<Task pending name='Task-3' coro=<...> created at src/main.rs:10:5>`.
impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cell.describe())
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
    /// What the task is suspended on, when that is one evloop awaitable (for the task dump).
    pub(crate) fn awaiting(&self) -> Option<crate::dump::Awaited> {
        self.cell.awaiting().map(|waiter| waiter.awaited())
    }

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

    /// Requests cancellation; false if already done (see [`Task::cancel`]).
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

    /// Schedules `callback` once the task is done, in the context current now.
    pub fn add_done_callback(&self, callback: impl FnOnce() + 'static) {
        self.cell.add_done_callback(in_current_context(callback));
    }

    /// Requests cancellation with `cancelled` as the reason (what gathers pass on).
    pub(crate) fn cancel_as(&self, cancelled: Cancelled) -> bool {
        self.cell.cancel(cancelled)
    }

    /// Whether two handles refer to the same task.
    pub fn ptr_eq(&self, other: &AnyTask) -> bool {
        self.id() == other.id()
    }

    /// Where the task was created (the caller of `create_task`).
    pub fn created_at(&self) -> &'static Location<'static> {
        self.cell.created_at()
    }

    /// The task's context: a copy of its context variables as they are now.
    pub fn get_context(&self) -> evloop_reactor::Context {
        self.cell.context()
    }

    pub(crate) fn take_unreported_panic(&self) -> Option<evloop_reactor::Panic> {
        self.cell.take_unreported_panic()
    }
}

impl fmt::Debug for AnyTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cell.describe())
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
    match evloop_reactor::get_running_loop().ok() {
        Some(lp) => tasks_of(&lp),
        None => Vec::new(),
    }
}

/// The not-done tasks of `lp`.
pub(crate) fn tasks_of(lp: &EventLoop) -> Vec<AnyTask> {
    TaskHost::of(lp)
        .pending()
        .into_iter()
        .map(|cell| AnyTask {
            cell,
            _not_send: PhantomData,
        })
        .collect()
}
