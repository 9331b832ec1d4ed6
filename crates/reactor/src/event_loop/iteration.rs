//! One iteration of the loop, one named step per phase, in the order of asyncio's `_run_once`
//! (and of libuv's `uv_run`, which reads the same way).
//!
//! [`iterate`](EventLoop::iterate) is the whole of it: compact the cancelled timers; compute how
//! long the reactor may block (not at all when work is ready or a stop is pending, until the
//! next deadline when timers exist, indefinitely otherwise); with a virtual clock, turn a wait
//! for a timer into a jump of the clock; poll the reactor (an iteration that only has work from
//! other threads skips a poll made within the last 50 µs); dispatch the I/O events; jump the
//! virtual clock if nothing happened meanwhile; take in what other threads sent; move the due
//! timers to the ready queue; run exactly the callbacks that were ready when the batch started.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use evloop_callbacks::{Handle, Ready, TaskRef};

use super::{EventLoop, WAKER_TOKEN};
use crate::exception::{ExceptionContext, Severity};
use crate::remote::RemoteItem;
use crate::{LoopError, Panic};

/// asyncio's `MAXIMUM_SELECT_TIMEOUT`: the longest the reactor blocks in one call.
const MAX_POLL_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// How many polls in a row may fail before `run_forever` gives up with the error (asyncio raises
/// at the first; a few retries ride out a transient ENOMEM without spinning on a broken epoll).
const MAX_POLL_FAILURES: u32 = 10;

/// On a loop that watches no I/O source, an iteration skips its non-blocking poll when the
/// reactor was polled less than this long ago and its work came from other threads: either only
/// their items are waiting, or the last poll blocked until another thread woke the loop and this
/// iteration runs what followed from that (the callbacks and task steps a
/// `call_soon_threadsafe` reply scheduled). Such a poll could find nothing but the waker. A
/// cross-thread round trip then costs one `epoll_wait`, the blocking one, while due timers are
/// still moved in every iteration and the window bounds how long a poll waits.
pub(super) const POLL_SKIP_WINDOW: Duration = Duration::from_micros(50);

/// What a poll found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Readiness {
    None,
    /// Only the loop's own waker: other threads sent something.
    WakerOnly,
    /// At least one I/O event.
    Io,
}

/// How one poll of the reactor went, when it did not end the run.
enum Polled {
    /// The poll returned (with events, or none, or interrupted by a signal): dispatch them.
    /// `blocked`: it was a blocking poll.
    Events { blocked: bool },
    /// The poll failed; the failure was reported and the iteration goes on without I/O.
    Failed,
}

impl EventLoop {
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

    /// One iteration (asyncio's `_run_once`). A failed poll still lets the iteration finish, so
    /// what was ready runs before the error of too many failures ends the run.
    fn iterate(&self) -> Result<(), LoopError> {
        let inner = &*self.inner;
        inner.iterations.set(inner.iterations.get() + 1);
        self.compact_cancelled_timers();
        let timeout = self.poll_timeout();
        if self.may_skip_poll(timeout) {
            self.take_remote();
            self.move_due_timers();
            self.run_ready();
            return Ok(());
        }
        let (timeout, jump_to) = self.virtual_clock_wait(timeout);
        let polled = match self.poll_io(timeout) {
            Ok(Polled::Events { blocked }) => {
                let readiness = self.dispatch_events();
                self.inner
                    .woken_by_remote
                    .set(blocked && readiness == Readiness::WakerOnly);
                self.jump_virtual_clock(jump_to, readiness == Readiness::Io);
                Ok(())
            }
            Ok(Polled::Failed) => {
                self.inner.woken_by_remote.set(false);
                Ok(())
            }
            Err(error) => Err(error),
        };
        self.take_remote();
        self.move_due_timers();
        self.run_ready();
        polled
    }

    /// Drops cancelled timers with asyncio's rule (rebuild the heap when most are cancelled,
    /// else pop cancelled heads), so the next deadline is a live one.
    #[inline]
    fn compact_cancelled_timers(&self) {
        self.inner.timers.borrow_mut().clean_up();
    }

