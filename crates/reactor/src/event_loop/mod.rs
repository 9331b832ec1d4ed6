//! The event loop: asyncio's `BaseEventLoop` scheduling core on a `mio::Poll`.
//!
//! This module holds the loop's state and its public face: scheduling (`call_soon`, `call_at`),
//! the clock, the lifecycle (`stop`, `close`) and the diagnostics. Each other job has a file of
//! its own: [`builder`] makes a loop, [`iteration`] runs one iteration phase by phase in the
//! order of asyncio's `_run_once`, [`running`] keeps the thread's running-loop state (what
//! `get_running_loop` and a task's waker read), and [`extensions`] the typed per-loop state of
//! the layers above; the exception-handler methods live beside `ExceptionContext` in
//! `crate::exception`. Everything here runs on the loop's thread, so the queues sit in
//! `RefCell`s; no borrow is ever held while user code runs, so callbacks may freely schedule
//! more work.

mod builder;
mod extensions;
mod iteration;
mod running;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evloop_callbacks::{Context, Handle, ReadyQueue, TaskRef, TimerHandle, TimerHeap};
use mio::{Events, Poll, Token};

use crate::clock::Clock;
use crate::exception::{ExceptionContext, ExceptionHandler};
use crate::io::IoState;
use crate::remote::{RemoteHandle, RemoteItem, RemoteShared};
use crate::{LoopError, Panic};

pub use builder::{Builder, debug_from_env};
use extensions::Extensions;
pub use running::get_running_loop;

/// The token of the loop's own `mio::Waker`.
const WAKER_TOKEN: Token = Token(usize::MAX);

struct Inner {
    id: u64,
    ready: RefCell<ReadyQueue>,
    timers: RefCell<TimerHeap>,
    shared: Arc<RemoteShared>,
    poll: RefCell<Poll>,
    events: RefCell<Events>,
    /// Reused buffer for draining the remote queue, so a steady stream of batches allocates once.
    remote_batch: RefCell<Vec<RemoteItem>>,
    clock: Clock,
    running: Cell<bool>,
    stopping: Cell<bool>,
    closed: Cell<bool>,
    /// The owning handle was dropped while the loop ran: close when the run ends.
    close_after_run: Cell<bool>,
    /// Polls that failed in a row (see [`MAX_POLL_FAILURES`](iteration::MAX_POLL_FAILURES)).
    poll_failures: Cell<u32>,
    /// The end of the window after the last poll, if recently known (see
    /// [`POLL_SKIP_WINDOW`](iteration::POLL_SKIP_WINDOW)); kept as the window's end so that the
    /// check costs one comparison of instants.
    skip_polls_until: Cell<Option<Instant>>,
    /// The last poll blocked and was ended by another thread's wake-up alone (no I/O): the
    /// iterations that run what it brought may skip their polls within the window.
    woken_by_remote: Cell<bool>,
    debug: Cell<bool>,
    slow_callback: Cell<Duration>,
    iterations: Cell<u64>,
    polls: Cell<u64>,
    exception_handler: RefCell<Option<ExceptionHandler>>,
    extensions: RefCell<Extensions>,
    close_hooks: RefCell<Vec<Box<dyn FnOnce()>>>,
    /// Registered I/O sources (sockets, pipes, fd callbacks, the signal pipe, pidfds).
    io: IoState,
}

