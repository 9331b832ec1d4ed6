//! `Lock`: mutual exclusion between tasks, FIFO fair (asyncio's `asyncio.Lock`).
//!
//! As in asyncio, `release` does not hand the lock over: it marks it free and wakes the first
//! waiter, which takes it when it runs. Until then no newcomer may jump the queue, and if that
//! waiter is cancelled first (its future dropped), it wakes the next one. So the lock always
//! goes to the longest waiter, and a cancelled waiter never strands it.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::sync::wait_list::{Key, LoopBinding, WaitList};

/// A lock that tasks take in turn (asyncio's `Lock`). `acquire().await` gives a [`LockGuard`];
/// dropping the guard releases the lock (asyncio's `async with lock:`).
///
/// Waiters get the lock in the order they asked for it. A cheap handle: clones share one lock.
/// `!Send`; bound to the loop it is first waited on.
///
/// ```
/// use std::time::Duration;
/// use evloop::sync::Lock;
///
/// let log = evloop::run(async {
///     let lock = Lock::new();
///     let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
///     let tasks: Vec<_> = (0..3)
///         .map(|n| {
///             let (lock, log) = (lock.clone(), log.clone());
///             evloop::create_task(async move {
///                 let _guard = lock.acquire().await;
///                 log.borrow_mut().push(format!("{n} in"));
///                 evloop::sleep(Duration::from_millis(1)).await;
///                 log.borrow_mut().push(format!("{n} out"));
///             })
///         })
///         .collect();
///     for task in tasks {
///         task.await.unwrap();
///     }
///     assert!(!lock.locked());
///     log.take()
/// });
/// assert_eq!(log.unwrap(), ["0 in", "0 out", "1 in", "1 out", "2 in", "2 out"]);
/// ```
#[derive(Clone, Default)]
pub struct Lock {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: RefCell<State>,
    binding: LoopBinding,
}

#[derive(Default)]
struct State {
    locked: bool,
    /// A waiter has been woken to take the lock and has not yet taken it or passed it on.
    handing_over: bool,
    waiters: WaitList,
}

impl State {
    /// asyncio's `_wake_up_first`: wakes the first waiter unless one is already on its way.
    #[inline]
    fn wake_first(&mut self) -> Option<std::task::Waker> {
        if self.handing_over || self.waiters.is_empty() {
            return None;
        }
        let waker = self.waiters.notify_first()?;
        self.handing_over = true;
        Some(waker)
    }
}

impl Lock {
    /// A new, unlocked lock.
    pub fn new() -> Lock {
        Lock::default()
    }

    /// Whether the lock is held. False while a woken waiter is on its way to take it, as in
    /// asyncio.
    pub fn locked(&self) -> bool {
        self.inner.state.borrow().locked
    }

    /// Waits for the lock, then holds it until the guard is dropped.
    ///
    /// Cancel-safe: dropped while waiting, the future leaves the queue, and if it had been
    /// woken to take the lock it wakes the next waiter instead.
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire {
            lock: self,
            key: None,
        }
    }

    pub(crate) fn same_lock(&self, other: &Lock) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    #[inline]
    fn release(&self) {
        let waker = {
            let mut state = self.inner.state.borrow_mut();
            debug_assert!(state.locked, "a guard exists only while the lock is held");
            state.locked = false;
            state.wake_first()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.borrow();
        f.debug_struct("Lock")
            .field("locked", &state.locked)
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

/// Holds a [`Lock`]; dropping it releases the lock and wakes the next waiter.
///
/// ```
/// use evloop::sync::Lock;
///
/// evloop::run(async {
///     let lock = Lock::new();
///     let guard = lock.acquire().await;
///     assert!(lock.locked() && guard.lock().locked());
///     drop(guard);
///     assert!(!lock.locked());
/// })
/// .unwrap();
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl<'a> LockGuard<'a> {
    /// The lock this guard holds.
    pub fn lock(&self) -> &'a Lock {
        self.lock
    }
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.lock.release();
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

/// The future returned by [`Lock::acquire`].
#[must_use = "futures do nothing unless awaited"]
pub struct Acquire<'a> {
    lock: &'a Lock,
    key: Option<Key>,
}

impl<'a> Future for Acquire<'a> {
    type Output = LockGuard<'a>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LockGuard<'a>> {
        let lock = self.lock;
        let mut state = lock.inner.state.borrow_mut();
        match self.key {
            Some(key) => {
                if !state.waiters.take_notified(key, cx.waker()) {
                    return Poll::Pending;
                }
                debug_assert!(state.handing_over && !state.locked);
                state.handing_over = false;
                state.locked = true;
                drop(state);
                self.key = None;
            }
            // asyncio's fast path: free, and nobody queued or on the way.
            None if !state.locked && !state.handing_over && state.waiters.is_empty() => {
                state.locked = true;
            }
            None => {
                lock.inner.binding.check("Lock");
                let key = state.waiters.push(cx.waker());
                drop(state);
                self.key = Some(key);
                return Poll::Pending;
            }
        }
        Poll::Ready(LockGuard { lock })
    }
}

impl Drop for Acquire<'_> {
    #[inline]
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let waker = {
            let mut state = self.lock.inner.state.borrow_mut();
            if state.waiters.remove(key) {
                // Woken to take the lock, but gone: the hand-over is void.
                state.handing_over = false;
            }
            // asyncio's invariant: a free lock with waiters always has one on its way.
            if state.locked {
                None
            } else {
                state.wake_first()
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("waiting", &self.key.is_some())
            .finish()
    }
}
