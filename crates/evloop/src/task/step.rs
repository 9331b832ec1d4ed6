//! One step of a task (asyncio's `Task.__step`): the poll, what cancellation does around it, and
//! how a task ends.
//!
//! Cancellation (the `cancel` module says how a request travels) is decided here: a plain
//! request at task level ends the task before its poll, or after a poll that returned (asyncio's
//! `_must_cancel`, honoured even on the last step); a request made during the step is handed to
//! what the step ended up waiting on, as asyncio's `__step` does. A task that ends gives its
//! registry slot back at once, so the loop never keeps a finished task alive.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use evloop_reactor::{EventLoop, ExceptionContext, Panic, Scope};

use crate::error::{Cancelled, TaskError};
use crate::task::cell::{
    CANCELLED_IN_STEP, DONE, POLLING, SCHEDULED, Stage, Status, TaskCell, TaskObject,
};
use crate::task::current::CurrentGuard;
use crate::task::schedule::Schedule;

impl<F, S> TaskCell<F, S>
where
    F: Future + 'static,
    F::Output: 'static,
    S: Schedule,
{
    /// One step: poll the future once, on the loop thread (asyncio's `Task.__step`).
    pub(super) fn step(self: &Arc<Self>) {
        // Clear SCHEDULED first, so that a wake-up during the poll queues another step.
        self.state.fetch_and(!SCHEDULED, Ordering::AcqRel);
        if self.status.get() != Status::Pending {
            return;
        }
        self.reset_waiter();
        if let Some(cancelled) = self.take_task_level_request() {
            self.end_cancelled(cancelled);
            return;
        }
        match self.poll_future() {
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
        let waker = self.borrowed_waker();
        let mut cx = Context::from_waker(&waker);
        let context = Scope::enter_task(self.take_context(), self.id);
        self.step_flags.set(POLLING);
        let polled = {
            #[cfg(feature = "tracing")]
            let _span = self.span.enter();
            let _current = CurrentGuard::enter(&**self as &dyn TaskObject);
            // SAFETY: while the task is pending only `step` (never re-entered: a task is not
            // polled from its own poll) and `drop_future` (never called while polling) touch the
            // stage, on the loop thread; the output's takers look only once it is not pending.
            let stage = unsafe { &mut *self.stage.get() };
            match stage {
                Stage::Running(future) => {
                    // SAFETY: the future lives inside the Arc and is never moved until it is
                    // dropped in place (`drop_future`).
                    let future = unsafe { Pin::new_unchecked(future) };
                    catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx)))
                }
                _ => Ok(Poll::Pending),
            }
        };
        self.step_flags.set(self.step_flags.get() & !POLLING);
        self.put_context(context.exit());
        polled
    }

    /// What a step that returned `Pending` does about cancellation.
    fn after_pending_poll(&self) {
        let Some(cold) = self.cold_if_any() else {
            return;
        };
        let delegate_abandoned = {
            let mut parts = cold.parts.borrow_mut();
            let abandoned = parts.requests.delegated_to().is_some() && !cold.waiter.delegate_seen();
            if abandoned {
                // The awaitable that took our request was dropped or is no longer polled: the
                // request becomes a plain one, never lost.
                let (_, cancelled) = parts.requests.take_delegation().expect("checked");
                parts.requests.deliver(cancelled);
            }
            abandoned
        };
        // A request made during the step goes to what the step is now waiting on, as asyncio's
        // __step cancels a future yielded while _must_cancel is set.
        if self.step_flags.get() & CANCELLED_IN_STEP != 0 && !delegate_abandoned {
            if let Some(waiter) = cold.waiter.single() {
                let request = cold.parts.borrow_mut().requests.take_undelivered();
                if let Some(cancelled) = request {
                    if waiter.cancel(&cancelled) {
                        cold.parts
                            .borrow_mut()
                            .requests
                            .delegate(waiter.id(), cancelled);
                    } else {
                        cold.parts.borrow_mut().requests.deliver(cancelled);
                    }
                }
            }
        }
        if let Some(cancelled) = self.take_task_level_request() {
            self.end_cancelled(cancelled);
        } else if cold.parts.borrow().requests.frame_has_request() {
            // The innermost catch_cancel takes it on the next step.
            self.request_wake();
        }
    }

    /// Ends the task cancelled: the future is dropped at its await point.
    pub(super) fn end_cancelled(&self, cancelled: Cancelled) {
        self.drop_future();
        self.finish(Err(TaskError::Cancelled(cancelled)));
    }

    /// Drops the future in place (running its destructors: Rust's `finally`), catching a
    /// panicking drop. A pinned future is never moved, not even to be dropped.
    fn drop_future(&self) {
        let stage = self.stage.get();
        // SAFETY: see `poll_future`; never called while the future is being polled.
        if !matches!(unsafe { &*stage }, Stage::Running(_)) {
            return;
        }
        /// Marks the stage consumed once the drop is over, even if the drop panicked (a second
        /// drop of a partly dropped future would be unsound).
        struct Emptied<F: Future>(*mut Stage<F>);
        impl<F: Future> Drop for Emptied<F> {
            fn drop(&mut self) {
                // SAFETY: the stage's value has just been dropped in place; writing over it
                // without dropping it again is what makes the stage valid again.
                unsafe { std::ptr::write(self.0, Stage::Consumed) };
            }
        }
        let dropped = catch_unwind(AssertUnwindSafe(|| {
            let _emptied = Emptied(stage);
            // SAFETY: the stage holds the pinned future, which is dropped where it lies; nothing
            // else refers to it (no poll is running), and `_emptied` marks it consumed after.
            unsafe { std::ptr::drop_in_place(stage) };
        }));
        if let Err(payload) = dropped {
            crate::task::report(
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
        self.state.fetch_or(DONE, Ordering::AcqRel);
        self.reset_waiter();
        // Frames and callbacks leave the cell with no borrow held: dropping or running them
        // may touch this task again.
        let (frames, callbacks) = match self.parts_if_any() {
            Some(mut parts) => {
                drop(parts.requests.take_delegation());
                (
                    std::mem::take(&mut parts.requests.frames),
                    std::mem::take(&mut parts.done_callbacks),
                )
            }
            None => (Vec::new(), Vec::new()),
        };
        drop(frames);
        if self.handle_alive.get() {
            if let Err(TaskError::Panicked(panic)) = &result {
                self.parts().unreported_panic = Some(panic.clone());
            }
            // SAFETY: the future was dropped (every path here comes after `drop_future`), so the
            // stage holds nothing and no reference to it is live; the status is no longer
            // pending, so only the output's takers touch it from now on, on this thread.
            unsafe { *self.stage.get() = Stage::Finished(result.map_err(Box::new)) };
            if let Some(waker) = self.join_waker.take() {
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
        // The registry lets go now: a finished task lives only as long as its handles do.
        self.scheduler
            .release(self.slot.get(), (self as *const Self).cast());
    }

    /// "Task exception was never retrieved", reported in the task's own context.
    pub(super) fn report_unretrieved(&self, panic: Panic) {
        let context = ExceptionContext::new("Task exception was never retrieved")
            .with_exception(panic)
            .with_task(self.describe());
        let scope = Scope::enter_task(self.take_context(), self.id);
        crate::task::report(context);
        self.put_context(scope.exit());
    }
}