/// asyncio's event loop: a single-threaded scheduler of callbacks, timers and I/O.
///
/// Cheap to clone (clones share one loop) and `!Send`: the loop belongs to the thread that made
/// it. Other threads use its [`remote`](EventLoop::remote) handle.
///
/// The value that [`new`](EventLoop::new) or [`Builder::build`] returns *owns* the loop: dropping
/// it closes a loop nobody closed (asyncio closes an unclosed loop when it is collected), at once
/// or, if the loop is running, when the run ends. That is what frees a loop whose callbacks hold
/// clones of it, a cycle no reference count can see through. Clones are handles: dropping one does
/// nothing, and after the owner is gone they find the loop closed.
///
/// ```
/// use evloop_reactor::EventLoop;
/// use std::time::Duration;
///
/// let lp = EventLoop::new().unwrap();
/// lp.call_soon(|| println!("first")).unwrap();
/// let stopper = lp.clone();
/// lp.call_later(Duration::from_millis(10), move || stopper.stop()).unwrap();
/// lp.run_forever().unwrap();
/// lp.close().unwrap();
/// ```
pub struct EventLoop {
    inner: Rc<Inner>,
    /// Whether this is the value `build()` returned (see the type's docs).
    owner: bool,
}

impl Clone for EventLoop {
    /// Another handle to the same loop; it does not own the loop.
    fn clone(&self) -> EventLoop {
        EventLoop {
            inner: self.inner.clone(),
            owner: false,
        }
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        if !self.owner || self.inner.closed.get() {
            return;
        }
        if self.inner.running.get() {
            self.inner.close_after_run.set(true);
        } else {
            self.close_unowned();
        }
    }
}

impl EventLoop {
    /// A process-unique id for this loop (never 0).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Whether two handles refer to the same loop.
    pub fn ptr_eq(&self, other: &EventLoop) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    fn check_closed(&self) -> Result<(), LoopError> {
        if self.inner.closed.get() {
            Err(LoopError::Closed)
        } else {
            Ok(())
        }
    }

    // ---- scheduling -------------------------------------------------------------------------

    /// Schedules `callback` to run on a later iteration, after everything already scheduled
    /// (asyncio's `call_soon`). Fails with "Event loop is closed" on a closed loop.
    ///
    /// ```
    /// let lp = evloop_reactor::EventLoop::new().unwrap();
    /// let handle = lp.call_soon(|| unreachable!("cancelled")).unwrap();
    /// handle.cancel();
    /// lp.run_once().unwrap();
    /// ```
    #[track_caller]
    pub fn call_soon(&self, callback: impl FnOnce() + 'static) -> Result<Handle, LoopError> {
        self.check_closed()?;
        self.push_ready(Handle::new(callback))
    }

    /// [`call_soon`](EventLoop::call_soon) that runs `callback` in a copy of `context` instead
    /// of the current one (asyncio's `call_soon(cb, context=ctx)`).
    ///
    /// ```
    /// use evloop_reactor::{Context, ContextVar, EventLoop};
    ///
    /// static USER: ContextVar<&'static str> = ContextVar::new("user");
    /// let mut ctx = Context::new();
    /// ctx.run(|| USER.set("ada"));
    /// let lp = EventLoop::new().unwrap();
    /// lp.call_soon_with_context(|| assert_eq!(USER.get(), Some("ada")), &ctx).unwrap();
    /// lp.run_once().unwrap();
    /// ```
    #[track_caller]
    pub fn call_soon_with_context(
        &self,
        callback: impl FnOnce() + 'static,
        context: &Context,
    ) -> Result<Handle, LoopError> {
        self.check_closed()?;
        self.push_ready(Handle::with_context(
            callback,
            std::panic::Location::caller(),
            context.snapshot(),
        ))
    }

    /// Appends to the ready queue, after whatever other threads sent before (asyncio appends
    /// both kinds of `call_soon` to one deque, so a thread-safe call that happened before this
    /// one runs first).
    #[inline]
    fn push_ready(&self, handle: Handle) -> Result<Handle, LoopError> {
        self.take_remote();
        self.inner.ready.borrow_mut().push_handle(handle.clone());
        Ok(handle)
    }

