//! `Semaphore` and `BoundedSemaphore`: a counter of permits tasks wait on (asyncio's).
//!
//! The bookkeeping is asyncio 3.13's: a release wakes the first waiter and takes its permit off
//! the count on its behalf; a woken waiter that is cancelled before it runs gives the permit back
//! and wakes the next; newcomers queue behind waiters even when permits are free (FIFO).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use evloop_reactor::{EventLoop, ExceptionContext};

use crate::sync::error::ValueError;
use crate::sync::wait_list::{Key, LoopBinding, WaitList};

/// A counter of permits (asyncio's `Semaphore`): `acquire` takes one, waiting while none is
/// free; dropping the [`SemaphorePermit`] (or calling [`release`](Semaphore::release)) gives
/// one back. Waiters are served in arrival order.
///
/// A cheap handle: clones share one semaphore. `!Send`; bound to the loop it is first waited on.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use evloop::sync::Semaphore;
///
/// let peak = evloop::run(async {
///     let sem = Semaphore::new(2);
///     let (inside, peak) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
///     let tasks: Vec<_> = (0..6)
///         .map(|_| {
///             let (sem, inside, peak) = (sem.clone(), inside.clone(), peak.clone());
///             evloop::create_task(async move {
///                 let _permit = sem.acquire().await;
///                 inside.set(inside.get() + 1);
///                 peak.set(peak.get().max(inside.get()));
///                 evloop::sleep(Duration::from_millis(1)).await;
///                 inside.set(inside.get() - 1);
///             })
///         })
///         .collect();
///     for task in tasks {
///         task.await.unwrap();
///     }
///     peak.get()
/// });
/// assert_eq!(peak.unwrap(), 2);
/// ```
#[derive(Clone)]
pub struct Semaphore {
    core: Rc<Core>,
}

/// A [`Semaphore`] whose count may not rise above its initial value (asyncio's
/// `BoundedSemaphore`): an extra [`release`](BoundedSemaphore::release) is an error,
/// "BoundedSemaphore released too many times".
///
/// ```
/// use evloop::sync::{BoundedSemaphore, ValueError};
///
/// evloop::run(async {
///     let sem = BoundedSemaphore::new(1);
///     sem.acquire().await.forget();
///     assert_eq!(sem.release(), Ok(()));
///     assert_eq!(sem.release(), Err(ValueError::ReleasedTooManyTimes));
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    core: Rc<Core>,
}

struct Core {
    state: RefCell<State>,
    /// The initial value, for a bounded semaphore.
    bound: Option<usize>,
    binding: LoopBinding,
}

struct State {
    value: usize,
    waiters: WaitList,
    /// Woken waiters that hold a permit taken for them but have not run yet.
    woken: usize,
}

impl Core {
    fn new(value: usize, bound: Option<usize>) -> Rc<Core> {
        Rc::new(Core {
            state: RefCell::new(State {
                value,
                waiters: WaitList::new(),
                woken: 0,
            }),
            bound,
            binding: LoopBinding::default(),
        })
    }

    /// asyncio's `locked()`: no permit, or someone queued (FIFO: newcomers wait their turn).
    fn locked(&self) -> bool {
        let state = self.state.borrow();
        state.value == 0 || !state.waiters.is_empty() || state.woken > 0
    }

    fn release(&self) -> Result<(), ValueError> {
        {
            let mut state = self.state.borrow_mut();
            if self.bound.is_some_and(|bound| state.value >= bound) {
                return Err(ValueError::ReleasedTooManyTimes);
            }
            state.value += 1;
        }
        self.wake_while_free(1);
        Ok(())
    }

    /// asyncio's `_wake_up_next` loop: wakes up to `limit` waiters while permits are free,
    /// taking a permit for each.
    fn wake_while_free(&self, limit: usize) {
        for _ in 0..limit {
            let waker = {
                let mut state = self.state.borrow_mut();
                if state.value == 0 {
                    return;
                }
                let Some(waker) = state.waiters.notify_first() else {
                    return;
                };
                state.value -= 1;
                state.woken += 1;
                waker
            };
            waker.wake();
        }
    }

