//! Time on the loop: `sleep`, `yield_now`, and `timeout` / `wait_for`.
//!
//! A sleep is one loop timer whose callback wakes the sleeping task; dropping the sleep cancels
//! the timer (and drops the waker it held) at once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use evloop_reactor::{EventLoop, TimerHandle, get_running_loop};

use crate::error::{Cancelled, TimeoutError};
use crate::task::take_waiter;

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
/// (asyncio's `wait_for` / `timeout`). The future is dropped before the error is returned. A
/// `duration` too long for the clock (`Duration::MAX`) never expires (asyncio's `timeout(None)`).
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
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, TimeoutError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: never moved, only dropped in place by
        // assigning None; `sleep` and `zero` are Unpin.
        let this = unsafe { self.get_unchecked_mut() };
        let Some(future) = this.future.as_mut() else {
            panic!("Timeout polled after completion");
        };
        // SAFETY: as above.
        let future = unsafe { Pin::new_unchecked(future) };
        if let Poll::Ready(value) = future.poll(cx) {
            this.future = None;
            return Poll::Ready(Ok(value));
        }
        // asyncio's wait_for with timeout <= 0: done now, or timed out now.
        let expired = this.zero || Pin::new(&mut this.sleep).poll(cx).is_ready();
        if expired {
            // What the inner future is suspended on (an awaited task, a loop future, a gather)
            // is cancelled, as asyncio's timeout cancels the awaiting; then the inner future is
            // dropped (its destructors run) before the error is returned.
            if let Some(waiter) = take_waiter() {
                waiter.cancel(&Cancelled::new());
            }
            this.future = None;
            return Poll::Ready(Err(TimeoutError));
        }
        Poll::Pending
    }
}