    /// Schedules `callback` to run once `delay` has passed (asyncio's `call_later`). A delay
    /// too long to represent (`Duration::MAX`, asyncio's `call_later(math.inf)`) means never:
    /// the timer can still be cancelled, and `close` drops it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = evloop_reactor::EventLoop::builder().virtual_clock(true).build().unwrap();
    /// let t = lp.call_later(Duration::from_secs(60), || println!("a minute later")).unwrap();
    /// assert_eq!(t.when() - lp.time(), Duration::from_secs(60));
    /// let never = lp.call_later(Duration::MAX, || unreachable!()).unwrap();
    /// assert!(never.when() > t.when());
    /// ```
    #[track_caller]
    pub fn call_later(
        &self,
        delay: Duration,
        callback: impl FnOnce() + 'static,
    ) -> Result<TimerHandle, LoopError> {
        let when = self.time().checked_add(delay);
        let when = when.unwrap_or_else(|| self.inner.timers.borrow().never());
        self.call_at(when, callback)
    }

    /// Schedules `callback` to run at loop time `when` (asyncio's `call_at`). A deadline in the
    /// past is allowed: the timer is due at once; one centuries away (see
    /// [`TimerHeap::never`](evloop_callbacks::TimerHeap::never)) never comes due.
    ///
    /// ```
    /// let lp = evloop_reactor::EventLoop::new().unwrap();
    /// let t = lp.call_at(lp.time(), || println!("due now")).unwrap();
    /// assert!(!t.cancelled());
    /// ```
    #[track_caller]
    pub fn call_at(
        &self,
        when: Instant,
        callback: impl FnOnce() + 'static,
    ) -> Result<TimerHandle, LoopError> {
        self.check_closed()?;
        Ok(self.inner.timers.borrow_mut().schedule(when, callback))
    }

    /// [`call_at`](EventLoop::call_at) that runs `callback` in a copy of `context` (asyncio's
    /// `call_at(when, cb, context=ctx)`); `call_later` is `call_at(lp.time() + delay, ..)`.
    ///
    /// ```
    /// use evloop_reactor::{Context, EventLoop};
    /// let lp = EventLoop::builder().virtual_clock(true).build().unwrap();
    /// let t = lp.call_at_with_context(lp.time(), || (), &Context::new()).unwrap();
    /// assert!(!t.cancelled());
    /// ```
    #[track_caller]
    pub fn call_at_with_context(
        &self,
        when: Instant,
        callback: impl FnOnce() + 'static,
        context: &Context,
    ) -> Result<TimerHandle, LoopError> {
        self.check_closed()?;
        let handle =
            Handle::with_context(callback, std::panic::Location::caller(), context.snapshot());
        Ok(self.inner.timers.borrow_mut().schedule_handle(when, handle))
    }

    /// Queues a task to be polled on the next iteration: the on-thread half of a task's waker.
    /// A closed loop drops the reference (releasing the task) and reports it.
    pub fn schedule_task(&self, task: TaskRef) -> Result<(), LoopError> {
        self.check_closed()?;
        self.inner.ready.borrow_mut().push_task(task);
        Ok(())
    }

    /// The loop's clock (asyncio's `time()`): monotonic, or virtual if the loop was built so.
    pub fn time(&self) -> Instant {
        self.inner.clock.now()
    }

    /// Whether the loop was built with a virtual clock.
    pub fn has_virtual_clock(&self) -> bool {
        self.inner.clock.is_virtual()
    }

    /// Moves a virtual clock forward by `by` (no effect on a real clock); timers that become due
    /// fire on the next iteration.
    pub fn advance_clock(&self, by: Duration) {
        self.inner.clock.advance(by);
    }

    /// A thread-safe handle for `call_soon_threadsafe` and `stop` from other threads.
    pub fn remote(&self) -> RemoteHandle {
        RemoteHandle {
            shared: self.inner.shared.clone(),
        }
    }

    // ---- lifecycle --------------------------------------------------------------------------

