//! The loop's one timer future: a loop timer whose callback wakes whoever awaits it.
//!
//! Everything that waits for loop time is built on [`Timer`]: the facade's `sleep`, `timeout`
//! and `wait_for`, and the accept back-off here. The timer's state lives out of line, shared
//! with the timer callback, so the future itself is a pointer and a loop handle: awaiting a timer inflates the
//! awaiting future (and so a task's cell) by 24 bytes, not by a handle and a waker.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use evloop_callbacks::TimerHandle;

use crate::{EventLoop, LoopError};

/// What the timer callback and the future share.
struct State {
    fired: Cell<bool>,
    /// The waker of the last poll: the callback wakes whichever task awaits the timer now, so a
    /// timer moved to another task is never re-armed.
    waker: Cell<Option<Waker>>,
    /// Taken (and cancelled) once the future is done or dropped.
    handle: Cell<Option<TimerHandle>>,
    deadline: Instant,
}

/// A future that resolves once `lp`'s clock reaches a deadline; dropping it cancels the timer
/// (its callback, and the waker it would wake, are dropped at once).
///
/// Never early: it resolves when the timer fires, or when polled at or after the deadline in loop
/// time (a timer due in this iteration counts, as asyncio's `sleep` sees `loop.time()`).
///
/// ```
/// use evloop_reactor::{EventLoop, Timer};
/// use std::time::Duration;
///
/// let lp = EventLoop::builder().virtual_clock(true).build()?;
/// let timer = Timer::at(&lp, lp.time() + Duration::from_secs(5))?;
/// let deadline = timer.deadline();
/// lp.run_until_complete(timer)?;
/// assert!(lp.time() >= deadline);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Timer {
    state: Rc<State>,
    lp: EventLoop,
}

impl Timer {
    /// A timer on `lp` for loop time `deadline` (a past deadline is due at once).
    ///
    /// # Errors
    ///
    /// [`LoopError::Closed`] if the loop is closed.
    pub fn at(lp: &EventLoop, deadline: Instant) -> Result<Timer, LoopError> {
        let state = Rc::new(State {
            fired: Cell::new(false),
            waker: Cell::new(None),
            handle: Cell::new(None),
            deadline,
        });
        let fired = state.clone();
        let handle = lp.call_at(deadline, move || {
            fired.fired.set(true);
            if let Some(waker) = fired.waker.take() {
                waker.wake();
            }
        })?;
        state.handle.set(Some(handle));
        Ok(Timer {
            state,
            lp: lp.clone(),
        })
    }

    /// The loop time at which the timer resolves.
    pub fn deadline(&self) -> Instant {
        self.state.deadline
    }

    fn disarm(&self) {
        if let Some(handle) = self.state.handle.take() {
            handle.cancel();
        }
        drop(self.state.waker.take());
    }
}

impl Future for Timer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.fired.get() || self.lp.time() >= self.state.deadline {
            self.disarm();
            return Poll::Ready(());
        }
        let waker = match self.state.waker.take() {
            Some(waker) if waker.will_wake(cx.waker()) => waker,
            _ => cx.waker().clone(),
        };
        self.state.waker.set(Some(waker));
        Poll::Pending
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.disarm();
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("deadline", &self.state.deadline)
            .field("fired", &self.state.fired.get())
            .finish()
    }
}
