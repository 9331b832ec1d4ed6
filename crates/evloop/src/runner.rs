//! `run()`, `Runner` and `run_until_complete`: asyncio's entry points and shutdown sequence.
//!
//! `run(main)` makes a new loop, runs `main` as a task until it finishes, then shuts down the
//! way `asyncio.run` does: cancel every task still pending and run the loop until they have all
//! finished (a task may catch its cancellation and clean up asynchronously, and is waited for),
//! report what failed during that clean-up, join the default executor (off the loop thread, for
//! at most 300 s), then close the loop. A failing or panicking `main` reaches the caller only
//! after that clean-up.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use evloop_reactor::{Builder, EventLoop, ExceptionContext, LoopError};

use crate::contextvars::Context as VarContext;

use crate::error::RunError;
use crate::executor::join_default_on_exit;
use crate::future::LoopFuture;
use crate::sigint::SigintGuard;
use crate::task::{AnyTask, Task, spawn_on, tasks_of};

mod sealed {
    pub trait Sealed {}
    impl Sealed for evloop_reactor::EventLoop {}
}

/// The facade's methods on [`EventLoop`]: tasks, futures and `run_until_complete`.
///
/// ```
/// use evloop::{EventLoop, LoopExt};
///
/// let lp = EventLoop::new().unwrap();
/// let answer = lp.run_until_complete(async { 6 * 7 }).unwrap();
/// assert_eq!(answer, 42);
/// lp.close().unwrap();
/// ```
pub trait LoopExt: sealed::Sealed {
    /// Starts `future` as a task on this loop; "Event loop is closed" on a closed loop.
    #[track_caller]
    fn create_task<F>(&self, future: F) -> Result<Task<F::Output>, LoopError>
    where
        F: Future + 'static,
        F::Output: 'static;

    /// [`create_task`](LoopExt::create_task) in a copy of `context` instead of the current one
    /// (asyncio's `loop.create_task(coro, context=ctx)`).
    ///
    /// ```
    /// use evloop::contextvars::{Context, ContextVar};
    /// use evloop::{EventLoop, LoopExt};
    ///
    /// static N: ContextVar<u32> = ContextVar::new("n");
    /// let lp = EventLoop::new().unwrap();
    /// let mut ctx = Context::new();
    /// ctx.run(|| N.set(5));
    /// let task = lp.create_task_with_context(async { N.get() }, &ctx).unwrap();
    /// assert_eq!(lp.run_until_complete(task).unwrap().unwrap(), Some(5));
    /// lp.close().unwrap();
    /// ```
    #[track_caller]
    fn create_task_with_context<F>(
        &self,
        future: F,
        context: &VarContext,
    ) -> Result<Task<F::Output>, LoopError>
    where
        F: Future + 'static,
        F::Output: 'static;

    /// Runs the loop until `future` (run as a task) is done, and returns its output (asyncio B3).
    ///
    /// If `stop()` ends the loop first: "Event loop stopped before Future completed.", and the
    /// task stays pending on the loop.
    #[track_caller]
    fn run_until_complete<F>(&self, future: F) -> Result<F::Output, RunError>
    where
        F: Future + 'static,
        F::Output: 'static;

    /// A new [`LoopFuture`] bound to this loop (asyncio's `create_future`).
    fn create_future<T: 'static>(&self) -> LoopFuture<T>;
}

impl LoopExt for EventLoop {
    #[track_caller]
    fn create_task<F>(&self, future: F) -> Result<Task<F::Output>, LoopError>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        spawn_on(self, future, Location::caller(), None)
    }

    #[track_caller]
    fn create_task_with_context<F>(
        &self,
        future: F,
        context: &VarContext,
    ) -> Result<Task<F::Output>, LoopError>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        spawn_on(self, future, Location::caller(), Some(context.snapshot()))
    }

    #[track_caller]
    fn run_until_complete<F>(&self, future: F) -> Result<F::Output, RunError>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if self.is_closed() {
            return Err(LoopError::Closed.into());
        }
        if self.is_running() {
            return Err(LoopError::AlreadyRunning.into());
        }
        if EventLoop::running_id() != 0 {
            return Err(LoopError::AnotherLoopRunning.into());
        }
        let task = spawn_on(self, future, Location::caller(), None)?;
        run_spawned(self, task)
    }

    #[track_caller]
    fn create_future<T: 'static>(&self) -> LoopFuture<T> {
        LoopFuture::new(self)
    }
}

