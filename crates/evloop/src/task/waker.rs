//! A task cell as a `Waker` and as the loop's [`TaskRef`]: the raw vtables, and scheduling.
//!
//! On the loop thread a wake-up goes straight into the ready queue: one atomic `fetch_or` to
//! mark the task scheduled (so a task is queued at most once however often it is woken), one
//! reference-count increment, and a push; no lock. From another thread it goes through the
//! loop's thread-safe queue (see `schedule.rs`).

use std::future::Future;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{RawWaker, RawWakerVTable, Waker};

use evloop_reactor::{TaskRef, TaskRefVTable};

use crate::task::cell::{DONE, SCHEDULED, TaskCell, TaskObject};
use crate::task::schedule::Schedule;

impl<F, S> TaskCell<F, S>
where
    F: Future + 'static,
    F::Output: 'static,
    S: Schedule,
{
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

    /// A waker that borrows `self`'s count (ManuallyDrop: it must not release it).
    pub(super) fn borrowed_waker(self: &Arc<Self>) -> ManuallyDrop<Waker> {
        let ptr = Arc::as_ptr(self);
        // SAFETY: the waker borrows our count (ManuallyDrop: no release at the end); its vtable
        // matches `ptr`'s type.
        ManuallyDrop::new(unsafe {
            Waker::from_raw(RawWaker::new(ptr.cast(), &Self::WAKER_VTABLE))
        })
    }

    /// Schedules a poll, from any thread.
    pub(super) fn schedule(self: &Arc<Self>) {
        if self.state.fetch_or(SCHEDULED, Ordering::AcqRel) & (SCHEDULED | DONE) != 0 {
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
        self.scheduler.schedule(task);
    }

    /// Queues the first poll (from `create_task`).
    pub(crate) fn schedule_first(self: &Arc<Self>) {
        self.schedule();
    }

    /// Schedules a poll from `&self` (the type-erased views have no `Arc` at hand).
    pub(super) fn request_wake(&self) {
        // SAFETY: `self` lives in an Arc (every TaskCell is made by `new`), and the borrowed
        // count is held by the caller's `&self` for the duration of the call.
        unsafe { Self::borrow_arc((self as *const Self).cast()) }.schedule();
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
}
