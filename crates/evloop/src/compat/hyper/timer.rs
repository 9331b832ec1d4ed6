//! hyper's `Timer` on the loop's clock. hyper wants `Send + Sync` sleeps (it may move them to
//! other threads), while a loop timer ([`TimerHandle`]) belongs to its loop's thread. So a
//! [`LoopSleep`] holds only an `Arc` of its state and the loop's [`RemoteHandle`]; the timer
//! handle itself stays on the loop thread, in a per-loop table keyed by the sleep's id, from
//! where a dropped sleep cancels it (directly on the loop thread, through `call_soon_threadsafe`
//! from any other).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use evloop_reactor::{EventLoop, LoopError, RemoteHandle, TimerHandle};

/// hyper's `Timer` for a loop: sleeps run on that loop's clock (its virtual clock too).
///
/// ```
/// use std::time::Duration;
/// use evloop::compat::hyper::LoopTimer;
/// use hyper::rt::Timer;
///
/// let lp = evloop::EventLoop::builder().virtual_clock(true).build().unwrap();
/// let timer = LoopTimer::for_loop(&lp);
/// let start = lp.time();
/// evloop::LoopExt::run_until_complete(&lp, async move {
///     timer.sleep(Duration::from_secs(30)).await;
/// })
/// .unwrap();
/// assert!(lp.time() - start >= Duration::from_secs(30));
/// ```
#[derive(Debug, Clone)]
pub struct LoopTimer {
    remote: RemoteHandle,
}

impl LoopTimer {
    /// A timer on the running loop; "no running event loop" outside one.
    pub fn new() -> Result<LoopTimer, LoopError> {
        crate::get_running_loop().map(|lp| LoopTimer::for_loop(&lp))
    }

    /// A timer on `lp`.
    pub fn for_loop(lp: &EventLoop) -> LoopTimer {
        LoopTimer {
            remote: lp.remote(),
        }
    }
}

impl hyper::rt::Timer for LoopTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(LoopSleep::new(&self.remote, duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep(deadline.saturating_duration_since(Instant::now()))
    }
}

/// One sleep of a [`LoopTimer`]: completes when its loop timer fires; dropping it cancels the
/// timer. On a closed loop, or when its loop closes first, it completes at once: no loop is left
/// to wait on, and a sleep that never ended would hang whoever awaits it (on another thread).
#[derive(Debug)]
pub struct LoopSleep {
    shared: Arc<SleepCell>,
    remote: RemoteHandle,
}

#[derive(Debug)]
struct SleepCell {
    id: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    fired: bool,
    dropped: bool,
    waker: Option<Waker>,
}

impl SleepCell {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is plain flags: a panic elsewhere while it was held leaves it consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fire(&self) {
        let waker = {
            let mut state = self.state();
            state.fired = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The loop-thread half: the timer handles of the loop's pending sleeps, and their states so
/// that closing the loop completes them.
#[derive(Default)]
struct PendingSleeps {
    timers: RefCell<HashMap<u64, (TimerHandle, Arc<SleepCell>)>>,
    hooked: Cell<bool>,
}

impl PendingSleeps {
    fn of(lp: &EventLoop) -> Rc<PendingSleeps> {
        let pending = lp.extension::<PendingSleeps>();
        if !pending.hooked.replace(true) {
            let on_close = pending.clone();
            lp.on_close(move || {
                for (_, (_, shared)) in on_close.timers.take() {
                    shared.fire();
                }
            });
        }
        pending
    }

    fn remove(&self, id: u64) -> Option<TimerHandle> {
        self.timers.borrow_mut().remove(&id).map(|(timer, _)| timer)
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl LoopSleep {
    fn new(remote: &RemoteHandle, duration: Duration) -> LoopSleep {
        let shared = Arc::new(SleepCell {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(State::default()),
        });
        let scheduled = shared.clone();
        let on_loop = on_loop_thread(remote, |lp| schedule(lp, &scheduled, duration));
        if on_loop.is_none() {
            let sent = remote.call_soon_threadsafe(move || {
                EventLoop::with_running(|lp| match lp {
                    Some(lp) => schedule(lp, &scheduled, duration),
                    None => scheduled.fire(),
                });
            });
            if sent.is_err() {
                shared.fire();
            }
        }
        LoopSleep {
            shared,
            remote: remote.clone(),
        }
    }
}

/// Runs `f` with the loop if this is its thread and it is running there.
fn on_loop_thread<R>(remote: &RemoteHandle, f: impl FnOnce(&EventLoop) -> R) -> Option<R> {
    if EventLoop::running_id() != remote.loop_id() {
        return None;
    }
    EventLoop::with_running(|lp| lp.map(f))
}

fn schedule(lp: &EventLoop, shared: &Arc<SleepCell>, duration: Duration) {
    if shared.state().dropped {
        return;
    }
    let fired = shared.clone();
    let timer = lp.call_later(duration, move || {
        EventLoop::with_running(|lp| {
            if let Some(lp) = lp {
                PendingSleeps::of(lp).remove(fired.id);
            }
        });
        fired.fire();
    });
    match timer {
        Ok(timer) => {
            PendingSleeps::of(lp)
                .timers
                .borrow_mut()
                .insert(shared.id, (timer, shared.clone()));
        }
        Err(_) => shared.fire(),
    }
}

fn cancel(lp: &EventLoop, id: u64) {
    if let Some(timer) = PendingSleeps::of(lp).remove(id) {
        timer.cancel();
    }
}

impl Future for LoopSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.shared.state();
        if state.fired {
            return Poll::Ready(());
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl hyper::rt::Sleep for LoopSleep {}

impl Drop for LoopSleep {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state();
            if state.fired {
                return;
            }
            state.dropped = true;
            state.waker = None;
        }
        let id = self.shared.id;
        if on_loop_thread(&self.remote, |lp| cancel(lp, id)).is_none() {
            // A closed loop has dropped its timers already.
            let _ = self.remote.call_soon_threadsafe(move || {
                EventLoop::with_running(|lp| {
                    if let Some(lp) = lp {
                        cancel(lp, id);
                    }
                });
            });
        }
    }
}
