//! The event loop: asyncio's `BaseEventLoop` scheduling core on a `mio::Poll`.
//!
//! One iteration ([`EventLoop::run_once`]) follows asyncio's `_run_once` step by step: clean up
//! cancelled timers; poll the reactor (without blocking when work is ready or a stop is pending,
//! until the next deadline when timers exist, indefinitely otherwise); take in what other threads
//! sent; move due timers to the ready queue; run exactly the callbacks that were ready when the
//! batch started. Everything here runs on the loop's thread, so the queues sit in `RefCell`s; no
//! borrow is ever held while user code runs, so callbacks may freely schedule more work.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use evloop_callbacks::{Context, Handle, Ready, ReadyQueue, TaskRef, TimerHandle, TimerHeap};
use mio::{Events, Poll, Token};

use crate::clock::Clock;
use crate::exception::{ExceptionContext, ExceptionHandler, Severity, default_exception_handler};
use crate::io::IoState;
use crate::remote::{RemoteHandle, RemoteItem, Shared};
use crate::{LoopError, Panic};

/// asyncio's `MAXIMUM_SELECT_TIMEOUT`: the longest the reactor blocks in one call.
const MAX_POLL_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// asyncio's default `slow_callback_duration`.
const DEFAULT_SLOW_CALLBACK: Duration = Duration::from_millis(100);

/// How many polls in a row may fail before `run_forever` gives up with the error (asyncio raises
/// at the first; a few retries ride out a transient ENOMEM without spinning on a broken epoll).
const MAX_POLL_FAILURES: u32 = 10;

/// The token of the loop's own `mio::Waker`.
const WAKER_TOKEN: Token = Token(usize::MAX);

static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The loop running on this thread, if any (asyncio's `_get_running_loop`).
    static RUNNING: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
    /// Its id, readable without touching the `RefCell` (the task-waker fast path).
    static RUNNING_ID: Cell<u64> = const { Cell::new(0) };
    /// Its state, for the task-waker fast path: a plain pointer, so that queueing a task woken
    /// on the loop thread borrows no `RefCell` and counts no reference. Set and cleared together
    /// with `RUNNING`, whose clone (and the `RunningGuard`'s) keeps the pointee alive meanwhile.
    static RUNNING_INNER: Cell<*const Inner> = const { Cell::new(std::ptr::null()) };
}

/// A hasher for `TypeId` keys, which are already hashes: the extension lookup is on the path of
/// every task spawn, and SipHash would be most of its cost.
#[derive(Default)]
struct TypeIdHasher(u64);

impl std::hash::Hasher for TypeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not the path `TypeId` takes today; a plain FNV-1a keeps any other encoding correct.
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 ^= value;
    }
}

type Extensions = HashMap<TypeId, Rc<dyn Any>, std::hash::BuildHasherDefault<TypeIdHasher>>;

/// Configures an [`EventLoop`] before it is built.
///
/// ```
/// use evloop_reactor::EventLoop;
///
/// let lp = EventLoop::builder().virtual_clock(true).debug(true).build().unwrap();
/// assert!(lp.get_debug());
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    virtual_clock: bool,
    /// `None`: from the environment (`EVLOOP_DEBUG`), as asyncio reads `PYTHONASYNCIODEBUG`.
    debug: Option<bool>,
}

/// Whether `EVLOOP_DEBUG` asks for debug mode: set to anything but empty or `0` (asyncio takes
/// any non-empty `PYTHONASYNCIODEBUG`; `0` meaning "on" would surprise).
///
/// ```
/// let lp = evloop_reactor::EventLoop::new().unwrap();
/// assert_eq!(lp.get_debug(), evloop_reactor::debug_from_env());
/// ```
pub fn debug_from_env() -> bool {
    std::env::var_os("EVLOOP_DEBUG").is_some_and(|v| !v.is_empty() && v != "0")
}

impl Builder {
    /// Uses a virtual clock: time stands still while callbacks run and jumps to the next
    /// deadline whenever the loop would otherwise block with nothing else to wait for.
    pub fn virtual_clock(mut self, on: bool) -> Builder {
        self.virtual_clock = on;
        self
    }

    /// Starts in debug mode (slow callbacks are reported), or not, whatever `EVLOOP_DEBUG` says.
    /// Without this call the loop starts in debug mode when `EVLOOP_DEBUG` is set (to anything
    /// but empty or `0`).
    pub fn debug(mut self, on: bool) -> Builder {
        self.debug = Some(on);
        self
    }

