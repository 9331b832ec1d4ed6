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
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::{Context, Waker};
/// use std::time::Duration;
///
/// let lp = EventLoop::builder().virtual_clock(true).build()?;
/// let mut timer = pin!(Timer::at(&lp, lp.time() + Duration::from_secs(5))?);
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(timer.as_mut().poll(&mut cx).is_pending());
/// lp.advance_clock(Duration::from_secs(5));
/// lp.run_once()?; // the timer fires
/// assert!(timer.as_mut().poll(&mut cx).is_ready());
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use evloop_test_support::counting_waker;

    /// One iteration that does not park (a parked virtual clock would jump to the timer).
    fn iterate(lp: &EventLoop) {
        lp.call_soon(|| ()).unwrap();
        lp.run_once().unwrap();
    }

    #[test]
    fn the_timer_wakes_the_waker_of_the_last_poll_and_only_when_due() {
        let lp = EventLoop::builder().virtual_clock(true).build().unwrap();
        let mut timer = std::pin::pin!(Timer::at(&lp, lp.time() + Duration::from_secs(5)).unwrap());
        let (first, first_waker) = counting_waker();
        let (second, second_waker) = counting_waker();
        assert!(
            timer
                .as_mut()
                .poll(&mut Context::from_waker(&first_waker))
                .is_pending()
        );
        assert!(
            timer
                .as_mut()
                .poll(&mut Context::from_waker(&second_waker))
                .is_pending()
        );
        lp.advance_clock(Duration::from_millis(4_999));
        iterate(&lp);
        assert_eq!(second.get(), 0, "never early");
        lp.advance_clock(Duration::from_millis(1));
        iterate(&lp);
        assert_eq!(first.get(), 0);
        assert_eq!(second.get(), 1);
        assert!(
            timer
                .as_mut()
                .poll(&mut Context::from_waker(&second_waker))
                .is_ready()
        );
    }

    #[test]
    fn dropping_a_timer_cancels_it_and_releases_the_waker_at_once() {
        let lp = EventLoop::builder().virtual_clock(true).build().unwrap();
        let mut timer = Box::pin(Timer::at(&lp, lp.time() + Duration::from_secs(5)).unwrap());
        let (count, waker) = counting_waker();
        assert!(
            timer
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        drop(waker);
        assert_eq!(Arc::strong_count(&count), 2, "the timer holds the waker");
        drop(timer);
        assert_eq!(Arc::strong_count(&count), 1, "dropped with the timer");
        lp.advance_clock(Duration::from_secs(5));
        iterate(&lp);
        assert_eq!(count.get(), 0, "a cancelled timer never fires");
    }
}
