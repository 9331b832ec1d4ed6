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

use std::cell::{Cell, RefCell, UnsafeCell};
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use evloop_reactor::{EventLoop, ExceptionContext, Panic, RemoteHandle, TaskRef, TaskRefVTable};

use crate::error::{Cancelled, TaskError};
use crate::task::current::CurrentGuard;

/// Queued for a poll: further wake-ups are no-ops until the poll starts.
const SCHEDULED: u8 = 1;
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

/// A catch frame's mailbox: where a cancel request waits for the `catch_cancel` that will take it.
pub(crate) type FrameSlot = Rc<Cell<Option<Cancelled>>>;

/// The type-erased view of a task that the registry, `current_task()` and `AnyTask` use.
pub(crate) trait TaskObject {
    fn id(&self) -> u64;
    fn name(&self) -> String;
    fn set_name(&self, name: String);
    fn status(&self) -> Status;
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
}

/// The typed view the `Task<T>` handle uses.
pub(crate) trait JoinTarget<T>: TaskObject {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>>;
    fn take_output(&self) -> Option<Result<T, TaskError>>;
    fn handle_dropped(&self);
}

/// The part of the cell that other threads may read.
struct Header {
    state: AtomicU8,
    loop_id: u64,
    remote: RemoteHandle,
}

pub(crate) struct TaskCell<F: Future> {
    header: Header,
    id: u64,
    /// Loop-thread only (see the module doc).
    future: UnsafeCell<Option<F>>,
    status: Cell<Status>,
    output: RefCell<Option<Result<F::Output, TaskError>>>,
    join_waker: RefCell<Option<Waker>>,
    handle_alive: Cell<bool>,
    cancels_requested: Cell<u32>,
    /// What most tasks never use, allocated on first use: a cell stays small, which is most of
    /// what spawning costs (see [`Cold`]).
    cold: RefCell<Option<Box<Cold>>>,
}

/// The parts of a task that only names, cancellation, `catch_cancel`, done callbacks and panics
/// need. Kept out of line so that a task that never uses them costs a smaller allocation and
/// fewer stores at spawn; every field's empty value is the same as having no `Cold` at all.
#[derive(Default)]
struct Cold {
    name: Option<String>,
    /// A cancel request that no `catch_cancel` will take: the task ends at its next step.
    cancel_request: Option<Cancelled>,
    /// Active `catch_cancel` frames, innermost last.
    frames: Vec<FrameSlot>,
    done_callbacks: Vec<Box<dyn FnOnce()>>,
    /// A copy of the panic while the output holding it is unretrieved and unreported.
    unreported_panic: Option<Panic>,
}

// SAFETY: other threads reach a cell only through wakers and task references, which touch only
// `header` (atomics and a Send + Sync RemoteHandle) and the Arc's count. Every other field is
// read, written and dropped on the loop thread; the module doc explains why nothing !Send is left
// in the cell when the last reference may be released elsewhere.
unsafe impl<F: Future> Send for TaskCell<F> {}
// SAFETY: as for Send: shared access from other threads is limited to `header`.
unsafe impl<F: Future> Sync for TaskCell<F> {}

