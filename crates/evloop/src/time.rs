//! Time on the loop: `sleep`, `yield_now`, and `timeout` / `wait_for`.
//!
//! A sleep is the reactor's [`Timer`] (the one timer future), bound to the running loop when
//! first polled; dropping the sleep cancels the timer (and drops the waker it held) at once.
//! `sleep(Duration::ZERO)` is no timer at all: it is a bare yield, as asyncio's `sleep(0)` is,
//! and cancellable like any await point.

use std::cell::RefCell;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use evloop_reactor::{EventLoop, Timer};

use crate::error::{Cancelled, TimeoutError};
use crate::task::{Recorded, Waiter, peek_waiter};

/// Waits for `duration` on the running loop (asyncio's `sleep`).
///
/// `sleep(Duration::ZERO)` gives up exactly one loop iteration, so two tasks doing it interleave;
/// it sets no timer. A duration too long for the clock (`Duration::MAX`) never ends, as asyncio's
/// `sleep(inf)`.
///
/// # Panics
///
/// When first polled outside a running loop, naming the line that called `sleep` and saying to
/// run it inside `evloop::run`. (A sleep may be created before the loop starts, as in
/// `evloop::run(evloop::sleep(d))`: like an asyncio coroutine, it is bound to the loop that first
/// runs it.)
///
/// ```
/// use std::time::Duration;
/// evloop::run(async {
///     evloop::sleep(Duration::from_millis(5)).await;
/// })
/// .unwrap();
/// ```
#[track_caller]
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        state: if duration.is_zero() {
            SleepState::Yield { yielded: false }
        } else {
            SleepState::After {
                duration,
                called_at: Location::caller(),
            }
        },
    }
}

/// Waits until loop time `deadline` (asyncio's `call_at` as a future).
///
/// # Panics
///
/// When first polled outside a running loop, as [`sleep`].
///
/// ```
/// evloop::run(async {
///     let lp = evloop::get_running_loop().unwrap();
///     evloop::sleep_until(lp.time() + std::time::Duration::from_millis(1)).await;
/// })
/// .unwrap();
/// ```
#[track_caller]
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        state: SleepState::Until {
            deadline,
            called_at: Location::caller(),
        },
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
    /// Not polled yet: the loop (and so the deadline) is the one that first polls it.
    After {
        duration: Duration,
        called_at: &'static Location<'static>,
    },
    Until {
        deadline: Instant,
        called_at: &'static Location<'static>,
    },
    /// `sleep(ZERO)`: one yield, no timer.
    Yield {
        yielded: bool,
    },
    Timer(Timer),
    /// A deadline past what an `Instant` can hold (asyncio's `sleep(inf)`), or a closed loop,
    /// which never fires (the task is dropped with it).
    Never,
    Done,
}

/// The future returned by [`sleep`] and [`sleep_until`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    state: SleepState,
}

impl Sleep {
    /// The loop time at which the sleep ends, once it has started.
    ///
    /// ```
    /// evloop::run(async {
    ///     let lp = evloop::get_running_loop().unwrap();
    ///     let at = lp.time() + std::time::Duration::from_millis(1);
    ///     assert_eq!(evloop::sleep_until(at).deadline(), Some(at));
    ///     assert_eq!(evloop::sleep(std::time::Duration::ZERO).deadline(), None);
    /// })
    /// .unwrap();
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            SleepState::Until { deadline, .. } => Some(*deadline),
            SleepState::Timer(timer) => Some(timer.deadline()),
            _ => None,
        }
    }
}

/// The running loop, or a panic that names the line that created the sleep.
fn loop_for(called_at: &'static Location<'static>) -> EventLoop {
    match evloop_reactor::get_running_loop() {
        Ok(lp) => lp,
        Err(_) => no_running_loop(called_at),
    }
}

#[cold]
#[inline(never)]
fn no_running_loop(called_at: &'static Location<'static>) -> ! {
    panic!(
        "sleep() called at {called_at} was awaited outside a running event loop (no running \
         event loop): run it inside evloop::run (or Runner::run / run_until_complete)"
    )
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                SleepState::After {
                    duration,
                    called_at,
                } => {
                    let lp = loop_for(called_at);
                    this.state = match lp.time().checked_add(*duration) {
                        Some(deadline) => arm(&lp, deadline),
                        None => SleepState::Never,
                    };
                }
                SleepState::Until {
                    deadline,
                    called_at,
                } => {
                    let lp = loop_for(called_at);
                    this.state = arm(&lp, *deadline);
                }
                SleepState::Yield { yielded } => {
                    if *yielded {
                        this.state = SleepState::Done;
                        return Poll::Ready(());
                    }
                    *yielded = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                SleepState::Timer(timer) => {
                    if Pin::new(timer).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.state = SleepState::Done;
                    return Poll::Ready(());
                }
                SleepState::Never => return Poll::Pending,
                SleepState::Done => return Poll::Ready(()),
            }
        }
    }
}

fn arm(lp: &EventLoop, deadline: Instant) -> SleepState {
    match Timer::at(lp, deadline) {
        Ok(timer) => SleepState::Timer(timer),
        Err(_) => SleepState::Never,
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
#[track_caller]
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
#[track_caller]
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
