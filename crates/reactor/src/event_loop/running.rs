//! The running loop of this thread: asyncio's `_get_running_loop` and what a task's waker reads.
//!
//! `run_forever` and `run_once` enter the loop into this thread's slots and a guard takes it
//! out however the run ends. Besides the loop itself the slots keep its id and a plain pointer
//! to its state, so that the on-thread half of a task's waker is one thread-local read and a
//! push, with no `RefCell` borrow and no reference count.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use evloop_callbacks::TaskRef;

use super::{EventLoop, Inner};
use crate::LoopError;

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

impl EventLoop {
    /// Calls `f` with the loop running on this thread, without cloning it: the allocation-free
    /// form of [`get_running_loop`] for the layers above (a semaphore's or a timer's waker).
    /// Not API: code outside evloop uses [`get_running_loop`].
    #[doc(hidden)]
    pub fn with_running<R>(f: impl FnOnce(Option<&EventLoop>) -> R) -> R {
        RUNNING.with(|running| f(running.borrow().as_ref()))
    }

    /// The id of the loop running on this thread (0 when none): one thread-local read, for the
    /// layers above to tell "on my loop's thread" from "elsewhere" on a waker's path. Not API:
    /// code outside evloop uses [`get_running_loop`].
    #[doc(hidden)]
    pub fn running_id() -> u64 {
        RUNNING_ID.with(Cell::get)
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
    ///
    /// Not API: the facade's task waker is its only caller (a custom [`TaskRef`] is queued with
    /// [`schedule_task`](EventLoop::schedule_task) or through [`remote`](EventLoop::remote)).
    #[doc(hidden)]
    pub fn schedule_task_if_running(loop_id: u64, task: TaskRef) -> Result<(), TaskRef> {
        // Hold the parts, which have no destructor, rather than the reference: the queue's
        // `borrow_mut` may panic, and a reference live across it would be kept in memory for the
        // unwind path and copied out of there with a load the CPU cannot forward from the two
        // stores that put it there (a stall on every wake-up).
        let (ptr, vtable) = task.into_raw_parts();
        // SAFETY: rebuilds the reference just taken apart; each path below rebuilds it once,
        // including the one that panics.
        let task = || unsafe { TaskRef::from_raw(ptr, vtable) };
        let inner = RUNNING_INNER.with(Cell::get);
        if inner.is_null() {
            return Err(task());
        }
        // SAFETY: RUNNING_INNER is non-null only between `enter` and the `RunningGuard`'s drop,
        // while the guard holds a clone of the loop, so the `Inner` is alive; and it is only
        // ever shared (`&`), like every other access to a loop from its own thread.
        let inner = unsafe { &*inner };
        if inner.id != loop_id {
            return Err(task());
        }
        // A running loop cannot be closed (close() refuses), so no closed check is needed.
        // What other threads sent first runs first (one order, as in asyncio).
        if inner.shared.queue.has_items() {
            return Err(task());
        }
        let Ok(mut ready) = inner.ready.try_borrow_mut() else {
            // Release the reference before reporting the misuse, as an owned one would be.
            drop(task());
            panic!("the ready queue is already borrowed");
        };
        ready.push_task(task());
        Ok(())
    }

    /// Marks this loop as running on this thread until the guard drops.
    pub(super) fn enter(&self) -> Result<RunningGuard, LoopError> {
        self.check_closed()?;
        if self.inner.running.get() {
            return Err(LoopError::AlreadyRunning);
        }
        if Self::running_id() != 0 {
            return Err(LoopError::AnotherLoopRunning);
        }
        self.inner.running.set(true);
        // Each run polls before it first runs its ready work (a `run_once` sees the I/O that is
        // already there, as asyncio's does).
        self.inner.woken_by_remote.set(false);
        self.inner.skip_polls_until.set(None);
        RUNNING.with(|running| *running.borrow_mut() = Some(self.clone()));
        RUNNING_ID.with(|id| id.set(self.inner.id));
        RUNNING_INNER.with(|ptr| ptr.set(Rc::as_ptr(&self.inner)));
        Ok(RunningGuard { lp: self.clone() })
    }
}

/// Resets the running state when `run_forever` / `run_once` ends, however it ends.
pub(super) struct RunningGuard {
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

/// The loop running on this thread, or "no running event loop" (asyncio's `get_running_loop`).
///
/// This is the one way to reach the running loop; asyncio's private `_get_running_loop`, which
/// answers `None` instead of raising, is `get_running_loop().ok()`.
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
    RUNNING
        .with(|running| running.borrow().clone())
        .ok_or(LoopError::NoRunningLoop)
}
