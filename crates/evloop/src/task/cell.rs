//! The task cell: one allocation holding a task's future, its state and its waker's target.
//!
//! The cell lives in an `Arc` because a `Waker` must be `Send + Sync`: wakers may be cloned,
//! woken and dropped on any thread. Everything else in the cell, the future above all, is touched
//! only on the loop's thread. That is what makes a `!Send` future sound here:
//!
//! - off the loop thread, a waker touches only the atomic `state` and the `Send` header (the
//!   loop's remote handle): waking pushes a [`TaskRef`] into the loop's thread-safe queue;
//! - the future and the output are always dropped on the loop thread: at completion, when the
//!   task is cancelled, when the loop closes (the task registry drops every live future), or
//!   when the `Task` handle is dropped (it drops an output nobody took). So when the last
//!   reference goes away on another thread, nothing `!Send` is left in the cell to drop.
//!
//! On the loop thread a wake-up goes straight into the ready queue: one atomic `fetch_or` to
//! mark the task scheduled (so a task is queued at most once however often it is woken), one
//! reference-count increment, and a push; no lock.
//!
//! Cancellation (the `cancel` module says how a request travels) is decided in [`TaskCell::step`]:
//! a plain request at task level ends the task before its poll, or after a poll that returned
//! (asyncio's `_must_cancel`, honoured even on the last step); a request made during the step
//! is handed to what the step ended up waiting on, as asyncio's `__step` does.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use evloop_reactor::{EventLoop, ExceptionContext, Panic, Scope, Snapshot, TaskRef, TaskRefVTable};

use crate::error::{Cancelled, TaskError};
use crate::task::cancel::{FrameSlot, Recorded, Requests, Waiter, WaiterRecord};
use crate::task::current::CurrentGuard;
use crate::task::schedule::{LoopSchedule, Schedule};

/// Queued for a poll: further wake-ups are no-ops until the poll starts.
const SCHEDULED: u8 = 1;
/// Step flag: the future is being polled (a cancel now is a request made during the step).
const POLLING: u8 = 1;
/// Step flag: a cancel was requested during the current step.
const CANCELLED_IN_STEP: u8 = 2;
/// Finished: wake-ups are no-ops.
const DONE: u8 = 2;

/// Where a task stands, as seen from the loop thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Pending,
    Finished,
    Cancelled,
    Panicked,
}

impl Status {
    /// asyncio's word for the state in a task's repr.
    fn word(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Finished => "finished",
            Status::Cancelled => "cancelled",
            Status::Panicked => "failed",
        }
    }
}

/// The type-erased view of a task that the registry, `current_task()`, `AnyTask` and the
/// awaitables that take part in cancellation use.
pub(crate) trait TaskObject {
    fn id(&self) -> u64;
    fn name(&self) -> String;
    fn set_name(&self, name: String);
    fn status(&self) -> Status;
    /// asyncio's repr: `<Task pending name='Task-3' coro=<...> created at file:line:col>`.
    fn describe(&self) -> String;
    /// Where `create_task` was called.
    fn created_at(&self) -> &'static Location<'static>;
    fn loop_id(&self) -> u64;
    fn cancel(&self, cancelled: Cancelled) -> bool;
    fn cancelling(&self) -> u32;
    fn uncancel(&self) -> u32;
    fn add_done_callback(&self, callback: Box<dyn FnOnce()>);
    /// Drops the future without polling it again (the loop is closing).
    fn abandon(&self, why: Cancelled);
    fn push_frame(&self, slot: FrameSlot);
    fn remove_frame(&self, slot: &FrameSlot);
    /// The task's panic, if it panicked and nobody retrieved or reported it yet; taking it
    /// counts as reporting it.
    fn take_unreported_panic(&self) -> Option<Panic>;
    /// Records what the current step is suspended on: awaitable `id`, built by `make` if it is
    /// not recorded yet.
    fn register_waiter(&self, id: usize, make: &mut dyn FnMut() -> Option<Waiter>);
    /// What the task is suspended on, if it is one evloop awaitable (for the task dump).
    fn awaiting(&self) -> Option<Waiter>;
    /// What the current step has recorded it is suspended on so far.
    fn peek_waiter(&self) -> Recorded;
    /// See `cancel::resolve_delegation`.
    fn resolve_delegation(&self, waiter_id: usize, ended_cancelled: bool) -> bool;
    /// Raises `cancelled` at the current await point (see the `cancel` module).
    fn raise_cancel(&self, cancelled: Cancelled);
    /// The task's context variables as they are between steps.
    fn context(&self) -> evloop_reactor::Context;
}