/// The second half of `run_until_complete`: runs the loop until `task` is done.
fn run_spawned<T: 'static>(lp: &EventLoop, mut task: Task<T>) -> Result<T, RunError> {
    // The stop callback must not outlive this call: a task that finishes during a later run
    // must not stop that run (asyncio removes its callback in `finally`).
    let active = Rc::new(Cell::new(true));
    let (stopper, armed) = (lp.clone(), active.clone());
    task.add_done_callback(move || {
        if armed.replace(false) {
            stopper.stop();
        }
    });
    let ran = lp.run_forever();
    // asyncio removes its callback in `finally`, which keeps it from stopping a later run,
    // unless the future completed in the very iteration the loop stopped in: the callback was
    // already scheduled then, and it stops the next run after one iteration (a `stop()` inside
    // the main task's last step makes `asyncio.run`'s clean-up fail that way).
    if !task.done() {
        active.set(false);
    }
    ran?;
    match task.take_result() {
        Some(outcome) => outcome.map_err(RunError::Task),
        None => Err(RunError::StoppedBeforeComplete),
    }
}

/// Runs `main` on a new event loop and shuts everything down after it (asyncio's `run`).
///
/// Returns `main`'s output, or a [`RunError`]: called inside a running loop, `main` panicked or
/// was cancelled, or the loop was stopped before `main` finished. Whatever happens, every task
/// left pending has been cancelled and has finished, and the loop is closed, before this
/// returns. A `main` that returns `Result` gives `Ok(Ok(..))` or `Ok(Err(..))`: write
/// `evloop::run(main())??` to propagate both.
///
/// ```
/// use std::time::Duration;
///
/// async fn main_task() -> &'static str {
///     evloop::sleep(Duration::from_millis(1)).await;
///     "done"
/// }
/// assert_eq!(evloop::run(main_task()).unwrap(), "done");
/// ```
#[track_caller]
pub fn run<F>(main: F) -> Result<F::Output, RunError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    run_with(Runner::new(), main)
}

/// [`run`] on a configured [`Runner`] (asyncio's `run(main, debug=..., loop_factory=...)`):
/// runs `main` on the runner's loop, then shuts down as `run` does.
///
/// ```
/// let debug = evloop::run_with(evloop::Runner::new().debug(true), async {
///     evloop::get_running_loop().unwrap().get_debug()
/// });
/// assert!(debug.unwrap());
/// ```
#[track_caller]
pub fn run_with<F>(mut runner: Runner, main: F) -> Result<F::Output, RunError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    // The process pool's worker entry check comes before anything else: in a worker process
    // this never returns (the Rust form of `if __name__ == '__main__'`).
    crate::entry::worker_entry_check();
    if EventLoop::running_id() != 0 {
        return Err(RunError::NestedRun);
    }
    let outcome = runner.run(main);
    // As `with Runner() as r: return r.run(main)`: a failing clean-up replaces the outcome.
    let closed = runner.close();
    closed.and(outcome)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunnerState {
    Created,
    Initialized,
    Closed,
}

/// Several `run`s on one loop, then one shutdown (asyncio's `Runner`).
///
/// The loop is created on the first `run`; `close()` (or dropping the runner) performs `run()`'s
/// shutdown sequence. A closed runner refuses to run ("Runner is closed").
///
/// ```
/// let mut runner = evloop::Runner::new();
/// assert_eq!(runner.run(async { 1 }).unwrap(), 1);
/// assert_eq!(runner.run(async { 2 }).unwrap(), 2);
/// runner.close().unwrap();
/// assert_eq!(runner.run(async { 3 }).unwrap_err().to_string(), "Runner is closed");
/// ```
pub struct Runner {
    builder: Builder,
    lp: Option<EventLoop>,
    state: RunnerState,
    /// The context every `run` starts its main task in; what main sets stays for the next run
    /// (asyncio's `Runner` keeps one context).
    context: VarContext,
}