    /// How long the reactor may block: not at all when work is ready, a stop is pending or
    /// other threads sent something; until the next deadline (at most a day) when timers
    /// exist; indefinitely (`None`) otherwise.
    #[inline]
    fn poll_timeout(&self) -> Option<Duration> {
        let inner = &*self.inner;
        if inner.stopping.get()
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
        }
    }

    /// Whether this iteration may go without polling (see [`POLL_SKIP_WINDOW`]): the loop
    /// watches no I/O source, so a poll could only find the waker; nothing but zero-timeout work,
    /// no stop pending, the reactor polled within the window; and either only other threads'
    /// items waiting or the aftermath of another thread's wake-up. Returns false, and notes the
    /// time of the poll about to happen when only other threads' items wait, otherwise.
    #[inline]
    fn may_skip_poll(&self, timeout: Option<Duration>) -> bool {
        let inner = &*self.inner;
        if timeout != Some(Duration::ZERO) || inner.stopping.get() {
            return false;
        }
        // What ran since the last poll may have caused I/O (a callback writing to a socket the
        // loop watches) that asyncio's poll would see at once: skip only when the loop watches
        // no source at all, so that the poll could not have found anything but the waker.
        if inner.io.registry.len() != 0 {
            return false;
        }
        let only_remote = inner.ready.borrow().is_empty();
        if !(only_remote || inner.woken_by_remote.get()) {
            return false;
        }
        let now = Instant::now();
        if inner
            .skip_polls_until
            .get()
            .is_some_and(|until| now < until)
        {
            return true;
        }
        if only_remote {
            inner
                .skip_polls_until
                .set(now.checked_add(POLL_SKIP_WINDOW));
        }
        false
    }

    /// With a virtual clock, a wait for a timer becomes a non-blocking poll followed by a jump
    /// of the clock to the deadline (returned as the second value); while outside work holds
    /// the clock, the loop waits for that work in real time instead, however long it takes.
    /// A real clock's timeout is returned unchanged.
    #[inline]
    fn virtual_clock_wait(&self, timeout: Option<Duration>) -> (Option<Duration>, Option<Instant>) {
        let inner = &*self.inner;
        if !inner.clock.is_virtual() || timeout.is_none_or(|t| t.is_zero()) {
            return (timeout, None);
        }
        if inner.shared.clock_held() {
            (None, None)
        } else {
            (Some(Duration::ZERO), inner.timers.borrow().next_deadline())
        }
    }

    /// Polls mio, parking the remote queue around a blocking poll so that other threads know to
    /// wake us (a park refused because items arrived makes the poll non-blocking). EINTR counts
    /// as a poll that returned; any other failure is reported rather than spun on, and
    /// [`MAX_POLL_FAILURES`] in a row end the run.
    fn poll_io(&self, timeout: Option<Duration>) -> Result<Polled, LoopError> {
        let inner = &*self.inner;
        let mut timeout = timeout;
        let parked = timeout != Some(Duration::ZERO) && inner.shared.queue.try_park();
        if timeout != Some(Duration::ZERO) && !parked {
            timeout = Some(Duration::ZERO);
        }
        inner.polls.set(inner.polls.get() + 1);
        let result = inner
            .poll
            .borrow_mut()
            .poll(&mut inner.events.borrow_mut(), timeout);
        if parked {
            inner.shared.queue.unpark();
            // A blocking poll just returned: the next iterations may skip theirs.
            inner
                .skip_polls_until
                .set(Instant::now().checked_add(POLL_SKIP_WINDOW));
        }
        match result {
            Err(error) if error.kind() != io::ErrorKind::Interrupted => {
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
                Ok(Polled::Failed)
            }
            _ => {
                inner.poll_failures.set(0);
                Ok(Polled::Events { blocked: parked })
            }
        }
    }

    /// Hands the polled readiness to its sources and says what it was. Only wakers run here
    /// (fd callbacks are queued as handles), and the poll is not borrowed, so a waker may even
    /// register a source.
    fn dispatch_events(&self) -> Readiness {
        let inner = &*self.inner;
        let events = inner.events.borrow();
        let mut readiness = Readiness::None;
        for event in events.iter() {
            if event.token() == WAKER_TOKEN {
                if readiness == Readiness::None {
                    readiness = Readiness::WakerOnly;
                }
            } else {
                readiness = Readiness::Io;
                inner.io.dispatch(event, self);
            }
        }
        readiness
    }

    /// Jumps a virtual clock to the deadline [`virtual_clock_wait`](Self::virtual_clock_wait)
    /// chose, unless the poll found something to do first (I/O, or work from other threads):
    /// that work runs at the current time, and the jump waits for a later idle iteration.
    #[inline]
    fn jump_virtual_clock(&self, jump_to: Option<Instant>, io_happened: bool) {
        let inner = &*self.inner;
        if let Some(when) = jump_to {
            if !io_happened && !inner.shared.queue.has_items() {
                inner.clock.advance_to(when);
            }
        }
    }

    /// Moves what other threads sent into the ready queue, in the order they sent it.
    #[inline]
    pub(super) fn take_remote(&self) {
        // Checked here, inline: most calls (one per iteration and one per call_soon) find
        // nothing.
        if self.inner.shared.queue.has_items() {
            self.take_remote_items();
        }
    }

    fn take_remote_items(&self) {
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
                        ready.push_handle(Handle::with_context(
                            move || callback.call(),
                            location,
                            context,
                        ));
                    }
                    RemoteItem::Task(task) => ready.push_task(task),
                    RemoteItem::Stop => inner.stopping.set(true),
                    RemoteItem::Nudge => {}
                }
            }
        }
        inner.remote_batch.replace(batch);
    }

    /// Moves every timer due up to now (+1 ns, the monotonic clock's resolution here: asyncio's
    /// clock-resolution rule) to the ready queue. No timers, no clock read: a loop of ready
    /// callbacks and tasks never needs the time.
    #[inline]
    fn move_due_timers(&self) {
        let inner = &*self.inner;
        if inner.timers.borrow().is_empty() {
            return;
        }
        let end = self.time() + Duration::from_nanos(1);
        let mut timers = inner.timers.borrow_mut();
        let mut ready = inner.ready.borrow_mut();
        // Moving a handle between the two queues runs no user code, so both borrows may be held
        // across the whole transfer.
        while let Some(handle) = timers.pop_due(end) {
            ready.push_handle(handle);
        }
    }

    /// Runs exactly the entries that were ready when the batch started, so callbacks scheduled
    /// by this batch wait for the next iteration (asyncio's `ntodo` snapshot). No borrow of the
    /// queue is held while one runs.
    #[inline]
    fn run_ready(&self) {
        let inner = &*self.inner;
        let batch = inner.ready.borrow().len();
        for _ in 0..batch {
            let entry = inner.ready.borrow_mut().pop();
            match entry {
                Some(Ready::Handle(handle)) => self.run_handle(handle),
                Some(Ready::Task(task)) => self.run_task(task),
                None => break,
            }
        }
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
            self.report_if_slow(started, &format_args!("{handle:?}"), |report| {
                report.with_handle(handle.clone())
            });
        });
    }

    /// Debug mode's slow-callback report (asyncio's "Executing <Handle ...> took 0.150
    /// seconds"), for a handle and a task step alike; `attach` adds what ran to the context.
    fn report_if_slow(
        &self,
        started: Instant,
        what: &dyn std::fmt::Display,
        attach: impl FnOnce(ExceptionContext) -> ExceptionContext,
    ) {
        let took = started.elapsed();
        if took >= self.inner.slow_callback.get() {
            let report = ExceptionContext::new(format!(
                "Executing {what} took {:.3} seconds",
                took.as_secs_f64()
            ))
            .with_severity(Severity::Warning);
            self.call_exception_handler(attach(report));
        }
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
            self.report_if_slow(started, &described, |report| {
                report.with_task(described.as_str())
            });
        }
    }
}