/// The typed view the `Task<T>` handle uses.
pub(crate) trait JoinTarget<T>: TaskObject {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>>;
    fn take_output(&self) -> Option<Result<T, TaskError>>;
    fn handle_dropped(&self);
    fn as_task_object(self: Arc<Self>) -> Arc<dyn TaskObject>;
}

/// The part of the cell that other threads may read.
struct Header<S> {
    state: AtomicU8,
    scheduler: S,
}

pub(crate) struct TaskCell<F: Future, S = LoopSchedule> {
    header: Header<S>,
    id: u64,
    created_at: &'static Location<'static>,
    /// Loop-thread only (see the module doc).
    future: UnsafeCell<Option<F>>,
    status: Cell<Status>,
    /// The step is running (a cancel now is a request made during the step).
    /// `POLLING` / `CANCELLED_IN_STEP` (one byte: set and cleared on every step).
    step_flags: Cell<u8>,
    output: RefCell<Option<Result<F::Output, TaskError>>>,
    join_waker: RefCell<Option<Waker>>,
    handle_alive: Cell<bool>,
    cancels_requested: Cell<u32>,
    /// The task's context variables between steps (asyncio runs every step in the task's own
    /// context, a copy of the one current at `create_task`).
    context: Cell<Option<Snapshot>>,
    waiter: WaiterRecord,
    /// What most tasks never use, allocated on first use: a cell stays small, which is most of
    /// what spawning costs (see [`Cold`]).
    cold: RefCell<Option<Box<Cold>>>,
    /// The task's span (feature `tracing`): entered for every step, so events from the task
    /// carry its name, id and creation site.
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

/// The parts of a task that only names, cancellation, `catch_cancel`, done callbacks and panics
/// need. Kept out of line so that a task that never uses them costs a smaller allocation and
/// fewer stores at spawn; every field's empty value is the same as having no `Cold` at all.
#[derive(Default)]
struct Cold {
    name: Option<String>,
    requests: Requests,
    done_callbacks: Vec<Box<dyn FnOnce()>>,
    /// A copy of the panic while the output holding it is unretrieved and unreported.
    unreported_panic: Option<Panic>,
}

// SAFETY: the only state other threads touch is `header` (atomics and a Send + Sync handle) and
// the Arc's reference counts; every other field, including the future and the output, is only
// read, written and dropped on the loop thread; the module doc explains why nothing !Send is left
// in the cell when the last reference may be released elsewhere.
unsafe impl<F: Future, S: Send> Send for TaskCell<F, S> {}
// SAFETY: as for Send: shared access from other threads is limited to `header`.
unsafe impl<F: Future, S: Sync> Sync for TaskCell<F, S> {}

impl<F> TaskCell<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    /// A task of `lp`'s.
    pub(crate) fn on_loop(
        future: F,
        id: u64,
        lp: &EventLoop,
        created_at: &'static Location<'static>,
        context: Option<Snapshot>,
    ) -> Arc<Self> {
        TaskCell::new(future, id, LoopSchedule::new(lp), created_at, context)
    }
}