impl Default for Runner {
    fn default() -> Self {
        Runner::new()
    }
}

impl Runner {
    /// A runner whose loop has the default settings.
    pub fn new() -> Runner {
        Runner::with_builder(Builder::default())
    }

    /// A runner whose loop is built from `builder` (debug mode, a virtual clock).
    pub fn with_builder(builder: Builder) -> Runner {
        Runner {
            builder,
            lp: None,
            state: RunnerState::Created,
            context: evloop_reactor::copy_context(),
        }
    }

    fn lazy_init(&mut self) -> Result<EventLoop, RunError> {
        if self.state == RunnerState::Closed {
            return Err(RunError::RunnerClosed);
        }
        if let Some(lp) = &self.lp {
            return Ok(lp.clone());
        }
        let lp = self
            .builder
            .clone()
            .build()
            .map_err(|e| RunError::LoopCreation(e.to_string()))?;
        // The runner keeps the owning handle (its drop closes the loop) and lends out clones.
        let handle = lp.clone();
        self.lp = Some(lp);
        self.state = RunnerState::Initialized;
        Ok(handle)
    }

    /// Runs the loop in debug mode, or not, whatever `EVLOOP_DEBUG` says (asyncio's
    /// `Runner(debug=...)`): slow callbacks are reported, and so are tasks' creation sites in
    /// reports. Has no effect once the loop exists.
    ///
    /// ```
    /// let mut runner = evloop::Runner::new().debug(true);
    /// let debug = runner.run(async { evloop::get_running_loop().unwrap().get_debug() });
    /// assert!(debug.unwrap());
    /// ```
    pub fn debug(mut self, on: bool) -> Runner {
        self.builder = self.builder.clone().debug(on);
        self
    }

    /// The runner's loop (created now if it does not exist yet).
    pub fn get_loop(&mut self) -> Result<EventLoop, RunError> {
        self.lazy_init()
    }

