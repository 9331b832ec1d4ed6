//! `catch_cancel`: asyncio's `except CancelledError`, for async clean-up and refusal.
//!
//! While a task awaits inside `catch_cancel(fut)`, a cancel request is not applied to the whole
//! task: it is delivered to the innermost active `catch_cancel`, which drops `fut` (its
//! destructors run) and returns `Err(Cancelled)`. The task goes on after the wrapper: it can
//! await a clean-up (flush, say goodbye to a peer) and return, or ignore the request. A frame
//! dropped before it took its request passes the request on, so a request is never lost.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::Cancelled;
use crate::task::cancel::FrameSlot;
use crate::task::cell::TaskObject;
use crate::task::current;

/// Runs `future`, turning a cancel request that arrives meanwhile into `Err(Cancelled)`.
///
/// ```
/// use evloop::{Cancelled, catch_cancel, sleep};
/// use std::time::Duration;
///
/// let said_goodbye = evloop::run(async {
///     let worker = evloop::create_task(async {
///         match catch_cancel(sleep(Duration::from_secs(3600))).await {
///             Ok(()) => "slept",
///             Err(_cancelled) => {
///                 // Async clean-up, impossible in a destructor.
///                 sleep(Duration::from_millis(1)).await;
///                 "said goodbye"
///             }
///         }
///     });
///     sleep(Duration::ZERO).await;
///     worker.cancel();
///     worker.await.unwrap()
/// });
/// assert_eq!(said_goodbye.unwrap(), "said goodbye");
/// ```
pub fn catch_cancel<F: Future>(future: F) -> CatchCancel<F> {
    CatchCancel {
        future: Some(future),
        frame: None,
    }
}

/// The future returned by [`catch_cancel`].
pub struct CatchCancel<F> {
    future: Option<F>,
    frame: Option<(Arc<dyn TaskObject>, FrameSlot)>,
}

impl<F> CatchCancel<F> {
    fn leave(&mut self) {
        if let Some((task, slot)) = self.frame.take() {
            task.remove_frame(&slot);
        }
    }
}

impl<F: Future> Future for CatchCancel<F> {
    type Output = Result<F::Output, Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out while Some, only
        // dropped in place (`set(None)` semantics via take-and-drop of the pinned slot below).
        let this = unsafe { self.get_unchecked_mut() };
        if this.frame.is_none() {
            if let Some(task) = current::current() {
                let slot: FrameSlot = Rc::default();
                task.push_frame(slot.clone());
                this.frame = Some((task, slot));
            }
        }
        if let Some((_, slot)) = &this.frame {
            if let Some(cancelled) = slot.take() {
                // Drop the inner future in place, then leave the frame: the request is consumed.
                this.future = None;
                this.leave();
                return Poll::Ready(Err(cancelled));
            }
        }
        let Some(future) = this.future.as_mut() else {
            panic!("CatchCancel polled after completion");
        };
        // SAFETY: see above; the future is not moved while pinned.
        let future = unsafe { Pin::new_unchecked(future) };
        match future.poll(cx) {
            Poll::Ready(value) => {
                this.future = None;
                this.leave();
                Poll::Ready(Ok(value))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> Drop for CatchCancel<F> {
    fn drop(&mut self) {
        // Drop the inner future first (its destructors may still see the frame), then pass on a
        // request this frame never took.
        self.future = None;
        self.leave();
    }
}
