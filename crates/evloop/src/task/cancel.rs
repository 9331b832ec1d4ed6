//! How a cancel request travels inside a task, and down to what the task awaits.
//!
//! asyncio's `Task.cancel()` does one of two things (shared/asyncio-contracts.md H4): if the task
//! is suspended on a future (`_fut_waiter`), it cancels *that* future, and the cancellation comes
//! back up to the task when the future ends cancelled; otherwise it sets `_must_cancel`, and the
//! task is cancelled at its next step. evloop keeps the same two paths:
//!
//! - A [`Waiter`] is what a task is suspended on when that is one of evloop's own awaitables: a
//!   [`LoopFuture`](crate::LoopFuture), another task's [`Task`](crate::Task) handle, a
//!   [`gather`](fn@crate::gather). Each registers itself with the polling task when it returns
//!   `Pending`; the record lives for that one step. Two at once (a foreign `join!` of two loop
//!   futures) is ambiguous, and the task then falls back to the second path, as a foreign future
//!   always does.
//! - A *delegation* is a request handed to the waiter: the task remembers which waiter took its
//!   request. When that waiter is next polled and has ended cancelled, it *raises* the
//!   cancellation in the task (see below) instead of returning its `Err` value; if it ended with a
//!   value instead (an awaited task caught its cancellation and returned), the request is void
//!   and the value is returned, exactly as asyncio's `await` would. If the waiter is abandoned
//!   (not polled again), the request becomes a plain one, so it is never lost.
//! - A *plain request* (`_must_cancel`) waits in the innermost active
//!   [`catch_cancel`](crate::catch_cancel) frame, or at task level when there is none; the task's
//!   next step drops the future at its await point (task level) or the frame takes it.
//! - To *raise* is to put a cancellation where a plain request would go, during a poll: it is
//!   how a cancellation surfaces at an await point, and how [`Cancelled::raise`] re-raises a
//!   caught one (asyncio's bare `raise` in an `except CancelledError:`).

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::Cancelled;
use crate::task::cell::{Status, TaskObject};
use crate::task::current;

/// A catch frame's mailbox: where a cancel request waits for the `catch_cancel` that will take it.
pub(crate) type FrameSlot = Rc<Cell<Option<Cancelled>>>;

/// An evloop awaitable that a task's cancellation can be handed to (besides a task itself).
pub(crate) trait Cancellable {
    /// Cancels it with `cancelled`'s message; false if it is already done (nothing to cancel).
    fn cancel_from_waiter(self: Rc<Self>, cancelled: &Cancelled) -> bool;
    /// Whether it has ended (a gather: every child has).
    fn is_done(&self) -> bool;
    /// Calls `wake` once it has ended (maybe more than once; callers check `is_done`).
    fn on_done(&self, wake: Rc<dyn Fn()>);
    /// What it is, for the task dump.
    fn awaited(&self) -> crate::dump::Awaited;
}

/// What a task is suspended on (asyncio's `_fut_waiter`).
#[derive(Clone)]
pub(crate) enum Waiter {
    /// Another task, awaited through its `Task` handle.
    Task(Arc<dyn TaskObject>),
    /// A loop future or a gather.
    Other(Rc<dyn Cancellable>),
}

impl Waiter {
    /// The awaitable's identity: its allocation's address.
    pub(crate) fn id(&self) -> usize {
        match self {
            Waiter::Task(task) => Arc::as_ptr(task).cast::<()>() as usize,
            Waiter::Other(other) => Rc::as_ptr(other).cast::<()>() as usize,
        }
    }

    /// What it is, for the task dump.
    pub(crate) fn awaited(&self) -> crate::dump::Awaited {
        match self {
            Waiter::Task(task) => crate::dump::Awaited::Task(task.id()),
            Waiter::Other(other) => other.awaited(),
        }
    }

    pub(crate) fn cancel(&self, cancelled: &Cancelled) -> bool {
        match self {
            Waiter::Task(task) => task.cancel(cancelled.clone()),
            Waiter::Other(other) => other.clone().cancel_from_waiter(cancelled),
        }
    }

    /// Whether the awaitable has ended.
    pub(crate) fn is_done(&self) -> bool {
        match self {
            Waiter::Task(task) => task.status() != Status::Pending,
            Waiter::Other(other) => other.is_done(),
        }
    }

    /// Calls `wake` once the awaitable has ended (from a scheduled callback, never inside).
    pub(crate) fn on_done(&self, wake: Rc<dyn Fn()>) {
        match self {
            Waiter::Task(task) => task.add_done_callback(Box::new(move || wake())),
            Waiter::Other(other) => other.on_done(wake),
        }
    }
}