    /// Runs `future` as the main task until it is done (asyncio's `Runner.run`).
    ///
    /// The main task runs in the runner's context, which is kept from one `run` to the next.
    /// On the main thread, while SIGINT has its default disposition, Ctrl-C is handled as in
    /// asyncio: the first cancels the main task (and, through it, what it awaits) and the run
    /// ends with [`RunError::Interrupted`] (unless main catches the cancellation and returns a
    /// value; or main had been cancelled by the program as well, which asyncio's `uncancel()`
    /// rule reports as the cancellation); a second Ctrl-C interrupts at once; the default
    /// disposition is restored afterwards.
    #[track_caller]
    pub fn run<F>(&mut self, future: F) -> Result<F::Output, RunError>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if self.state == RunnerState::Closed {
            return Err(RunError::RunnerClosed);
        }
        if EventLoop::running_id() != 0 {
            return Err(RunError::NestedRunnerRun);
        }
        let lp = self.lazy_init()?;
        // Ctrl-C (asyncio G6): the main task is created here so that the handler can cancel it.
        let main = spawn_on(
            &lp,
            future,
            Location::caller(),
            Some(self.context.snapshot()),
        )?;
        let handle = main.any();
        let sigint = SigintGuard::install(&lp, handle.clone());
        let outcome = run_spawned(&lp, main);
        let interrupts = sigint.map(SigintGuard::finish);
        self.context = handle.get_context();
        let (count, cancelled_main) =
            interrupts.map_or((0, false), |i| (i.count, i.cancelled_main));
        match outcome {
            // asyncio: `if self._interrupt_count > 0 and task.uncancel() == 0: raise
            // KeyboardInterrupt()`: a main the program had cancelled as well stays a
            // cancellation (so does one that ended before the Ctrl-C could reach it).
            Err(RunError::Task(error))
                if cancelled_main && error.is_cancelled() && handle.uncancel() == 0 =>
            {
                Err(RunError::Interrupted)
            }
            Err(RunError::StoppedBeforeComplete) if count > 1 => Err(RunError::Interrupted),
            outcome => outcome,
        }
    }

    /// Shuts down (asyncio's `Runner.close`): cancels every pending task and waits for them
    /// (panics among them go to the exception handler), joins the default executor (asyncio's
    /// 300 s limit; a running `to_thread` job is waited for), then closes the loop, which
    /// happens even if the clean-up fails; the failure (the loop stopped before the tasks were
    /// done, say) is returned. Idempotent: a second call returns `Ok`. Dropping the runner
    /// closes it and reports a failure through the exception handler.
    pub fn close(&mut self) -> Result<(), RunError> {
        if self.state == RunnerState::Closed {
            return Ok(());
        }
        self.state = RunnerState::Closed;
        let Some(lp) = self.lp.take() else {
            return Ok(());
        };
        // asyncio's close(): the loop is closed whatever happens (its `finally`), and a failure
        // of the clean-up is raised to the caller.
        let cleaned = cancel_all_tasks(&lp).and_then(|()| {
            // asyncio G4 step 3: a thread still running (a `to_thread` job) keeps us here until
            // it finishes, or for at most 300 s.
            if lp.is_closed() {
                Ok(())
            } else {
                join_default_on_exit(&lp)
            }
        });
        // The loop is not running here, so close() cannot fail with "running"; a loop closed by
        // user code already is fine (close is idempotent).
        let _ = lp.close();
        cleaned
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Err(error) = self.close() {
            crate::task::report(
                ExceptionContext::new("error while closing an evloop::Runner")
                    .with_exception(error),
            );
        }
    }
}

/// asyncio's `_cancel_all_tasks`: cancel what is pending, run until all of it is done (tasks
/// that catch the cancellation are waited for), then report the ones that panicked.
fn cancel_all_tasks(lp: &EventLoop) -> Result<(), RunError> {
    let tasks = tasks_of(lp);
    if tasks.is_empty() {
        return Ok(());
    }
    for task in &tasks {
        task.cancel();
    }
    lp.run_until_complete(AllDone::new(tasks.clone()))?;
    for task in &tasks {
        if let Some(panic) = task.take_unreported_panic() {
            lp.call_exception_handler(
                ExceptionContext::new("unhandled exception during evloop::run() shutdown")
                    .with_exception(panic)
                    .with_task(format!("{task:?}")),
            );
        }
    }
    Ok(())
}

/// Completes once every task in the list is done, as heard from their done callbacks (asyncio
/// waits on `gather(*to_cancel)`, which learns of each child through a callback scheduled when
/// it finishes: a `stop()` that ends the iteration first leaves the clean-up unfinished).
struct AllDone {
    tasks: Vec<AnyTask>,
    left: Option<Rc<Cell<usize>>>,
    waker: Rc<RefCell<Option<Waker>>>,
}

impl AllDone {
    fn new(tasks: Vec<AnyTask>) -> AllDone {
        AllDone {
            tasks,
            left: None,
            waker: Rc::default(),
        }
    }
}

impl Future for AllDone {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.waker.borrow_mut() = Some(cx.waker().clone());
        let this = &mut *self;
        let left = this.left.get_or_insert_with(|| {
            let left = Rc::new(Cell::new(this.tasks.len()));
            for task in &this.tasks {
                let (left, waker) = (left.clone(), this.waker.clone());
                task.add_done_callback(move || {
                    left.set(left.get() - 1);
                    if let Some(waker) = waker.borrow().as_ref() {
                        waker.wake_by_ref();
                    }
                });
            }
            left
        });
        if left.get() == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
