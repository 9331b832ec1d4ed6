//! Time on the loop: `sleep`, `yield_now`, and `timeout` / `wait_for`.
//!
//! A sleep is one loop timer whose callback wakes the sleeping task; dropping the sleep cancels
//! the timer (and drops the waker it held) at once.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use evloop_reactor::{EventLoop, TimerHandle, get_running_loop};

use crate::error::{Cancelled, TimeoutError};
use crate::task::{Recorded, Waiter, peek_waiter};

/// Waits for `duration` on the running loop (asyncio's `sleep`).
///
/// `sleep(Duration::ZERO)` gives up exactly one loop iteration, so two tasks doing it interleave;
/// a duration too long for the clock (`Duration::MAX`) never ends, as asyncio's `sleep(inf)`.
///
/// # Panics
///
/// When first polled outside a running loop ("no running event loop").
///
/// ```
/// use std::time::Duration;
/// evloop::run(async {
///     evloop::sleep(Duration::from_millis(5)).await;
/// })
/// .unwrap();
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        duration,
        state: SleepState::Unstarted,
    }
}

/// Waits until loop time `deadline` (asyncio's `call_at` as a future).
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        duration: Duration::ZERO,
        state: SleepState::Until(deadline),
    }
}

/// Gives up one loop iteration: every other ready callback and task runs before this one resumes.
///
/// ```
/// evloop::run(async { evloop::yield_now().await }).unwrap();
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[derive(Debug)]
enum SleepState {
    Unstarted,
    Until(Instant),
    Zero {
        yielded: bool,
    },
    Waiting {
        deadline: Instant,
        lp: EventLoop,
        timer: Option<(TimerHandle, Waker)>,
    },
    /// A deadline past what an `Instant` can hold: asyncio's `sleep(inf)`, which never ends.
    Never,
    Done,
}

/// The future returned by [`sleep`] and [`sleep_until`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    duration: Duration,
    state: SleepState,
}

impl Sleep {
    /// The loop time at which the sleep ends, once it has started.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            SleepState::Until(deadline) | SleepState::Waiting { deadline, .. } => Some(*deadline),
            _ => None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                SleepState::Unstarted => {
                    if this.duration.is_zero() {
                        this.state = SleepState::Zero { yielded: false };
                        continue;
                    }
                    let lp = get_running_loop().unwrap_or_else(|e| panic!("{e}"));
                    this.state = match lp.time().checked_add(this.duration) {
                        Some(deadline) => SleepState::Waiting {
                            deadline,
                            lp,
                            timer: None,
                        },
                        None => SleepState::Never,
                    };
                }
                SleepState::Until(deadline) => {
                    let lp = get_running_loop().unwrap_or_else(|e| panic!("{e}"));
                    let deadline = *deadline;
                    this.state = SleepState::Waiting {
                        deadline,
                        lp,
                        timer: None,
                    };
                }
                SleepState::Zero { yielded } => {
                    if *yielded {
                        this.state = SleepState::Done;
                        return Poll::Ready(());
                    }
                    *yielded = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                SleepState::Waiting {
                    deadline,
                    lp,
                    timer,
                } => {
                    if lp.time() >= *deadline {
                        if let Some((timer, _)) = timer.take() {
                            timer.cancel();
                        }
                        this.state = SleepState::Done;
                        return Poll::Ready(());
                    }
                    let current = timer.as_ref().map(|(_, waker)| waker);
                    if !current.is_some_and(|waker| waker.will_wake(cx.waker())) {
                        if let Some((old, _)) = timer.take() {
                            old.cancel();
                        }
                        let waker = cx.waker().clone();
                        let wake = waker.clone();
                        match lp.call_at(*deadline, move || wake.wake()) {
                            Ok(handle) => *timer = Some((handle, waker)),
                            // A closed loop never fires: the task is dropped with it.
                            Err(_) => return Poll::Pending,
                        }
                    }
                    return Poll::Pending;
                }
                SleepState::Never => return Poll::Pending,
                SleepState::Done => return Poll::Ready(()),
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let SleepState::Waiting {
            timer: Some((timer, _)),
            ..
        } = &self.state
        {
            timer.cancel();
        }
    }
}