impl<F> TaskCell<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    pub(crate) fn new(future: F, id: u64, loop_id: u64, remote: RemoteHandle) -> Arc<Self> {
        Arc::new(TaskCell {
            header: Header {
                state: AtomicU8::new(0),
                loop_id,
                remote,
            },
            id,
            future: UnsafeCell::new(Some(future)),
            status: Cell::new(Status::Pending),
            output: RefCell::new(None),
            join_waker: RefCell::new(None),
            handle_alive: Cell::new(true),
            cancels_requested: Cell::new(0),
            cold: RefCell::new(None),
        })
    }

    /// The cold part, created on first use. The borrow must end before any user code runs.
    fn cold(&self) -> std::cell::RefMut<'_, Cold> {
        std::cell::RefMut::map(self.cold.borrow_mut(), |cold| {
            &mut **cold.get_or_insert_with(Box::default)
        })
    }

    /// Takes a cancel request that no `catch_cancel` frame will see (none is active).
    fn take_uncaught_request(&self) -> Option<Cancelled> {
        let mut cold = self.cold.borrow_mut();
        let cold = cold.as_mut()?;
        if cold.frames.is_empty() {
            cold.cancel_request.take()
        } else {
            None
        }
    }

    const TASK_VTABLE: TaskRefVTable = TaskRefVTable {
        run: Self::run_raw,
        drop: Self::drop_raw,
        name: "Task",
    };

    const WAKER_VTABLE: RawWakerVTable = RawWakerVTable::new(
        Self::waker_clone,
        Self::waker_wake,
        Self::waker_wake_by_ref,
        Self::waker_drop,
    );

    /// Schedules a poll, from any thread. `ptr` is borrowed (not consumed).
    fn schedule(ptr: *const Self) {
        // SAFETY: the caller holds a reference to the Arc behind `ptr`.
        let header = unsafe { &(*ptr).header };
        if header.state.fetch_or(SCHEDULED, Ordering::AcqRel) & (SCHEDULED | DONE) != 0 {
            return;
        }
        // SAFETY: `ptr` is a live Arc; the new count is owned by the TaskRef below.
        unsafe { Arc::increment_strong_count(ptr) };
        let raw = NonNull::from(
            // SAFETY: `ptr` is non-null (it came from an Arc).
            unsafe { &*ptr },
        )
        .cast::<()>();
        // SAFETY: run_raw / drop_raw consume exactly one strong count of an Arc<Self>, which we
        // just took; both are sound on any thread (drop_raw only releases a count; run_raw is only
        // ever called by the loop, on its thread).
        let task = unsafe { TaskRef::from_raw(raw, &Self::TASK_VTABLE) };
        // Loop thread, loop running: straight into the ready queue, with no lock and no
        // reference-counted loop handle.
        if let Err(task) = EventLoop::schedule_task_if_running(header.loop_id, task) {
            // Another thread, or the loop is not running: through the thread-safe queue, which
            // wakes the loop only if it is blocked. A closed loop hands the reference back and
            // it is released here, which never drops the future (see the module doc).
            let _ = header.remote.schedule_task(task);
        }
    }

    unsafe fn waker_clone(ptr: *const ()) -> RawWaker {
        // SAFETY: a waker's data is a live Arc<Self> pointer; the clone owns a new count.
        unsafe { Arc::increment_strong_count(ptr.cast::<Self>()) };
        RawWaker::new(ptr, &Self::WAKER_VTABLE)
    }

    unsafe fn waker_wake(ptr: *const ()) {
        Self::schedule(ptr.cast());
        // SAFETY: `wake` consumes the waker's own count.
        unsafe { Arc::decrement_strong_count(ptr.cast::<Self>()) };
    }

    unsafe fn waker_wake_by_ref(ptr: *const ()) {
        Self::schedule(ptr.cast());
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

    /// Queues the first poll (from `create_task`).
    pub(crate) fn schedule_first(self: &Arc<Self>) {
        Self::schedule(Arc::as_ptr(self));
    }

    /// One step: poll the future once, on the loop thread.
    fn step(self: &Arc<Self>) {
        // Clear SCHEDULED first, so that a wake-up during the poll queues another step.
        self.header.state.fetch_and(!SCHEDULED, Ordering::AcqRel);
        if self.status.get() != Status::Pending {
            return;
        }
        let request = self.take_uncaught_request();
        if let Some(cancelled) = request {
            self.drop_future();
            self.finish(Err(TaskError::Cancelled(cancelled)));
            return;
        }
        let ptr = Arc::as_ptr(self);
        // SAFETY: the waker borrows our count (ManuallyDrop: no release at the end); its vtable
        // matches `ptr`'s type.
        let waker = ManuallyDrop::new(unsafe {
            Waker::from_raw(RawWaker::new(ptr.cast(), &Self::WAKER_VTABLE))
        });
        let mut cx = Context::from_waker(&waker);
        let polled = {
            let _current = CurrentGuard::enter(&**self as &dyn TaskObject);
            // SAFETY: only `step` (never re-entered: a task is not polled from its own poll) and
            // `drop_future` (never called while polling) touch the future, on the loop thread.
            let slot = unsafe { &mut *self.future.get() };
            let Some(future) = slot.as_mut() else { return };
            // SAFETY: the future lives inside the Arc and is never moved until it is dropped.
            let future = unsafe { Pin::new_unchecked(future) };
            catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx)))
        };
        match polled {
            Ok(Poll::Ready(value)) => {
                self.drop_future();
                self.finish(Ok(value));
            }
            Ok(Poll::Pending) => {
                let request = self.take_uncaught_request();
                if let Some(cancelled) = request {
                    self.drop_future();
                    self.finish(Err(TaskError::Cancelled(cancelled)));
                }
            }
            Err(payload) => {
                self.drop_future();
                self.finish(Err(TaskError::Panicked(Panic::from_payload(payload))));
            }
        }
    }

    /// Drops the future (running its destructors: Rust's `finally`), catching a panicking drop.
    fn drop_future(&self) {
        // SAFETY: see `step`; never called while the future is being polled.
        let slot = unsafe { &mut *self.future.get() };
        // Dropped where it lies (assigning drops the old value in place, and stores None even
        // if that drop panics): the future is pinned, and moving it out first would leave an
        // async block's borrows of its own locals dangling while its destructors run.
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| *slot = None)) {
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
        });
        self.header.state.fetch_or(DONE, Ordering::AcqRel);
        // Frames and callbacks leave the cell with no borrow held: dropping or running them
        // may touch this task again.
        let (frames, callbacks) = match self.cold.borrow_mut().as_mut() {
            Some(cold) => (
                std::mem::take(&mut cold.frames),
                std::mem::take(&mut cold.done_callbacks),
            ),
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
            report(
                ExceptionContext::new("Task exception was never retrieved")
                    .with_exception(panic)
                    .with_task(self.describe()),
            );
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

    fn describe(&self) -> String {
        format!("<Task {} {:?}>", self.name(), self.status.get())
    }

    fn request_wake(&self) {
        Self::schedule(self);
    }
}

