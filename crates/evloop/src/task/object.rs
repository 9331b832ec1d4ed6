//! The type-erased views of a task cell: what `AnyTask`, the registry, `current_task()` and the
//! cancellation machinery see ([`TaskObject`]), and what a `Task<T>` handle sees
//! ([`JoinTarget`]).

use std::future::Future;
use std::panic::Location;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use evloop_reactor::{EventLoop, Panic};

use crate::error::{Cancelled, TaskError};
use crate::task::cancel::{FrameSlot, Recorded, Waiter};
use crate::task::cell::{CANCELLED_IN_STEP, JoinTarget, Stage, Status, TaskCell, TaskObject};
use crate::task::schedule::Schedule;

impl<F, S> TaskCell<F, S>
where
    F: Future + 'static,
    F::Output: 'static,
    S: Schedule,
{
    /// The output, if the task has ended and it was not taken yet.
    fn take_finished(&self) -> Option<Result<F::Output, TaskError>> {
        if self.status.get() == Status::Pending {
            return None;
        }
        // SAFETY: once the task is not pending, its future is gone and only the output's takers
        // (this, on the loop thread) touch the stage; no reference to it outlives this block.
        let stage = unsafe { &mut *self.stage.get() };
        match std::mem::replace(stage, Stage::Consumed) {
            Stage::Finished(output) => Some(output.map_err(|error| *error)),
            other => {
                *stage = other;
                None
            }
        }
    }
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
        match self.parts_if_any().and_then(|parts| parts.name.clone()) {
            Some(name) => name,
            None => format!("Task-{}", self.id),
        }
    }

    fn set_name(&self, name: String) {
        #[cfg(feature = "tracing")]
        self.span.record("name", name.as_str());
        let old = self.parts().name.replace(name);
        drop(old);
    }

    fn status(&self) -> Status {
        self.status.get()
    }

    fn describe(&self) -> String {
        let status = self.status.get();
        // asyncio's repr says "cancelling" while a request is pending and the task is not done.
        let word = if status == Status::Pending && self.cancels_requested() > 0 {
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
        self.scheduler.loop_id()
    }

    fn cancel(&self, cancelled: Cancelled) -> bool {
        if self.status.get() != Status::Pending {
            // asyncio's cancel() clears `__log_traceback` first: whoever cancels a task that
            // already failed has seen to it, and no "never retrieved" report follows.
            drop(self.take_unreported_panic());
            return false;
        }
        let requested = &self.cold().cancels_requested;
        requested.set(requested.get().saturating_add(1));
        if self.polling() {
            // Requested during our own step (a task cancelling itself, say): the step decides
            // when it ends (see `after_pending_poll`).
            self.step_flags
                .set(self.step_flags.get() | CANCELLED_IN_STEP);
        } else if let Some(waiter) = self.single_waiter() {
            // Suspended on an evloop awaitable: cancel that; the cancellation comes back through
            // it (asyncio: `self._fut_waiter.cancel(msg)`).
            if waiter.cancel(&cancelled) {
                self.parts().requests.delegate(waiter.id(), cancelled);
                return true;
            }
        }
        self.parts().requests.deliver(cancelled);
        self.request_wake();
        true
    }

    fn cancelling(&self) -> u32 {
        self.cancels_requested()
    }

    fn uncancel(&self) -> u32 {
        let Some(cold) = self.cold_if_any() else {
            return 0;
        };
        let left = cold.cancels_requested.get().saturating_sub(1);
        cold.cancels_requested.set(left);
        if left == 0 {
            // asyncio 3.13: back to zero withdraws a request not delivered yet.
            cold.parts.borrow_mut().requests.withdraw();
        }
        left
    }

    fn add_done_callback(&self, callback: Box<dyn FnOnce()>) {
        if self.status.get() == Status::Pending {
            self.parts().done_callbacks.push(callback);
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
        let mut parts = self.parts();
        if let Some(request) = parts.requests.request.take() {
            slot.set(Some(request));
        }
        parts.requests.frames.push(slot);
    }

    fn take_unreported_panic(&self) -> Option<Panic> {
        self.parts_if_any()?.unreported_panic.take()
    }

    fn remove_frame(&self, slot: &FrameSlot) {
        let mut parts = self.parts();
        let requests = &mut parts.requests;
        let removed = match requests.frames.iter().rposition(|f| Rc::ptr_eq(f, slot)) {
            Some(at) => Some(requests.frames.remove(at)),
            None => None,
        };
        // An undelivered request is never lost: it moves to the next frame out, or to the task.
        if let Some(request) = slot.take() {
            requests.deliver(request);
            drop(parts);
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
            self.cold().waiter.register(id, make, delegated);
        }
    }

    fn peek_waiter(&self) -> Recorded {
        self.cold_if_any()
            .map_or(Recorded::Nothing, |cold| cold.waiter.peek())
    }

    fn awaiting(&self) -> Option<Waiter> {
        if self.polling() {
            return None; // running now: not suspended on anything
        }
        self.single_waiter()
    }

    fn resolve_delegation(&self, waiter_id: usize, ended_cancelled: bool) -> bool {
        let cancelled = {
            let Some(mut parts) = self.parts_if_any() else {
                return false;
            };
            if parts.requests.delegated_to() != Some(waiter_id) {
                return false;
            }
            let (_, cancelled) = parts.requests.take_delegation().expect("checked");
            cancelled
        };
        if ended_cancelled {
            self.raise_cancel(cancelled);
        }
        ended_cancelled
    }

    fn raise_cancel(&self, cancelled: Cancelled) {
        self.parts().requests.deliver(cancelled);
    }

    fn context(&self) -> evloop_reactor::Context {
        let snapshot = self.take_context();
        self.put_context(snapshot.clone());
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
        let waker = match self.join_waker.take() {
            Some(waker) if waker.will_wake(cx.waker()) => waker,
            _ => cx.waker().clone(),
        };
        self.join_waker.set(Some(waker));
        Poll::Pending
    }

    fn take_output(&self) -> Option<Result<F::Output, TaskError>> {
        let output = self.take_finished();
        if output.is_some() {
            drop(self.take_unreported_panic());
        }
        output
    }

    fn handle_dropped(&self) {
        self.handle_alive.set(false);
        drop(self.join_waker.take());
        drop(self.take_finished());
        if let Some(panic) = self.take_unreported_panic() {
            self.report_unretrieved(panic);
        }
    }

    fn as_task_object(self: Arc<Self>) -> Arc<dyn TaskObject> {
        self
    }
}