impl<F, S> TaskCell<F, S>
where
    F: Future + 'static,
    F::Output: 'static,
    S: Schedule,
{
    pub(crate) fn new(
        future: F,
        id: u64,
        scheduler: S,
        created_at: &'static Location<'static>,
        context: Option<Snapshot>,
    ) -> Arc<Self> {
        Arc::new(TaskCell {
            header: Header {
                state: AtomicU8::new(0),
                scheduler,
            },
            id,
            created_at,
            future: UnsafeCell::new(Some(future)),
            status: Cell::new(Status::Pending),
            step_flags: Cell::new(0),
            output: RefCell::new(None),
            join_waker: RefCell::new(None),
            handle_alive: Cell::new(true),
            cancels_requested: Cell::new(0),
            context: Cell::new(context),
            waiter: WaiterRecord::default(),
            cold: RefCell::new(None),
            #[cfg(feature = "tracing")]
            span: tracing::info_span!(
                target: "evloop",
                "task",
                id,
                name = %format_args!("Task-{id}"),
                created_at = %created_at,
            ),
        })
    }

    fn polling(&self) -> bool {
        self.step_flags.get() & POLLING != 0
    }

    /// The cold part, created on first use. The borrow must end before any user code runs.
    fn cold(&self) -> std::cell::RefMut<'_, Cold> {
        std::cell::RefMut::map(self.cold.borrow_mut(), |cold| {
            &mut **cold.get_or_insert_with(Box::default)
        })
    }

    /// Takes a plain request waiting at task level (no `catch_cancel` is active to take it).
    fn take_task_level_request(&self) -> Option<Cancelled> {
        let mut cold = self.cold.borrow_mut();
        let requests = &mut cold.as_mut()?.requests;
        if requests.frames.is_empty() {
            requests.request.take()
        } else {
            None
        }
    }

    fn delegated_to(&self) -> Option<usize> {
        if !crate::task::cancel::delegations_pending() {
            return None;
        }
        let cold = self.cold.borrow();
        cold.as_ref()?.requests.delegated_to()
    }

    const TASK_VTABLE: TaskRefVTable = TaskRefVTable {
        run: Self::run_raw,
        drop: Self::drop_raw,
        describe: Self::describe_raw,
        name: "Task",
    };

    const WAKER_VTABLE: RawWakerVTable = RawWakerVTable::new(
        Self::waker_clone,
        Self::waker_wake,
        Self::waker_wake_by_ref,
        Self::waker_drop,
    );

    /// Schedules a poll, from any thread.
    fn schedule(self: &Arc<Self>) {
        let header = &self.header;
        if header.state.fetch_or(SCHEDULED, Ordering::AcqRel) & (SCHEDULED | DONE) != 0 {
            return;
        }
        let raw = NonNull::new(Arc::into_raw(self.clone()).cast_mut())
            .expect("an Arc's pointer is never null")
            .cast::<()>();
        // SAFETY: run_raw / drop_raw / describe_raw take exactly one strong count of an
        // Arc<Self>, which `into_raw` just gave up; drop_raw only releases a count and
        // describe_raw only reads loop-thread state on the loop thread (the reactor describes a
        // task it is about to run), so both are sound wherever the reference travels; run_raw is
        // only ever called on the thread of the loop the task belongs to, because the reference
        // is only handed to the task's scheduler, whose contract that is (see `Schedule`).
        let task = unsafe { TaskRef::from_raw(raw, &Self::TASK_VTABLE) };
        header.scheduler.schedule(task);
    }

    /// Borrows the `Arc` a waker or task reference points at, without touching its count.
    ///
    /// # Safety
    ///
    /// `ptr` must come from `Arc::into_raw` of an `Arc<Self>` whose count the caller holds for as
    /// long as the returned value is used.
    unsafe fn borrow_arc(ptr: *const ()) -> ManuallyDrop<Arc<Self>> {
        // SAFETY: the caller's contract.
        ManuallyDrop::new(unsafe { Arc::from_raw(ptr.cast::<Self>()) })
    }

    unsafe fn waker_clone(ptr: *const ()) -> RawWaker {
        // SAFETY: a waker's data is a live Arc<Self> pointer; the clone owns a new count.
        unsafe { Arc::increment_strong_count(ptr.cast::<Self>()) };
        RawWaker::new(ptr, &Self::WAKER_VTABLE)
    }

    unsafe fn waker_wake(ptr: *const ()) {
        // SAFETY: `wake` consumes the waker's own count, which this Arc now owns.
        let cell = unsafe { Arc::from_raw(ptr.cast::<Self>()) };
        cell.schedule();
    }

    unsafe fn waker_wake_by_ref(ptr: *const ()) {
        // SAFETY: the waker holds a count for the duration of this call.
        unsafe { Self::borrow_arc(ptr) }.schedule();
    }

    unsafe fn waker_drop(ptr: *const ()) {
        // SAFETY: dropping a waker releases its count.
        unsafe { Arc::decrement_strong_count(ptr.cast::<Self>()) };
    }

    unsafe fn run_raw(ptr: NonNull<()>) {
        // SAFETY: a TaskRef owns one count of an Arc<Self> (see `schedule`).
        let cell = unsafe { Arc::from_raw(ptr.as_ptr().cast_const().cast::<Self>()) };
        cell.step();
    }

    unsafe fn drop_raw(ptr: NonNull<()>) {
        // SAFETY: a TaskRef owns one count of an Arc<Self>.
        unsafe { Arc::decrement_strong_count(ptr.as_ptr().cast_const().cast::<Self>()) };
    }

    unsafe fn describe_raw(ptr: NonNull<()>) -> String {
        // SAFETY: the TaskRef being described holds a count; describe reads loop-thread state and
        // the reactor calls it on the loop thread (see `schedule`).
        unsafe { Self::borrow_arc(ptr.as_ptr().cast_const()) }.describe()
    }

    /// Queues the first poll (from `create_task`).
    pub(crate) fn schedule_first(self: &Arc<Self>) {
        self.schedule();
    }

    /// One step: poll the future once, on the loop thread (asyncio's `Task.__step`).
    fn step(self: &Arc<Self>) {
        // Clear SCHEDULED first, so that a wake-up during the poll queues another step.
        self.header.state.fetch_and(!SCHEDULED, Ordering::AcqRel);
        if self.status.get() != Status::Pending {
            return;
        }
        self.waiter.reset();
        if let Some(cancelled) = self.take_task_level_request() {
            self.end_cancelled(cancelled);
            return;
        }
        let polled = self.poll_future();
        match polled {
            Ok(Poll::Ready(value)) => {
                self.drop_future();
                // A cancel requested during the last step is still delivered (_must_cancel).
                match self.take_task_level_request() {
                    Some(cancelled) => {
                        drop(value);
                        self.finish(Err(TaskError::Cancelled(cancelled)));
                    }
                    None => self.finish(Ok(value)),
                }
            }
            Ok(Poll::Pending) => self.after_pending_poll(),
            Err(payload) => {
                self.drop_future();
                self.finish(Err(TaskError::Panicked(Panic::from_payload(payload))));
            }
        }
    }

    /// Polls the future once, as the current task and inside the task's context.
    fn poll_future(self: &Arc<Self>) -> std::thread::Result<Poll<F::Output>> {
        let ptr = Arc::as_ptr(self);
        // SAFETY: the waker borrows our count (ManuallyDrop: no release at the end); its vtable
        // matches `ptr`'s type.
        let waker = ManuallyDrop::new(unsafe {
            Waker::from_raw(RawWaker::new(ptr.cast(), &Self::WAKER_VTABLE))
        });
        let mut cx = Context::from_waker(&waker);
        let context = Scope::enter_task(self.context.take(), self.id);
        self.step_flags.set(POLLING);
        let polled = {
            #[cfg(feature = "tracing")]
            let _span = self.span.enter();
            let _current = CurrentGuard::enter(&**self as &dyn TaskObject);
            // SAFETY: only `step` (never re-entered: a task is not polled from its own poll) and
            // `drop_future` (never called while polling) touch the future, on the loop thread.
            let slot = unsafe { &mut *self.future.get() };
            match slot.as_mut() {
                Some(future) => {
                    // SAFETY: the future lives inside the Arc and is never moved until it is
                    // dropped in place (`drop_future`).
                    let future = unsafe { Pin::new_unchecked(future) };
                    catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx)))
                }
                None => Ok(Poll::Pending),
            }
        };
        self.step_flags.set(self.step_flags.get() & !POLLING);
        self.context.set(context.exit());
        polled
    }

    /// What a step that returned `Pending` does about cancellation.
    fn after_pending_poll(&self) {
        let delegate_abandoned = {
            let mut cold = self.cold.borrow_mut();
            match cold.as_mut() {
                None => return,
                Some(cold) => {
                    let abandoned =
                        cold.requests.delegated_to().is_some() && !self.waiter.delegate_seen();
                    if abandoned {
                        // The awaitable that took our request was dropped or is no longer
                        // polled: the request becomes a plain one, never lost.
                        let (_, cancelled) = cold.requests.take_delegation().expect("checked");
                        cold.requests.deliver(cancelled);
                    }
                    abandoned
                }
            }
        };
        // A request made during the step goes to what the step is now waiting on, as asyncio's
        // __step cancels a future yielded while _must_cancel is set.
        if self.step_flags.get() & CANCELLED_IN_STEP != 0 && !delegate_abandoned {
            if let Some(waiter) = self.waiter.single() {
                let request = self.cold().requests.take_undelivered();
                if let Some(cancelled) = request {
                    if waiter.cancel(&cancelled) {
                        self.cold().requests.delegate(waiter.id(), cancelled);
                    } else {
                        self.cold().requests.deliver(cancelled);
                    }
                }
            }
        }
        if let Some(cancelled) = self.take_task_level_request() {
            self.end_cancelled(cancelled);
        } else if self.cold().requests.frame_has_request() {
            // The innermost catch_cancel takes it on the next step.
            self.request_wake();
        }
    }

    /// Ends the task cancelled: the future is dropped at its await point.
    fn end_cancelled(&self, cancelled: Cancelled) {
        self.drop_future();
        self.finish(Err(TaskError::Cancelled(cancelled)));
    }

    /// Drops the future in place (running its destructors: Rust's `finally`), catching a
    /// panicking drop. A pinned future is never moved, not even to be dropped.
    fn drop_future(&self) {
        let slot = self.future.get();
        // SAFETY: see `step`; never called while the future is being polled.
        if unsafe { (*slot).is_none() } {
            return;
        }
        /// Marks the slot empty once the drop is over, even if the drop panicked (a second drop
        /// of a partly dropped future would be unsound).
        struct Emptied<T>(*mut Option<T>);
        impl<T> Drop for Emptied<T> {
            fn drop(&mut self) {
                // SAFETY: the slot's value has just been dropped in place; writing `None` over
                // it without dropping it again is what makes the slot valid again.
                unsafe { std::ptr::write(self.0, None) };
            }
        }
        let dropped = catch_unwind(AssertUnwindSafe(|| {
            let _emptied = Emptied(slot);
            // SAFETY: the slot holds the pinned future, which is dropped where it lies; nothing
            // else refers to it (no poll is running), and `_emptied` makes the slot `None` after.
            unsafe { std::ptr::drop_in_place(slot) };
        }));
        if let Err(payload) = dropped {
            report(
                ExceptionContext::new("Exception while dropping a cancelled task's future")
                    .with_exception(Panic::from_payload(payload))
                    .with_task(self.describe()),
            );
        }
    }

    fn finish(&self, result: Result<F::Output, TaskError>) {
        self.status.set(match &result {
            Ok(_) => Status::Finished,
            Err(TaskError::Cancelled(_)) => Status::Cancelled,
            Err(TaskError::Panicked(_)) => Status::Panicked,
            Err(TaskError::DifferentLoop(_)) => Status::Panicked,
        });
        self.header.state.fetch_or(DONE, Ordering::AcqRel);
        self.waiter.reset();
        // Frames and callbacks leave the cell with no borrow held: dropping or running them
        // may touch this task again.
        let (frames, callbacks) = match self.cold.borrow_mut().as_mut() {
            Some(cold) => {
                drop(cold.requests.take_delegation());
                (
                    std::mem::take(&mut cold.requests.frames),
                    std::mem::take(&mut cold.done_callbacks),
                )
            }
            None => (Vec::new(), Vec::new()),
        };
        drop(frames);
        if self.handle_alive.get() {
            if let Err(TaskError::Panicked(panic)) = &result {
                self.cold().unreported_panic = Some(panic.clone());
            }
            *self.output.borrow_mut() = Some(result);
            let waker = self.join_waker.borrow_mut().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        } else if let Err(TaskError::Panicked(panic)) = result {
            self.report_unretrieved(panic);
        }
        if !callbacks.is_empty() {
            EventLoop::with_running(|lp| {
                if let Some(lp) = lp {
                    for callback in callbacks {
                        // A closed loop drops the callback, like asyncio's close() drops _ready.
                        let _ = lp.call_soon(callback);
                    }
                }
            });
        }
    }

    /// "Task exception was never retrieved", reported in the task's own context.
    fn report_unretrieved(&self, panic: Panic) {
        let context = ExceptionContext::new("Task exception was never retrieved")
            .with_exception(panic)
            .with_task(self.describe());
        let scope = Scope::enter_task(self.context.take(), self.id);
        report(context);
        self.context.set(scope.exit());
    }

    fn request_wake(&self) {
        // SAFETY: `self` lives in an Arc (every TaskCell is made by `new`), and the borrowed
        // count is held by the caller's `&self` for the duration of the call.
        unsafe { Self::borrow_arc((self as *const Self).cast()) }.schedule();
    }
}