/// Runs `future` with a deadline: `Err(TimeoutError)` if it has not finished within `duration`
/// (asyncio's `wait_for` / `timeout`). The future is dropped before the error is returned; if it
/// was waiting on a task, a gather or a loop future, that is cancelled first and the error comes
/// once it has finished cancelling, as asyncio's does. A `duration` too long for the clock
/// (`Duration::MAX`) never expires (asyncio's `timeout(None)`).
///
/// ```
/// use std::time::Duration;
/// use evloop::{TimeoutError, sleep, timeout};
///
/// let outcome = evloop::run(async {
///     timeout(Duration::from_millis(10), sleep(Duration::from_secs(3600))).await
/// });
/// assert_eq!(outcome.unwrap(), Err(TimeoutError));
/// ```
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future: Some(future),
        sleep: sleep(duration),
        zero: duration.is_zero(),
        waiter: None,
        expiring: None,
    }
}

/// asyncio's name for [`timeout`].
pub fn wait_for<F: Future>(future: F, duration: Duration) -> Timeout<F> {
    timeout(duration, future)
}

/// The future returned by [`timeout`] and [`wait_for`].
#[must_use = "futures do nothing unless awaited"]
pub struct Timeout<F> {
    future: Option<F>,
    sleep: Sleep,
    zero: bool,
    /// What the inner future was suspended on after its last poll, when that was one of
    /// evloop's awaitables: what expiry cancels.
    waiter: Option<Waiter>,
    /// Expired: the cancelled waiter, not done yet, and the waker its end wakes.
    expiring: Option<(Waiter, Rc<RefCell<Waker>>)>,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, TimeoutError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: never moved, only dropped in place by
        // assigning None; the other fields are never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some((waiter, waker)) = &this.expiring {
            if waiter.is_done() {
                this.expiring = None;
                return Poll::Ready(Err(TimeoutError));
            }
            waker.borrow_mut().clone_from(cx.waker());
            return Poll::Pending;
        }
        // Once the clock runs, an expired deadline wins over a block that became ready in the
        // same iteration (asyncio cancels the task before its step), and the outermost of nested
        // timeouts that expired together is the one that fails. (Before the first poll nothing
        // can have expired, and a block that is ready at once never starts the timer.)
        let started = this.sleep.deadline().is_some();
        if started && Pin::new(&mut this.sleep).poll(cx).is_ready() {
            return this.expire(cx);
        }
        let Some(future) = this.future.as_mut() else {
            panic!("Timeout polled after completion");
        };
        // SAFETY: as above.
        let future = unsafe { Pin::new_unchecked(future) };
        // Only what the block itself registers is its waiter: one recorded before it by a
        // sibling future of the same task (a foreign select) is none of this timeout's business.
        let sibling_first = !matches!(peek_waiter(), Recorded::Nothing);
        if let Poll::Ready(value) = future.poll(cx) {
            this.future = None;
            return Poll::Ready(Ok(value));
        }
        this.waiter = match (sibling_first, peek_waiter()) {
            (false, Recorded::One(waiter)) => Some(waiter),
            _ => None,
        };
        // asyncio's wait_for with timeout <= 0: done now, or timed out now.
        if this.zero {
            return this.expire(cx);
        }
        if !started && Pin::new(&mut this.sleep).poll(cx).is_ready() {
            return this.expire(cx);
        }
        Poll::Pending
    }
}

impl<F> Timeout<F> {
    /// The deadline passed: cancel what the block waits on (asyncio's timeout cancels the
    /// awaiting), drop the block (its destructors run), and fail once that awaitable has ended.
    fn expire(&mut self, cx: &Context<'_>) -> Poll<Result<F::Output, TimeoutError>>
    where
        F: Future,
    {
        let waiter = self.waiter.take();
        if let Some(waiter) = &waiter {
            waiter.cancel(&Cancelled::new());
        }
        self.future = None;
        match waiter {
            Some(waiter) if !waiter.is_done() => {
                let waker = Rc::new(RefCell::new(cx.waker().clone()));
                let wake = waker.clone();
                waiter.on_done(Rc::new(move || wake.borrow().wake_by_ref()));
                self.expiring = Some((waiter, waker));
                Poll::Pending
            }
            _ => Poll::Ready(Err(TimeoutError)),
        }
    }
}