    fn acquire(&self) -> SemaphoreAcquire<'_> {
        SemaphoreAcquire {
            core: self,
            key: None,
        }
    }

    fn fmt(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        f.debug_struct(name)
            .field("value", &state.value)
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

impl Semaphore {
    /// A semaphore with `value` permits.
    pub fn new(value: usize) -> Semaphore {
        Semaphore {
            core: Core::new(value, None),
        }
    }

    /// Whether `acquire` would wait: no permit is free, or other tasks are queued first.
    pub fn locked(&self) -> bool {
        self.core.locked()
    }

    /// Waits for a permit. Cancel-safe: a waiter dropped after it was given a permit gives it
    /// back and wakes the next waiter.
    pub fn acquire(&self) -> SemaphoreAcquire<'_> {
        self.core.acquire()
    }

    /// Adds a permit, waking the first waiter (asyncio's `release`, for a permit kept with
    /// [`SemaphorePermit::forget`] or never acquired).
    pub fn release(&self) {
        // Unbounded: cannot fail.
        let _ = self.core.release();
    }
}

impl BoundedSemaphore {
    /// A bounded semaphore with `value` permits, which is also its bound.
    pub fn new(value: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            core: Core::new(value, Some(value)),
        }
    }

    /// Whether `acquire` would wait: no permit is free, or other tasks are queued first.
    pub fn locked(&self) -> bool {
        self.core.locked()
    }

    /// Waits for a permit (see [`Semaphore::acquire`]).
    pub fn acquire(&self) -> SemaphoreAcquire<'_> {
        self.core.acquire()
    }

    /// Adds a permit back; an error, and no change, if the count is already at its bound.
    pub fn release(&self) -> Result<(), ValueError> {
        self.core.release()
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt("Semaphore", f)
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt("BoundedSemaphore", f)
    }
}

/// One permit of a [`Semaphore`] or [`BoundedSemaphore`], given back when dropped.
///
/// A bounded semaphore's permit dropped when the count is already at the bound (someone called
/// `release` for it too) gives nothing back and reports asyncio's ValueError through the loop's
/// exception handler, as an `async with` block's exit would raise it.
///
/// ```
/// use evloop::sync::Semaphore;
///
/// evloop::run(async {
///     let sem = Semaphore::new(1);
///     let permit = sem.acquire().await;
///     assert!(sem.locked());
///     drop(permit);
///     assert!(!sem.locked());
/// })
/// .unwrap();
/// ```
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    core: &'a Core,
}

impl SemaphorePermit<'_> {
    /// Keeps the permit taken: the count stays lower until someone calls `release`
    /// (asyncio's plain `acquire()` without `async with`).
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.core.release() {
            let context =
                ExceptionContext::new("Exception when dropping a BoundedSemaphore permit")
                    .with_exception(error);
            EventLoop::with_running(|lp| match lp {
                Some(lp) => lp.call_exception_handler(context),
                None => evloop_reactor::default_exception_handler(&context),
            });
        }
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}

/// The future returned by [`Semaphore::acquire`] and [`BoundedSemaphore::acquire`].
#[must_use = "futures do nothing unless awaited"]
pub struct SemaphoreAcquire<'a> {
    core: &'a Core,
    key: Option<Key>,
}

impl<'a> Future for SemaphoreAcquire<'a> {
    type Output = SemaphorePermit<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SemaphorePermit<'a>> {
        let core: &'a Core = self.core;
        let mut state = core.state.borrow_mut();
        match self.key {
            Some(key) => {
                if !state.waiters.take_notified(key, cx.waker()) {
                    return Poll::Pending;
                }
                // The permit was taken for us when we were woken.
                state.woken -= 1;
                drop(state);
                self.key = None;
                // asyncio's `finally`: newcomers queued behind us may fit now.
                core.wake_while_free(usize::MAX);
            }
            None if state.value > 0 && state.waiters.is_empty() && state.woken == 0 => {
                state.value -= 1;
            }
            None => {
                core.binding.check("Semaphore");
                let key = state.waiters.push(cx.waker());
                drop(state);
                self.key = Some(key);
                return Poll::Pending;
            }
        }
        Poll::Ready(SemaphorePermit { core })
    }
}

impl Drop for SemaphoreAcquire<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        {
            let mut state = self.core.state.borrow_mut();
            if state.waiters.remove(key) {
                // Woken with a permit we will not use: give it back.
                state.woken -= 1;
                state.value += 1;
            }
        }
        self.core.wake_while_free(usize::MAX);
    }
}

impl fmt::Debug for SemaphoreAcquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreAcquire")
            .field("waiting", &self.key.is_some())
            .finish()
    }
}
