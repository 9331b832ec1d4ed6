//! The task cell: one allocation holding a task's future (then its output), its state and its
//! waker's target; what a task rarely needs lives in a cold block allocated on first use.
//!
//! The cell lives in an `Arc` because a `Waker` must be `Send + Sync`: wakers may be cloned,
//! woken and dropped on any thread. Everything else in the cell, the future above all, is touched
//! only on the loop's thread. That is what makes a `!Send` future sound here:
//!
//! - off the loop thread, a waker touches only the atomic `state` and the `Send` scheduler (the
//!   loop's scheduler): waking pushes a [`TaskRef`](evloop_reactor::TaskRef) into the loop's
//!   thread-safe queue (see `waker.rs`);
//! - the future and the output are always dropped on the loop thread: at completion, when the
//!   task is cancelled, when the loop closes (the task registry drops every live future), or
//!   when the `Task` handle is dropped (it drops an output nobody took). So when the last
//!   reference goes away on another thread, nothing `!Send` is left in the cell to drop.
//!
//! Size is most of what spawning costs (the allocation, the stores, the cache lines), so the
//! cell keeps inline only what every task uses: the state bytes, the scheduler (one pointer to
//! the loop's), id and creation site, the join waker, and the future, which shares its slot with
//! the output ([`Stage`], as tokio's cell does). Names, cancellation, `catch_cancel` frames,
//! done callbacks, the waiter record, a context with variables and unreported panics are in
//! [`Cold`], which most tasks never allocate.
//!
//! The step itself (poll, cancellation, completion) is in `step.rs`; the type-erased views
//! (`TaskObject`, `JoinTarget`) are implemented in `object.rs`.

use std::cell::{Cell, OnceCell, RefCell, UnsafeCell};
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::task::{Context, Poll, Waker};

use evloop_reactor::{Panic, Snapshot};

use crate::error::{Cancelled, TaskError};
use crate::task::cancel::{FrameSlot, Recorded, Requests, Waiter, WaiterRecord};
use crate::task::schedule::{LoopRef, Schedule};

/// Queued for a poll: further wake-ups are no-ops until the poll starts.
pub(super) const SCHEDULED: u8 = 1;
/// Finished: wake-ups are no-ops.
pub(super) const DONE: u8 = 2;
/// Step flag: the future is being polled (a cancel now is a request made during the step).
pub(super) const POLLING: u8 = 1;
/// Step flag: a cancel was requested during the current step.
pub(super) const CANCELLED_IN_STEP: u8 = 2;

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
    pub(super) fn word(self) -> &'static str {
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

/// The future until it ends, then its output until it is taken: one slot, since the two never
/// live at once.
pub(super) enum Stage<F: Future> {
    Running(F),
    /// The error is boxed: a task's outcome is nearly always a value, and an inline
    /// `TaskError` (32 bytes) would size every cell for the rare failure.
    Finished(Result<F::Output, Box<TaskError>>),
    /// The future was dropped and the output, if any, taken or dropped.
    Consumed,
}

pub(crate) struct TaskCell<F: Future, S = LoopRef> {
    /// `SCHEDULED` / `DONE`: with `scheduler`, all that other threads touch. (Not grouped in a
    /// struct: its padding would cost the cell 8 bytes, and with them a malloc size class.)
    pub(super) state: AtomicU8,
    pub(super) scheduler: S,
    pub(super) status: Cell<Status>,
    /// `POLLING` / `CANCELLED_IN_STEP` (one byte: set and cleared on every step).
    pub(super) step_flags: Cell<u8>,
    pub(super) handle_alive: Cell<bool>,
    /// The task's slot in its loop's registry (see `registry.rs`), given back when it ends.
    pub(super) slot: Cell<u32>,
    pub(super) id: u64,
    pub(super) created_at: &'static Location<'static>,
    /// Loop-thread only (see the module doc). While the status is `Pending`, only the step and
    /// `drop_future` touch it; once it is not, only the output's takers do.
    pub(super) stage: UnsafeCell<Stage<F>>,
    pub(super) join_waker: Cell<Option<Waker>>,
    pub(super) cold: OnceCell<Box<Cold>>,
    /// The task's span (feature `tracing`): entered for every step, so events from the task
    /// carry its name, id and creation site.
    #[cfg(feature = "tracing")]
    pub(super) span: tracing::Span,
}

/// What only names, cancellation, `catch_cancel`, done callbacks, context variables and panics
/// need. Every field's empty value means the same as having no `Cold` at all, so a task that
/// never uses them never allocates it.
#[derive(Default)]
pub(super) struct Cold {
    pub(super) parts: RefCell<ColdParts>,
    pub(super) cancels_requested: Cell<u32>,
    /// The task's context variables between steps (asyncio runs every step in the task's own
    /// context, a copy of the one current at `create_task`); `None` while it has none.
    pub(super) context: Cell<Option<Snapshot>>,
    /// What the current step is suspended on (asyncio's `_fut_waiter`).
    pub(super) waiter: WaiterRecord,
}