    /// Builds the loop (this creates the epoll instance and the waker's eventfd).
    pub fn build(self) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let id = NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed);
        Ok(EventLoop {
            owner: true,
            inner: Rc::new(Inner {
                id,
                ready: RefCell::new(ReadyQueue::new()),
                timers: RefCell::new(TimerHeap::new()),
                shared: Arc::new(Shared::new(waker, id)),
                poll: RefCell::new(poll),
                events: RefCell::new(Events::with_capacity(256)),
                remote_batch: RefCell::new(Vec::new()),
                clock: Clock::new(self.virtual_clock),
                running: Cell::new(false),
                stopping: Cell::new(false),
                closed: Cell::new(false),
                close_after_run: Cell::new(false),
                poll_failures: Cell::new(0),
                debug: Cell::new(self.debug.unwrap_or_else(debug_from_env)),
                slow_callback: Cell::new(DEFAULT_SLOW_CALLBACK),
                iterations: Cell::new(0),
                exception_handler: RefCell::new(None),
                extensions: RefCell::new(Extensions::default()),
                close_hooks: RefCell::new(Vec::new()),
                io: IoState::default(),
            }),
        })
    }
}

struct Inner {
    id: u64,
    ready: RefCell<ReadyQueue>,
    timers: RefCell<TimerHeap>,
    shared: Arc<Shared>,
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
    /// Polls that failed in a row (see [`MAX_POLL_FAILURES`]).
    poll_failures: Cell<u32>,
    debug: Cell<bool>,
    slow_callback: Cell<Duration>,
    iterations: Cell<u64>,
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
    /// A new loop with the real clock, not in debug mode.
    pub fn new() -> io::Result<EventLoop> {
        Builder::default().build()
    }

    /// A builder for a loop with other settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The loop running on this thread, if any.
    ///
    /// ```
    /// use evloop_reactor::EventLoop;
    /// assert!(EventLoop::running().is_none());
    /// ```
    pub fn running() -> Option<EventLoop> {
        RUNNING.with(|running| running.borrow().clone())
    }

    /// Calls `f` with the loop running on this thread, without cloning it.
    pub fn with_running<R>(f: impl FnOnce(Option<&EventLoop>) -> R) -> R {
        RUNNING.with(|running| f(running.borrow().as_ref()))
    }

    /// The id of the loop running on this thread (0 when none): one thread-local read.
    pub fn running_id() -> u64 {
        RUNNING_ID.with(Cell::get)
    }

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
        if self.inner.shared.queue.has_items() {
            self.take_remote();
        }
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