/// Reports through the running loop's exception handler, or the default one outside a loop.
pub(crate) fn report(context: ExceptionContext) {
    EventLoop::with_running(|lp| match lp {
        Some(lp) => lp.call_exception_handler(context),
        None => evloop_reactor::default_exception_handler(&context),
    });
}

impl<F> TaskObject for TaskCell<F>
where
    F: Future + 'static,
    F::Output: 'static,
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
        let old = self.cold().name.replace(name);
        drop(old);
    }

    fn status(&self) -> Status {
        self.status.get()
    }

    fn cancel(&self, cancelled: Cancelled) -> bool {
        if self.status.get() != Status::Pending {
            return false;
        }
        self.cancels_requested
            .set(self.cancels_requested.get().saturating_add(1));
        let mut cold = self.cold();
        if let Some(innermost) = cold.frames.last() {
            // The innermost catch_cancel takes it at its next poll; a request it already holds
            // is not replaced (asyncio keeps the first message too).
            let pending = innermost.take();
            innermost.set(Some(pending.unwrap_or(cancelled)));
        } else if cold.cancel_request.is_none() {
            cold.cancel_request = Some(cancelled);
        }
        drop(cold);
        self.request_wake();
        true
    }

    fn cancelling(&self) -> u32 {
        self.cancels_requested.get()
    }

    fn uncancel(&self) -> u32 {
        let left = self.cancels_requested.get().saturating_sub(1);
        self.cancels_requested.set(left);
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
        self.drop_future();
        self.finish(Err(TaskError::Cancelled(why)));
    }

    fn push_frame(&self, slot: FrameSlot) {
        // A request already waiting at task level moves into the new innermost frame.
        let mut cold = self.cold();
        if let Some(request) = cold.cancel_request.take() {
            slot.set(Some(request));
        }
        cold.frames.push(slot);
    }

    fn take_unreported_panic(&self) -> Option<Panic> {
        self.cold.borrow_mut().as_mut()?.unreported_panic.take()
    }

    fn remove_frame(&self, slot: &FrameSlot) {
        let mut cold = self.cold();
        let removed = match cold.frames.iter().rposition(|f| Rc::ptr_eq(f, slot)) {
            Some(at) => Some(cold.frames.remove(at)),
            None => None,
        };
        // An undelivered request is never lost: it moves to the next frame out, or to the task.
        if let Some(request) = slot.take() {
            match cold.frames.last() {
                Some(outer) => {
                    let pending = outer.take();
                    outer.set(Some(pending.unwrap_or(request)));
                }
                None => {
                    cold.cancel_request.get_or_insert(request);
                }
            }
            drop(cold);
            drop(removed);
            self.request_wake();
        }
    }
}

impl<F> JoinTarget<F::Output> for TaskCell<F>
where
    F: Future + 'static,
    F::Output: 'static,
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
            report(
                ExceptionContext::new("Task exception was never retrieved")
                    .with_exception(panic)
                    .with_task(self.describe()),
            );
        }
    }
}