/// The cold parts that are borrowed together.
#[derive(Default)]
pub(super) struct ColdParts {
    pub(super) name: Option<String>,
    pub(super) requests: Requests,
    pub(super) done_callbacks: Vec<Box<dyn FnOnce()>>,
    /// A copy of the panic while the output holding it is unretrieved and unreported.
    pub(super) unreported_panic: Option<Panic>,
}

// SAFETY: the only state other threads touch is `state` (an atomic) and `scheduler` (Send + Sync) and
// the Arc's reference counts; every other field, including the future and the output, is only
// read, written and dropped on the loop thread; the module doc explains why nothing !Send is left
// in the cell when the last reference may be released elsewhere.
unsafe impl<F: Future, S: Send> Send for TaskCell<F, S> {}
// SAFETY: as for Send: shared access from other threads is limited to `state` and `scheduler`.
unsafe impl<F: Future, S: Sync> Sync for TaskCell<F, S> {}

impl<F, S> TaskCell<F, S>
where
    F: Future + 'static,
    F::Output: 'static,
    S: Schedule,
{
    #[inline]
    pub(crate) fn new(
        future: F,
        id: u64,
        scheduler: S,
        created_at: &'static Location<'static>,
        context: Option<Snapshot>,
    ) -> Arc<Self> {
        let cell = Arc::new(TaskCell {
            state: AtomicU8::new(0),
            scheduler,
            status: Cell::new(Status::Pending),
            step_flags: Cell::new(0),
            handle_alive: Cell::new(true),
            slot: Cell::new(u32::MAX),
            id,
            created_at,
            stage: UnsafeCell::new(Stage::Running(future)),
            join_waker: Cell::new(None),
            cold: OnceCell::new(),
            #[cfg(feature = "tracing")]
            span: tracing::info_span!(
                target: "evloop",
                "task",
                id,
                name = %format_args!("Task-{id}"),
                created_at = %created_at,
            ),
        });
        if context.is_some() {
            cell.cold().context.set(context);
        }
        cell
    }

    pub(super) fn polling(&self) -> bool {
        self.step_flags.get() & POLLING != 0
    }

    /// The cold block, if the task has needed one.
    #[inline]
    pub(super) fn cold_if_any(&self) -> Option<&Cold> {
        self.cold.get().map(|cold| &**cold)
    }

    /// The cold block, allocated on first use.
    pub(super) fn cold(&self) -> &Cold {
        self.cold.get_or_init(Box::default)
    }

    /// The cold parts, allocated on first use. The borrow must end before any user code runs.
    pub(super) fn parts(&self) -> std::cell::RefMut<'_, ColdParts> {
        self.cold().parts.borrow_mut()
    }

    /// The cold parts if allocated. The borrow must end before any user code runs.
    pub(super) fn parts_if_any(&self) -> Option<std::cell::RefMut<'_, ColdParts>> {
        self.cold_if_any().map(|cold| cold.parts.borrow_mut())
    }

    pub(super) fn cancels_requested(&self) -> u32 {
        self.cold_if_any()
            .map_or(0, |cold| cold.cancels_requested.get())
    }

    /// Takes the context out for a step (or a report run in it).
    pub(super) fn take_context(&self) -> Option<Snapshot> {
        self.cold_if_any().and_then(|cold| cold.context.take())
    }

    /// Puts the context back after a step; a task with no variables allocates nothing.
    pub(super) fn put_context(&self, context: Option<Snapshot>) {
        match (self.cold_if_any(), context) {
            (Some(cold), context) => cold.context.set(context),
            (None, None) => {}
            (None, Some(context)) => self.cold().context.set(Some(context)),
        }
    }

    /// Forgets the previous step's waiter.
    #[inline]
    pub(super) fn reset_waiter(&self) {
        if let Some(cold) = self.cold_if_any() {
            cold.waiter.reset();
        }
    }

    pub(super) fn single_waiter(&self) -> Option<Waiter> {
        self.cold_if_any().and_then(|cold| cold.waiter.single())
    }

    /// Takes a plain request waiting at task level (no `catch_cancel` is active to take it).
    pub(super) fn take_task_level_request(&self) -> Option<Cancelled> {
        let mut parts = self.parts_if_any()?;
        if parts.requests.frames.is_empty() {
            parts.requests.request.take()
        } else {
            None
        }
    }

    pub(super) fn delegated_to(&self) -> Option<usize> {
        if !crate::task::cancel::delegations_pending() {
            return None;
        }
        self.parts_if_any()?.requests.delegated_to()
    }

    /// Records the registry slot the task was given.
    pub(crate) fn set_slot(&self, slot: u32) {
        self.slot.set(slot);
    }
}

#[cfg(test)]
#[path = "cell_tests.rs"]
mod tests;
