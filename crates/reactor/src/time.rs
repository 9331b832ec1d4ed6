//! A loop timer as a future: how I/O code waits (the accept back-off) without a runtime above.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use evloop_callbacks::TimerHandle;

use crate::{EventLoop, LoopError};

#[derive(Default)]
struct State {
    fired: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

/// Resolves once `delay` has passed on `lp`'s clock; dropping it cancels the timer.
pub(crate) struct Sleep {
    state: Rc<State>,
    timer: TimerHandle,
}

impl Sleep {
    pub(crate) fn new(lp: &EventLoop, delay: Duration) -> Result<Sleep, LoopError> {
        let state = Rc::new(State::default());
        let fired = state.clone();
        let timer = lp.call_later(delay, move || {
            fired.fired.set(true);
            if let Some(waker) = fired.waker.take() {
                waker.wake();
            }
        })?;
        Ok(Sleep { state, timer })
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.fired.get() {
            return Poll::Ready(());
        }
        self.state.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.timer.cancel();
    }
}