/// What a task's current step has recorded it is suspended on.
pub(crate) enum Recorded {
    /// No evloop awaitable so far.
    Nothing,
    /// Exactly one.
    One(Waiter),
    /// More than one (ambiguous).
    Several,
}

/// The waiter a task registered during its current step.
#[derive(Default)]
pub(crate) struct WaiterRecord {
    waiter: Cell<Option<Waiter>>,
    /// More than one evloop awaitable was pending in this step: no single waiter to cancel.
    ambiguous: Cell<bool>,
    /// The awaitable a request was delegated to registered again in this step (it is still
    /// being awaited, not abandoned).
    delegate_seen: Cell<bool>,
}

impl WaiterRecord {
    /// Forgets the previous step's waiter (its drop runs with no borrow held).
    #[inline]
    pub(crate) fn reset(&self) {
        drop(self.waiter.take());
        self.ambiguous.set(false);
        self.delegate_seen.set(false);
    }

    /// Whether awaitable `id` is the one recorded (without building it).
    fn holds(&self, id: usize) -> bool {
        let waiter = self.waiter.take();
        let holds = waiter.as_ref().is_some_and(|w| w.id() == id);
        self.waiter.set(waiter);
        holds
    }

    pub(crate) fn register(
        &self,
        id: usize,
        make: &mut dyn FnMut() -> Option<Waiter>,
        delegated_to: Option<usize>,
    ) {
        if delegated_to == Some(id) {
            self.delegate_seen.set(true);
        }
        if self.ambiguous.get() || self.holds(id) {
            return;
        }
        let existing = self.waiter.take();
        if existing.is_some() {
            self.waiter.set(existing);
            self.ambiguous.set(true);
        } else {
            self.waiter.set(make());
        }
    }

    /// The single waiter of this step, if there is exactly one.
    pub(crate) fn single(&self) -> Option<Waiter> {
        if self.ambiguous.get() {
            return None;
        }
        let waiter = self.waiter.take();
        let single = waiter.clone();
        self.waiter.set(waiter);
        single
    }

    /// What this step has recorded, without taking it.
    pub(crate) fn peek(&self) -> Recorded {
        if self.ambiguous.get() {
            return Recorded::Several;
        }
        match self.single() {
            Some(waiter) => Recorded::One(waiter),
            None => Recorded::Nothing,
        }
    }

    pub(crate) fn delegate_seen(&self) -> bool {
        self.delegate_seen.get()
    }
}

thread_local! {
    /// How many delegations are pending among this thread's tasks: while none is, an awaitable
    /// that finished need not ask its task whether a request was handed to it (the common case
    /// costs one thread-local read). A count left high by a task freed mid-delegation only
    /// costs that check, never a missed cancellation.
    static PENDING_DELEGATIONS: Cell<usize> = const { Cell::new(0) };
}

/// Whether any task on this thread has handed a request to a waiter and not heard back.
#[inline]
pub(crate) fn delegations_pending() -> bool {
    PENDING_DELEGATIONS.with(Cell::get) != 0
}

/// The cancellation state a task keeps in its cold part: plain requests, frames and the pending
/// delegation.
#[derive(Default)]
pub(crate) struct Requests {
    /// A plain request no `catch_cancel` will take (no frame is active): the next step ends the
    /// task.
    pub(crate) request: Option<Cancelled>,
    /// Active `catch_cancel` frames, innermost last.
    pub(crate) frames: Vec<FrameSlot>,
    /// The request handed to a waiter: (the waiter's id, the request).
    delegation: Option<(usize, Cancelled)>,
}

impl Requests {
    /// Records that `cancelled` was handed to waiter `id` (the first such request is kept).
    pub(crate) fn delegate(&mut self, id: usize, cancelled: Cancelled) {
        if self.delegation.is_none() {
            self.delegation = Some((id, cancelled));
            PENDING_DELEGATIONS.with(|n| n.set(n.get() + 1));
        }
    }

    /// The waiter the pending delegation went to, if any.
    pub(crate) fn delegated_to(&self) -> Option<usize> {
        self.delegation.as_ref().map(|(id, _)| *id)
    }

    /// Takes the pending delegation out (it was resolved, abandoned or the task ended).
    pub(crate) fn take_delegation(&mut self) -> Option<(usize, Cancelled)> {
        let taken = self.delegation.take();
        if taken.is_some() {
            PENDING_DELEGATIONS.with(|n| n.set(n.get() - 1));
        }
        taken
    }