/// Reports through the running loop's exception handler, or the default one outside a loop.
pub(crate) fn report(context: ExceptionContext) {
    EventLoop::with_running(|lp| match lp {
        Some(lp) => lp.call_exception_handler(context),
        None => evloop_reactor::default_exception_handler(&context),
    });
}

impl<F, S> TaskObject for TaskCell<F, S>
where
    F: Future + 'static,
    F::Output: 'static,
    S: Schedule,
{
    fn id(&self) -> u64 {
        self.id
    }

    fn name(&self) -> String {
        match self
            .cold
            .borrow()
            .as_ref()
            .and_then(|cold| cold.name.as_ref())
        {
            Some(name) => name.clone(),
            None => format!("Task-{}", self.id),
        }
    }

    fn set_name(&self, name: String) {
        #[cfg(feature = "tracing")]
        self.span.record("name", name.as_str());
        let old = self.cold().name.replace(name);
        drop(old);
    }

    fn status(&self) -> Status {
        self.status.get()
    }

    fn describe(&self) -> String {
        let status = self.status.get();
        // asyncio's repr says "cancelling" while a request is pending and the task is not done.
        let word = if status == Status::Pending && self.cancels_requested.get() > 0 {
            "cancelling"
        } else {
            status.word()
        };
        format!(
            "<Task {} name='{}' coro=<{}> created at {}>",
            word,
            self.name(),
            std::any::type_name::<F>(),
            self.created_at
        )
    }

    fn created_at(&self) -> &'static Location<'static> {
        self.created_at
    }

    fn loop_id(&self) -> u64 {
        self.header.scheduler.loop_id()
    }

    fn cancel(&self, cancelled: Cancelled) -> bool {
        if self.status.get() != Status::Pending {
            // asyncio's cancel() clears `__log_traceback` first: whoever cancels a task that
            // already failed has seen to it, and no "never retrieved" report follows.
            drop(self.take_unreported_panic());
            return false;
        }
        self.cancels_requested
            .set(self.cancels_requested.get().saturating_add(1));
        if self.polling() {
            // Requested during our own step (a task cancelling itself, say): the step decides
            // when it ends (see `after_pending_poll`).
            self.step_flags
                .set(self.step_flags.get() | CANCELLED_IN_STEP);
        } else if let Some(waiter) = self.waiter.single() {
            // Suspended on an evloop awaitable: cancel that; the cancellation comes back through
            // it (asyncio: `self._fut_waiter.cancel(msg)`).
            if waiter.cancel(&cancelled) {
                self.cold().requests.delegate(waiter.id(), cancelled);
                return true;
            }
        }
        self.cold().requests.deliver(cancelled);
        self.request_wake();
        true
    }

    fn cancelling(&self) -> u32 {
        self.cancels_requested.get()
    }

    fn uncancel(&self) -> u32 {
        let left = self.cancels_requested.get().saturating_sub(1);
        self.cancels_requested.set(left);
        if left == 0 {
            // asyncio 3.13: back to zero withdraws a request not delivered yet.
            if let Some(cold) = self.cold.borrow_mut().as_mut() {
                cold.requests.withdraw();
            }
        }
        left
    }

    fn add_done_callback(&self, callback: Box<dyn FnOnce()>) {
        if self.status.get() == Status::Pending {
            self.cold().done_callbacks.push(callback);
        } else {
            // Never synchronously (asyncio H2): scheduled like any completion callback.
            EventLoop::with_running(|lp| match lp {
                Some(lp) => {
                    let _ = lp.call_soon(callback);
                }
                None => drop(callback),
            });
        }
    }

    fn abandon(&self, why: Cancelled) {
        if self.status.get() != Status::Pending {
            return;
        }
        self.end_cancelled(why);
    }

    fn push_frame(&self, slot: FrameSlot) {
        // A request already waiting at task level moves into the new innermost frame.
        let mut cold = self.cold();
        if let Some(request) = cold.requests.request.take() {
            slot.set(Some(request));
        }
        cold.requests.frames.push(slot);
    }

    fn take_unreported_panic(&self) -> Option<Panic> {
        self.cold.borrow_mut().as_mut()?.unreported_panic.take()
    }

    fn remove_frame(&self, slot: &FrameSlot) {
        let mut cold = self.cold();
        let requests = &mut cold.requests;
        let removed = match requests.frames.iter().rposition(|f| Rc::ptr_eq(f, slot)) {
            Some(at) => Some(requests.frames.remove(at)),
            None => None,
        };
        // An undelivered request is never lost: it moves to the next frame out, or to the task.
        if let Some(request) = slot.take() {
            requests.deliver(request);
            drop(cold);
            drop(removed);
            if !self.polling() {
                self.request_wake();
            }
        }
    }

    fn register_waiter(&self, id: usize, make: &mut dyn FnMut() -> Option<Waiter>) {
        if id == (self as *const Self).cast::<()>() as usize {
            panic!("Task cannot await on itself: {}", self.describe());
        }
        if self.polling() {
            let delegated = self.delegated_to();
            self.waiter.register(id, make, delegated);
        }
    }

    fn peek_waiter(&self) -> Recorded {
        self.waiter.peek()
    }

    fn awaiting(&self) -> Option<Waiter> {
        if self.polling() {
            return None; // running now: not suspended on anything
        }
        self.waiter.single()
    }

    fn resolve_delegation(&self, waiter_id: usize, ended_cancelled: bool) -> bool {
        let cancelled = {
            let mut cold = self.cold.borrow_mut();
            let Some(cold) = cold.as_mut() else {
                return false;
            };
            if cold.requests.delegated_to() != Some(waiter_id) {
                return false;
            }
            let (_, cancelled) = cold.requests.take_delegation().expect("checked");
            cancelled
        };
        if ended_cancelled {
            self.raise_cancel(cancelled);
        }
        ended_cancelled
    }

    fn raise_cancel(&self, cancelled: Cancelled) {
        self.cold().requests.deliver(cancelled);
    }

    fn context(&self) -> evloop_reactor::Context {
        let snapshot = self.context.take();
        self.context.set(snapshot.clone());
        evloop_reactor::Context::from_snapshot(snapshot)
    }
}