    /// Asks the loop to stop once the current batch of callbacks has run (asyncio's `stop`).
    ///
    /// Called before `run_forever`, it makes the next run do exactly one non-blocking iteration.
    /// From another thread use [`RemoteHandle::stop`].
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    /// Whether the loop is running.
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Whether the loop is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Closes the loop: pending callbacks and timers are dropped without running, the remote
    /// queue refuses further calls, the close hooks run, and every later scheduling call fails
    /// with "Event loop is closed". Idempotent. Fails with "Cannot close a running event loop".
    ///
    /// ```
    /// use evloop_reactor::{EventLoop, LoopError};
    /// let lp = EventLoop::new().unwrap();
    /// lp.close().unwrap();
    /// lp.close().unwrap();
    /// assert_eq!(lp.call_soon(|| ()).unwrap_err(), LoopError::Closed);
    /// ```
    pub fn close(&self) -> Result<(), LoopError> {
        if self.inner.running.get() {
            return Err(LoopError::CloseRunning);
        }
        if self.inner.closed.replace(true) {
            return Ok(());
        }
        self.inner.stopping.set(false);
        // Take everything out first and drop it with no borrow held: a callback's destructor may
        // call back into the loop (and find it closed). Each destructor runs on its own under
        // `catch_unwind`, so one that panics is reported and the close still finishes: every
        // other callback dropped, every source deregistered, every hook run.
        let mut ready = self.inner.ready.borrow_mut().take_all();
        let timers = self.inner.timers.borrow_mut().take_all();
        let remote = self.inner.shared.queue.close();
        self.inner.shared.drop_waker();
        while let Some(entry) = ready.pop() {
            self.drop_reporting("a pending callback", || entry.discard());
        }
        for timer in timers {
            self.drop_reporting("a pending timer", || timer.discard());
        }
        for item in remote {
            self.drop_reporting("a pending threadsafe callback", || drop(item));
        }
        // Registered sources go too: fd callbacks are dropped, async waiters are woken to find
        // the loop closed.
        for entry in self.inner.io.close() {
            self.drop_reporting("an I/O callback", || {
                match &entry {
                    crate::io::registry::Entry::Io(io) => io.wake_all(),
                    crate::io::registry::Entry::Direct(handler) => handler.on_loop_closed(),
                    crate::io::registry::Entry::Callbacks(_) => {}
                }
                drop(entry);
            });
        }
        let hooks = std::mem::take(&mut *self.inner.close_hooks.borrow_mut());
        for hook in hooks {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(hook)) {
                self.call_exception_handler(
                    ExceptionContext::new("Exception in a close hook")
                        .with_exception(Panic::from_payload(payload)),
                );
            }
        }
        Ok(())
    }

    /// Runs `drop` (a destructor of something the loop held), reporting a panic instead of
    /// letting it cut a close short.
    fn drop_reporting(&self, what: &str, drop: impl FnOnce()) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(drop)) {
            self.call_exception_handler(
                ExceptionContext::new(format!("Exception in the destructor of {what} at close"))
                    .with_exception(Panic::from_payload(payload)),
            );
        }
    }

    /// The owner is gone: close, then let go of what the loop keeps after a close (the
    /// extensions and the exception handler), which may hold clones of the loop too. Only
    /// handles that were cloned before remain, and they find the loop closed.
    fn close_unowned(&self) {
        let _ = self.close();
        let extensions = std::mem::take(&mut *self.inner.extensions.borrow_mut());
        for (_, extension) in extensions {
            self.drop_reporting("a loop extension", || drop(extension));
        }
        let handler = self.inner.exception_handler.borrow_mut().take();
        drop(handler);
    }

    /// Registers `hook` to run when the loop closes (after its queues were emptied). A layer
    /// above uses it to release what it attached to the loop, such as a default executor. On an
    /// already closed loop the hook runs at once.
    pub fn on_close(&self, hook: impl FnOnce() + 'static) {
        if self.inner.closed.get() {
            hook();
        } else {
            self.inner.close_hooks.borrow_mut().push(Box::new(hook));
        }
    }

    /// A reference that does not keep the loop alive: for the loop's own callbacks stored in
    /// the loop (the signal pipe's reader, a pidfd's), which would otherwise form a cycle.
    pub(crate) fn downgrade(&self) -> WeakLoop {
        WeakLoop(Rc::downgrade(&self.inner))
    }

    /// The slot of the user's exception handler (its methods live in `crate::exception`).
    pub(crate) fn exception_handler_slot(&self) -> &RefCell<Option<ExceptionHandler>> {
        &self.inner.exception_handler
    }

    /// The loop's I/O state (the registry of sources).
    pub(crate) fn io(&self) -> &IoState {
        &self.inner.io
    }

    /// Calls `f` with the loop's mio registry, to register or deregister a source.
    pub(crate) fn with_mio<R>(&self, f: impl FnOnce(&mio::Registry) -> R) -> R {
        f(self.inner.poll.borrow().registry())
    }

    // ---- debug ------------------------------------------------------------------------------

    /// Whether debug mode is on.
    pub fn get_debug(&self) -> bool {
        self.inner.debug.get()
    }

    /// Turns debug mode on or off. In debug mode, a callback that runs longer than
    /// [`slow_callback_duration`](EventLoop::slow_callback_duration) is reported through the
    /// exception handler.
    pub fn set_debug(&self, on: bool) {
        self.inner.debug.set(on);
    }

    /// The threshold for the slow-callback report (default 100 ms).
    pub fn slow_callback_duration(&self) -> Duration {
        self.inner.slow_callback.get()
    }

    /// Sets the threshold for the slow-callback report.
    pub fn set_slow_callback_duration(&self, duration: Duration) {
        self.inner.slow_callback.set(duration);
    }

    /// How many iterations the loop has run (a diagnostic; it shows a loop that spins).
    pub fn iteration_count(&self) -> u64 {
        self.inner.iterations.get()
    }

    /// How many times the loop has polled the reactor (a diagnostic: next to
    /// [`iteration_count`](EventLoop::iteration_count) it shows how many iterations skipped their
    /// poll, which a loop does only right after work from other threads).
    ///
    /// ```
    /// let lp = evloop_reactor::EventLoop::new()?;
    /// lp.call_soon(|| ())?;
    /// lp.run_once()?;
    /// assert_eq!((lp.iteration_count(), lp.poll_count()), (1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_count(&self) -> u64 {
        self.inner.polls.get()
    }

    /// How many callbacks and tasks are ready to run.
    pub fn ready_len(&self) -> usize {
        self.inner.ready.borrow().len()
    }

    /// How many I/O sources are registered (sockets, pipes, fd callbacks and the loop's own
    /// signal pipe and child watchers): a diagnostic that shows leaked registrations.
    pub fn io_source_count(&self) -> usize {
        self.inner.io.registry.len()
    }

    /// How many timers are scheduled (cancelled ones not yet cleaned up included).
    pub fn timer_count(&self) -> usize {
        self.inner.timers.borrow().len()
    }
}

/// A weak [`EventLoop`] reference (see `EventLoop::downgrade`).
pub(crate) struct WeakLoop(std::rc::Weak<Inner>);

impl WeakLoop {
    /// The loop, if it still exists.
    pub(crate) fn upgrade(&self) -> Option<EventLoop> {
        self.0.upgrade().map(|inner| EventLoop {
            inner,
            owner: false,
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: a loop that was never closed stops accepting remote work, so
        // that threads holding a RemoteHandle get "Event loop is closed" instead of queueing into
        // the void. Queued callbacks are dropped with the fields.
        self.closed.set(true);
        drop(self.shared.queue.close());
        self.shared.drop_waker();
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<EventLoop id={} running={} closed={} debug={}>",
            self.inner.id,
            self.is_running(),
            self.is_closed(),
            self.get_debug()
        )
    }
}