    /// Puts `cancelled` where a plain request goes: the innermost frame, or task level. A
    /// request already waiting there is kept (asyncio keeps the first message too).
    pub(crate) fn deliver(&mut self, cancelled: Cancelled) {
        match self.frames.last() {
            Some(innermost) => {
                let pending = innermost.take();
                innermost.set(Some(pending.unwrap_or(cancelled)));
            }
            None => {
                self.request.get_or_insert(cancelled);
            }
        }
    }

    /// The undelivered plain request, wherever it waits, taken out.
    pub(crate) fn take_undelivered(&mut self) -> Option<Cancelled> {
        match self.frames.last() {
            Some(innermost) => innermost.take(),
            None => self.request.take(),
        }
    }

    /// Withdraws every request not yet delivered (`uncancel()` reaching zero, asyncio 3.13).
    pub(crate) fn withdraw(&mut self) {
        self.request = None;
        for frame in &self.frames {
            frame.set(None);
        }
    }

    /// Whether an undelivered request waits in the innermost frame.
    pub(crate) fn frame_has_request(&self) -> bool {
        self.frames.last().is_some_and(|frame| {
            let request = frame.take();
            let has = request.is_some();
            frame.set(request);
            has
        })
    }
}

/// Called by an evloop awaitable that is done: says whether the current task had handed it a
/// cancel request and it ended cancelled, in which case the cancellation has been raised in the
/// task and the awaitable must return `Pending` (the task is cancelled at this await point, or
/// the enclosing `catch_cancel` takes it). If it ended otherwise, a request handed to it is void.
#[inline]
pub(crate) fn resolve_delegation(waiter_id: usize, ended_cancelled: bool) -> bool {
    delegations_pending()
        && current::with_current(|task| {
            task.is_some_and(|t| t.resolve_delegation(waiter_id, ended_cancelled))
        })
}

/// Called by an evloop awaitable that returns `Pending`: records it (identity `id`) as what the
/// current task is suspended on. `make` runs only inside a task, and only if the task has not
/// recorded this awaitable yet in this step.
#[inline]
pub(crate) fn register_waiter(id: usize, make: impl FnOnce() -> Waiter) {
    current::with_current(|task| {
        if let Some(task) = task {
            let mut make = Some(make);
            task.register_waiter(id, &mut || make.take().map(|make| make()));
        }
    });
}

/// What the current task's step has recorded it is suspended on so far (a timeout looks before
/// and after polling its block, to cancel only what the block itself waits on).
pub(crate) fn peek_waiter() -> Recorded {
    current::with_current(|task| task.map_or(Recorded::Nothing, |t| t.peek_waiter()))
}

impl Cancelled {
    /// Re-raises a caught cancellation (asyncio's bare `raise` inside `except CancelledError:`):
    /// awaited inside a task, it never completes; the cancellation goes on to the next
    /// enclosing [`catch_cancel`](crate::catch_cancel), or ends the task cancelled with this
    /// message. The output type is whatever the context needs, since it never arrives.
    ///
    /// # Panics
    ///
    /// When polled outside a task (there is nothing to cancel).
    ///
    /// ```
    /// use evloop::{TaskError, catch_cancel, create_task, sleep};
    /// use std::time::Duration;
    ///
    /// let outcome = evloop::run(async {
    ///     let worker = create_task(async {
    ///         match catch_cancel(sleep(Duration::from_secs(3600))).await {
    ///             Ok(()) => "slept",
    ///             Err(cancelled) => {
    ///                 println!("cleaning up");
    ///                 cancelled.raise().await
    ///             }
    ///         }
    ///     });
    ///     sleep(Duration::ZERO).await;
    ///     worker.cancel_with("stop");
    ///     worker.await
    /// });
    /// assert!(matches!(outcome.unwrap(), Err(TaskError::Cancelled(c)) if c.message() == Some("stop")));
    /// ```
    pub fn raise<T>(self) -> Raise<T> {
        Raise {
            cancelled: Some(self),
            _output: PhantomData,
        }
    }
}

/// The future returned by [`Cancelled::raise`]: it raises the cancellation in the task polling it
/// and never completes.
#[must_use = "a re-raise happens when it is awaited"]
pub struct Raise<T> {
    cancelled: Option<Cancelled>,
    _output: PhantomData<fn() -> T>,
}

impl<T> Future for Raise<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        if let Some(cancelled) = self.cancelled.take() {
            let raised = current::with_current(|task| match task {
                Some(task) => {
                    task.raise_cancel(cancelled);
                    true
                }
                None => false,
            });
            assert!(raised, "Cancelled::raise() was awaited outside a task");
        }
        Poll::Pending
    }
}