impl<F, S> JoinTarget<F::Output> for TaskCell<F, S>
where
    F: Future + 'static,
    F::Output: 'static,
    S: Schedule,
{
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, TaskError>> {
        if let Some(output) = self.take_output() {
            return Poll::Ready(output);
        }
        assert!(
            self.status.get() == Status::Pending,
            "a Task was polled after it returned its result"
        );
        let mut slot = self.join_waker.borrow_mut();
        match &*slot {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn take_output(&self) -> Option<Result<F::Output, TaskError>> {
        let output = self.output.borrow_mut().take();
        if output.is_some() {
            drop(self.take_unreported_panic());
        }
        output
    }

    fn handle_dropped(&self) {
        self.handle_alive.set(false);
        self.join_waker.borrow_mut().take();
        let output = self.output.borrow_mut().take();
        drop(output);
        if let Some(panic) = self.take_unreported_panic() {
            self.report_unretrieved(panic);
        }
    }

    fn as_task_object(self: Arc<Self>) -> Arc<dyn TaskObject> {
        self
    }
}

/// The cell's state machine apart from any loop: a scheduler that only collects the queued steps,
/// which the tests then run by hand.
#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::future::poll_fn;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;
    use std::thread::{self, ThreadId};

    use super::*;
    use crate::task::current;

    /// Collects queued steps; `run_all` runs them in order, as a loop would.
    #[derive(Clone, Default)]
    struct Steps(Arc<Mutex<Vec<TaskRef>>>);

    impl Schedule for Steps {
        fn schedule(&self, task: TaskRef) {
            self.0.lock().unwrap().push(task);
        }
        fn loop_id(&self) -> u64 {
            0
        }
    }

    impl Steps {
        fn queued(&self) -> usize {
            self.0.lock().unwrap().len()
        }

        fn run_all(&self) {
            loop {
                let next = self.0.lock().unwrap().pop();
                match next {
                    Some(task) => task.run(),
                    None => break,
                }
            }
        }
    }

    #[track_caller]
    fn spawn<F>(future: F) -> (Arc<TaskCell<F, Steps>>, Steps)
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let steps = Steps::default();
        let cell = TaskCell::new(future, 1, steps.clone(), Location::caller(), None);
        cell.schedule_first();
        (cell, steps)
    }

    #[test]
    fn a_wake_after_the_task_is_done_queues_nothing() {
        let kept: Rc<RefCell<Option<Waker>>> = Rc::default();
        let slot = kept.clone();
        let (cell, steps) = spawn(poll_fn(move |cx| {
            *slot.borrow_mut() = Some(cx.waker().clone());
            Poll::Ready(5)
        }));
        steps.run_all();
        assert_eq!(cell.take_output(), Some(Ok(5)));
        let waker = kept.borrow_mut().take().unwrap();
        waker.wake_by_ref();
        waker.wake();
        assert_eq!(steps.queued(), 0);
    }

    #[test]
    fn a_wake_from_another_thread_during_the_poll_is_not_lost() {
        let polls = Rc::new(Cell::new(0));
        let count = polls.clone();
        let (cell, steps) = spawn(poll_fn(move |cx| {
            count.set(count.get() + 1);
            if count.get() == 2 {
                return Poll::Ready(());
            }
            let waker = cx.waker().clone();
            thread::spawn(move || waker.wake()).join().unwrap();
            Poll::Pending
        }));
        steps.run_all();
        assert_eq!(
            polls.get(),
            2,
            "the wake during the first poll queued a second step"
        );
        assert_eq!(cell.status(), Status::Finished);
    }

    #[test]
    fn a_cancel_during_the_poll_ends_the_task_at_that_step() {
        let (cell, steps) = spawn(poll_fn(|_| {
            current::current()
                .unwrap()
                .cancel(Cancelled::with_message("self"));
            Poll::<()>::Pending
        }));
        steps.run_all();
        assert_eq!(cell.status(), Status::Cancelled);
        assert_eq!(
            cell.take_output(),
            Some(Err(TaskError::Cancelled(Cancelled::with_message("self"))))
        );
    }

    #[test]
    fn the_last_reference_released_on_another_thread_drops_nothing_there() {
        struct Witness(Arc<Mutex<Option<ThreadId>>>, #[allow(dead_code)] Rc<()>);
        impl Drop for Witness {
            fn drop(&mut self) {
                *self.0.lock().unwrap() = Some(thread::current().id());
            }
        }
        let dropped_on = Arc::new(Mutex::new(None));
        let witness = Witness(dropped_on.clone(), Rc::new(()));
        let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
        let slot = kept.clone();
        let (cell, steps) = spawn(poll_fn(move |cx| {
            let _witness = &witness; // a !Send future
            *slot.lock().unwrap() = Some(cx.waker().clone());
            Poll::<Rc<()>>::Pending
        }));
        steps.run_all();
        assert!(cell.cancel(Cancelled::new()));
        steps.run_all(); // the cancelled step drops the future here
        cell.handle_dropped(); // what the `Task` handle's drop does: the output goes too
        drop(cell);
        assert_eq!(*dropped_on.lock().unwrap(), Some(thread::current().id()));
        // Only the waker is left: the cell is freed on another thread, with nothing !Send in it.
        let waker = kept.lock().unwrap().take().unwrap();
        thread::spawn(move || drop(waker)).join().unwrap();
    }

    #[test]
    fn a_panicking_destructor_is_caught_and_the_future_is_dropped_once() {
        struct Bomb(Arc<AtomicUsize>);
        impl Future for Bomb {
            type Output = ();
            fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
                Poll::Pending
            }
        }
        impl Drop for Bomb {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
                panic!("boom in drop");
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let (cell, steps) = spawn(Bomb(drops.clone()));
        steps.run_all();
        cell.cancel(Cancelled::new());
        steps.run_all();
        assert_eq!(cell.status(), Status::Cancelled);
        drop(cell);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped exactly once");
    }

    #[test]
    fn a_pinned_future_is_dropped_where_it_was_polled() {
        /// Records where it was pinned; its drop says whether it is still there.
        struct Pinned {
            at: Cell<usize>,
            same_place: Rc<Cell<Option<bool>>>,
        }
        impl Future for Pinned {
            type Output = ();
            fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
                self.at.set(&*self as *const Pinned as usize);
                Poll::Pending
            }
        }
        impl Drop for Pinned {
            fn drop(&mut self) {
                self.same_place
                    .set(Some(self.at.get() == self as *const Pinned as usize));
            }
        }
        let same_place = Rc::new(Cell::new(None));
        let (cell, steps) = spawn(Pinned {
            at: Cell::new(0),
            same_place: same_place.clone(),
        });
        steps.run_all();
        cell.cancel(Cancelled::new());
        steps.run_all();
        assert_eq!(
            same_place.get(),
            Some(true),
            "a pinned future must not move, even to be dropped"
        );
    }
}