    /// Queues `task` on the loop running on this thread if that loop's [`id`](EventLoop::id) is
    /// `loop_id`, and hands it back otherwise (another loop runs here, or none does): the fast,
    /// on-thread half of a task's waker, one thread-local read and a push.
    ///
    /// ```
    /// use evloop_reactor::{EventLoop, TaskRef, TaskRefVTable};
    /// use std::ptr::NonNull;
    ///
    /// unsafe fn nothing(_: NonNull<()>) {}
    /// unsafe fn describe(_: NonNull<()>) -> String {
    ///     "<Nop>".to_owned()
    /// }
    /// static VTABLE: TaskRefVTable =
    ///     TaskRefVTable { run: nothing, drop: nothing, describe, name: "Nop" };
    /// // SAFETY: the vtable's functions do nothing with the pointer.
    /// let task = unsafe { TaskRef::from_raw(NonNull::dangling(), &VTABLE) };
    /// let lp = EventLoop::new().unwrap();
    /// // Not running: the task comes back, for the caller to send through `remote()`.
    /// assert!(EventLoop::schedule_task_if_running(lp.id(), task).is_err());
    /// ```
    pub fn schedule_task_if_running(loop_id: u64, task: TaskRef) -> Result<(), TaskRef> {
        let inner = RUNNING_INNER.with(Cell::get);
        if inner.is_null() {
            return Err(task);
        }
        // SAFETY: RUNNING_INNER is non-null only between `enter` and the `RunningGuard`'s drop,
        // while the guard holds a clone of the loop, so the `Inner` is alive; and it is only
        // ever shared (`&`), like every other access to a loop from its own thread.
        let inner = unsafe { &*inner };
        if inner.id != loop_id {
            return Err(task);
        }
        // A running loop cannot be closed (close() refuses), so no closed check is needed.
        // What other threads sent first runs first (one order, as in asyncio).
        if inner.shared.queue.has_items() {
            return Err(task);
        }
        inner.ready.borrow_mut().push_task(task);
        Ok(())
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

    /// Runs iterations until [`stop`](EventLoop::stop) is called (asyncio's `run_forever`).
    ///
    /// Fails with "Event loop is closed", "This event loop is already running", or "Cannot run
    /// the event loop while another loop is running".
    ///
    /// A reactor that keeps failing (every `epoll_wait` an error other than EINTR) is reported
    /// through the exception handler each time; after 10 failures in a row the run ends with
    /// [`LoopError::ReactorFailed`], as asyncio's `run_forever` raises the selector's error.
    pub fn run_forever(&self) -> Result<(), LoopError> {
        let _running = self.enter()?;
        loop {
            self.iterate()?;
            if self.inner.stopping.get() {
                break;
            }
        }
        Ok(())
    }

    /// Runs exactly one iteration, blocking in the reactor if nothing is ready (asyncio's
    /// `_run_once`, with `run_forever`'s checks).
    pub fn run_once(&self) -> Result<(), LoopError> {
        let _running = self.enter()?;
        self.iterate()
    }

    /// Marks this loop as running on this thread until the guard drops.
    fn enter(&self) -> Result<RunningGuard, LoopError> {
        self.check_closed()?;
        if self.inner.running.get() {
            return Err(LoopError::AlreadyRunning);
        }
        if Self::running_id() != 0 {
            return Err(LoopError::AnotherLoopRunning);
        }
        self.inner.running.set(true);
        RUNNING.with(|running| *running.borrow_mut() = Some(self.clone()));
        RUNNING_ID.with(|id| id.set(self.inner.id));
        RUNNING_INNER.with(|ptr| ptr.set(Rc::as_ptr(&self.inner)));
        Ok(RunningGuard { lp: self.clone() })
    }

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
        let ready = self.inner.ready.borrow_mut().take_all();
        let timers = self.inner.timers.borrow_mut().take_all();
        let remote = self.inner.shared.queue.close();
        self.inner.shared.drop_waker();
        for entry in ready {
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

    /// Per-loop state of type `T`, created with `T::default()` on first use.
    ///
    /// This is how the layers above attach their own state (a task registry, a default executor)
    /// to a loop without this crate knowing their types.
    ///
    /// ```
    /// use std::cell::Cell;
    /// let lp = evloop_reactor::EventLoop::new().unwrap();
    /// lp.extension::<Cell<u32>>().set(7);
    /// assert_eq!(lp.extension::<Cell<u32>>().get(), 7);
    /// ```
    pub fn extension<T: Default + 'static>(&self) -> Rc<T> {
        let key = TypeId::of::<T>();
        if let Some(found) = self.inner.extensions.borrow().get(&key) {
            return found.clone().downcast::<T>().expect("keyed by TypeId");
        }
        let value: Rc<T> = Rc::new(T::default());
        self.inner
            .extensions
            .borrow_mut()
            .insert(key, value.clone() as Rc<dyn Any>);
        value
    }

    /// A reference that does not keep the loop alive: for the loop's own callbacks stored in
    /// the loop (the signal pipe's reader, a pidfd's), which would otherwise form a cycle.
    pub(crate) fn downgrade(&self) -> WeakLoop {
        WeakLoop(Rc::downgrade(&self.inner))
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

    // ---- exception handler ------------------------------------------------------------------

    /// Sets (or with `None`, removes) the exception handler.
    ///
    /// ```
    /// use evloop_reactor::EventLoop;
    /// use std::rc::Rc;
    ///
    /// let lp = EventLoop::new().unwrap();
    /// lp.set_exception_handler(Some(Rc::new(|_lp: &EventLoop, ctx: &evloop_reactor::ExceptionContext| {
    ///     println!("reported: {}", ctx.message);
    /// })));
    /// lp.call_soon(|| panic!("boom")).unwrap();
    /// lp.run_once().unwrap(); // prints "reported: Exception in callback ..."
    /// ```
    pub fn set_exception_handler(&self, handler: Option<ExceptionHandler>) {
        *self.inner.exception_handler.borrow_mut() = handler;
    }

    /// The current exception handler, if one was set.
    pub fn exception_handler(&self) -> Option<ExceptionHandler> {
        self.inner.exception_handler.borrow().clone()
    }

    /// asyncio's `default_exception_handler`: one report on stderr.
    pub fn default_exception_handler(&self, context: &ExceptionContext) {
        default_exception_handler(context);
    }

    /// Reports `context` through the exception handler, or the default one when none is set.
    ///
    /// A handler that panics is itself reported to the default handler ("Unhandled error in
    /// exception handler", with the original context); nothing escapes into the loop.
    pub fn call_exception_handler(&self, context: ExceptionContext) {
        let handler = self.exception_handler();
        let Some(handler) = handler else {
            default_exception_handler(&context);
            return;
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handler(self, &context))) {
            let mut report = ExceptionContext::new("Unhandled error in exception handler")
                .with_exception(Panic::from_payload(payload));
            report.context = Some(Box::new(context));
            default_exception_handler(&report);
        }
    }

    // ---- one iteration ----------------------------------------------------------------------

    fn iterate(&self) -> Result<(), LoopError> {
        let inner = &*self.inner;
        inner.iterations.set(inner.iterations.get() + 1);
        inner.timers.borrow_mut().clean_up();

        let timeout = if inner.stopping.get()
            || !inner.ready.borrow().is_empty()
            || inner.shared.queue.has_items()
        {
            Some(Duration::ZERO)
        } else {
            let next = inner.timers.borrow().next_deadline();
            next.map(|when| {
                when.saturating_duration_since(self.time())
                    .min(MAX_POLL_TIMEOUT)
            })
        };
        let polled = self.poll_reactor(timeout);
        self.take_remote();

        // asyncio's clock-resolution rule: everything due up to now (+1 ns, the monotonic clock's
        // resolution here) becomes ready.
        // (No timers, no clock read: a loop of ready callbacks and tasks never needs the time.)
        if !inner.timers.borrow().is_empty() {
            let end = self.time() + Duration::from_nanos(1);
            let mut timers = inner.timers.borrow_mut();
            let mut ready = inner.ready.borrow_mut();
            // Moving a handle between the two queues runs no user code, so both borrows may
            // be held across the whole transfer.
            while let Some(handle) = timers.pop_due(end) {
                ready.push_handle(handle);
            }
        }

        let batch = inner.ready.borrow().len();
        for _ in 0..batch {
            let entry = inner.ready.borrow_mut().pop();
            match entry {
                Some(Ready::Handle(handle)) => self.run_handle(handle),
                Some(Ready::Task(task)) => self.run_task(task),
                None => break,
            }
        }
        polled
    }

    /// Polls mio, parking the remote queue around a blocking poll so that other threads know to
    /// wake us. With a virtual clock, a wait for a timer becomes a jump of the clock instead.
    fn poll_reactor(&self, timeout: Option<Duration>) -> Result<(), LoopError> {
        let inner = &*self.inner;
        let mut timeout = timeout;
        let mut jump_to = None;
        if inner.clock.is_virtual() && timeout.is_some_and(|t| !t.is_zero()) {
            if inner.shared.clock_held() {
                // Outside work is in flight: wait for it in real time, however long it takes.
                timeout = None;
            } else {
                jump_to = inner.timers.borrow().next_deadline();
                timeout = Some(Duration::ZERO);
            }
        }
        let parked = timeout != Some(Duration::ZERO) && inner.shared.queue.try_park();
        if timeout != Some(Duration::ZERO) && !parked {
            timeout = Some(Duration::ZERO);
        }
        let mut events = inner.events.borrow_mut();
        let mut poll = inner.poll.borrow_mut();
        if let Err(error) = poll.poll(&mut events, timeout) {
            // EINTR: a signal arrived; the iteration simply goes on. Anything else is reported
            // rather than spun on.
            if error.kind() != io::ErrorKind::Interrupted {
                drop((events, poll));
                if parked {
                    inner.shared.queue.unpark();
                }
                let errno = error.raw_os_error().unwrap_or(libc::EIO);
                self.call_exception_handler(
                    ExceptionContext::new("Error polling the reactor").with_exception(error),
                );
                let failures = inner.poll_failures.get() + 1;
                inner.poll_failures.set(failures);
                if failures >= MAX_POLL_FAILURES {
                    inner.poll_failures.set(0);
                    return Err(LoopError::ReactorFailed(errno));
                }
                return Ok(());
            }
        }
        inner.poll_failures.set(0);
        if parked {
            inner.shared.queue.unpark();
        }
        drop(poll);
        // Readiness goes to its sources now. Only wakers run here (fd callbacks are queued as
        // handles), and the poll borrow is released, so a waker may even register a source.
        let mut io_happened = false;
        for event in events.iter() {
            if event.token() != WAKER_TOKEN {
                io_happened = true;
                inner.io.dispatch(event, self);
            }
        }
        drop(events);
        if let Some(when) = jump_to {
            if !io_happened && !inner.shared.queue.has_items() {
                inner.clock.advance_to(when);
            }
        }
        Ok(())
    }

    /// Moves what other threads sent into the ready queue, in the order they sent it.
    fn take_remote(&self) {
        let inner = &*self.inner;
        let mut batch = inner.remote_batch.take();
        inner.shared.queue.drain_into(&mut batch);
        if batch.is_empty() {
            inner.remote_batch.replace(batch);
            return;
        }
        {
            let mut ready = inner.ready.borrow_mut();
            for item in batch.drain(..) {
                match item {
                    RemoteItem::Callback(callback, location, context) => {
                        ready.push_handle(Handle::with_context(callback, location, context));
                    }
                    RemoteItem::Task(task) => ready.push_task(task),
                    RemoteItem::Stop => inner.stopping.set(true),
                    RemoteItem::Nudge => {}
                }
            }
        }
        inner.remote_batch.replace(batch);
    }

    #[inline]
    fn run_handle(&self, handle: Handle) {
        if self.inner.debug.get() {
            return self.run_handle_timed(handle);
        }
        // The callback, and the report of its failure, run in its own context (asyncio 3.12+
        // runs the exception handler in the failing handle's context).
        handle.within_context(|| {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handle.run())) {
                self.report_callback_panic(&handle, payload);
            }
        });
    }

    /// Debug mode's `run_handle`: the same, timed, and a slow callback reported.
    #[inline(never)]
    fn run_handle_timed(&self, handle: Handle) {
        handle.within_context(|| {
            let started = Instant::now();
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handle.run())) {
                self.report_callback_panic(&handle, payload);
            }
            let took = started.elapsed();
            if took >= self.inner.slow_callback.get() {
                self.call_exception_handler(
                    ExceptionContext::new(format!(
                        "Executing {handle:?} took {:.3} seconds",
                        took.as_secs_f64()
                    ))
                    .with_severity(Severity::Warning)
                    .with_handle(handle.clone()),
                );
            }
        });
    }

    #[cold]
    #[inline(never)]
    fn report_callback_panic(&self, handle: &Handle, payload: Box<dyn std::any::Any + Send>) {
        let message = format!(
            "Exception in callback {} at {}",
            handle.callback_name(),
            handle.location()
        );
        self.call_exception_handler(
            ExceptionContext::new(message)
                .with_exception(Panic::from_payload(payload))
                .with_handle(handle.clone()),
        );
    }

    fn run_task(&self, task: TaskRef) {
        // Debug mode names the task in its report, so the description is taken before the step
        // (which consumes the reference); outside debug mode nothing is formatted.
        let debug = self
            .inner
            .debug
            .get()
            .then(|| (Instant::now(), task.describe()));
        let name = task.name();
        // A task catches its own panics; this is the net under the executor's own code.
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| task.run())) {
            self.call_exception_handler(
                ExceptionContext::new(format!("Exception in callback <{name}>"))
                    .with_exception(Panic::from_payload(payload)),
            );
        }
        if let Some((started, described)) = debug {
            let took = started.elapsed();
            if took >= self.inner.slow_callback.get() {
                self.call_exception_handler(
                    ExceptionContext::new(format!(
                        "Executing {described} took {:.3} seconds",
                        took.as_secs_f64()
                    ))
                    .with_severity(Severity::Warning)
                    .with_task(described),
                );
            }
        }
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

/// Resets the running state when `run_forever` / `run_once` ends, however it ends.
struct RunningGuard {
    lp: EventLoop,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let inner = &*self.lp.inner;
        inner.stopping.set(false);
        inner.running.set(false);
        RUNNING_ID.with(|id| id.set(0));
        RUNNING_INNER.with(|ptr| ptr.set(std::ptr::null()));
        let previous = RUNNING.with(|running| running.borrow_mut().take());
        drop(previous);
        if inner.close_after_run.replace(false) {
            self.lp.close_unowned();
        }
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

/// The loop running on this thread, or "no running event loop" (asyncio's `get_running_loop`).
///
/// ```
/// use evloop_reactor::{EventLoop, LoopError, get_running_loop};
///
/// assert_eq!(get_running_loop().unwrap_err(), LoopError::NoRunningLoop);
/// let lp = EventLoop::new().unwrap();
/// lp.call_soon(|| assert!(get_running_loop().is_ok())).unwrap();
/// lp.run_once().unwrap();
/// ```
pub fn get_running_loop() -> Result<EventLoop, LoopError> {
    EventLoop::running().ok_or(LoopError::NoRunningLoop)
}
