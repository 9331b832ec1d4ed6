//! `Condition`: wait for a notification while giving up a [`Lock`] (asyncio's
//! `asyncio.Condition`).
//!
//! The lock is held through a [`LockGuard`], so "the lock is held" is proven by the type rather
//! than checked at run time: `wait` takes the guard, gives up the lock, and returns a guard once
//! it has been notified and has taken the lock again; `notify` borrows a guard.
//!
//! Cancellation differs in one way a destructor forces: asyncio re-acquires the lock before a
//! cancelled `wait()` raises, but a future dropped at its await point cannot wait for anything,
//! so a dropped `wait` leaves the lock free (its guard was consumed with it). What it shares with
//! asyncio is the rule that no notification is lost: a waiter dropped after it was notified
//! passes the notification to the next waiter.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::sync::lock::{Acquire, Lock, LockGuard};
use crate::sync::wait_list::{Key, LoopBinding, WaitList, notify_n};

/// A condition variable over a [`Lock`] (asyncio's `Condition`).
///
/// A cheap handle: clones share one condition. `!Send`; bound to the loop it is first waited on.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use evloop::sync::Condition;
///
/// let seen = evloop::run(async {
///     let cond = Condition::new();
///     let items = Rc::new(Cell::new(0));
///     let consumer = evloop::create_task({
///         let (cond, items) = (cond.clone(), items.clone());
///         async move {
///             let guard = cond.acquire().await;
///             let _guard = cond.wait_for(guard, || items.get() >= 3).await;
///             items.get()
///         }
///     });
///     for _ in 0..3 {
///         let guard = cond.acquire().await;
///         items.set(items.get() + 1);
///         cond.notify(&guard, 1);
///         drop(guard);
///         evloop::yield_now().await;
///     }
///     consumer.await.unwrap()
/// });
/// assert_eq!(seen.unwrap(), 3);
/// ```
#[derive(Clone, Default)]
pub struct Condition {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    lock: Lock,
    waiters: RefCell<WaitList>,
    binding: LoopBinding,
}

impl Condition {
    /// A condition with a lock of its own.
    pub fn new() -> Condition {
        Condition::default()
    }

    /// A condition over `lock` (asyncio's `Condition(lock)`): several conditions may share one
    /// lock.
    pub fn with_lock(lock: &Lock) -> Condition {
        Condition {
            inner: Rc::new(Inner {
                lock: lock.clone(),
                waiters: RefCell::default(),
                binding: LoopBinding::default(),
            }),
        }
    }

    /// The underlying lock.
    pub fn lock(&self) -> &Lock {
        &self.inner.lock
    }

    /// Takes the underlying lock (asyncio's `async with cond:`).
    pub fn acquire(&self) -> Acquire<'_> {
        self.inner.lock.acquire()
    }

    /// Whether the underlying lock is held.
    pub fn locked(&self) -> bool {
        self.inner.lock.locked()
    }

    /// Gives up the lock, waits to be notified, takes the lock again and returns its guard.
    /// Like asyncio's, it may return without the awaited state having changed (another task
    /// can run first): check the state again, or use [`wait_for`](Condition::wait_for).
    ///
    /// # Panics
    ///
    /// If `guard` holds a lock other than this condition's.
    pub fn wait<'g>(&self, guard: LockGuard<'g>) -> ConditionWait<'_, 'g> {
        self.check_guard(&guard);
        ConditionWait {
            cond: self,
            lock: guard.lock(),
            state: WaitState::Start { _guard: guard },
            notified: false,
        }
    }

    /// Waits until `predicate` returns true, checking it first and after every notification
    /// (asyncio's `wait_for`). Returns the guard, with the lock held and the predicate true.
    ///
    /// # Panics
    ///
    /// If `guard` holds a lock other than this condition's.
    pub async fn wait_for<'g>(
        &self,
        mut guard: LockGuard<'g>,
        mut predicate: impl FnMut() -> bool,
    ) -> LockGuard<'g> {
        self.check_guard(&guard);
        while !predicate() {
            guard = self.wait(guard).await;
        }
        guard
    }

    /// Wakes up to `n` of the waiting tasks; each returns from `wait` once it has the lock,
    /// which the caller still holds.
    ///
    /// # Panics
    ///
    /// If `guard` holds a lock other than this condition's.
    pub fn notify(&self, guard: &LockGuard<'_>, n: usize) {
        self.check_guard(guard);
        notify_n(&self.inner.waiters, |list| list, n);
    }

    /// Wakes every waiting task.
    ///
    /// # Panics
    ///
    /// If `guard` holds a lock other than this condition's.
    pub fn notify_all(&self, guard: &LockGuard<'_>) {
        let waiting = self.inner.waiters.borrow().len();
        self.notify(guard, waiting);
    }

    fn check_guard(&self, guard: &LockGuard<'_>) {
        assert!(
            guard.lock().same_lock(&self.inner.lock),
            "the guard holds a lock other than this Condition's"
        );
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("locked", &self.locked())
            .field("waiters", &self.inner.waiters.borrow().len())
            .finish()
    }
}

enum WaitState<'g> {
    /// Not polled yet: the lock is still held (the guard is kept for its drop, which releases).
    Start {
        _guard: LockGuard<'g>,
    },
    /// The lock is given up; waiting for a notification.
    Waiting(Key),
    /// Notified; taking the lock again.
    Reacquire(Acquire<'g>),
    Done,
}

/// The future returned by [`Condition::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct ConditionWait<'c, 'g> {
    cond: &'c Condition,
    lock: &'g Lock,
    state: WaitState<'g>,
    /// A notification was taken: dropped before returning, this waiter passes it on.
    notified: bool,
}

impl<'g> Future for ConditionWait<'_, 'g> {
    type Output = LockGuard<'g>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LockGuard<'g>> {
        let this = &mut *self;
        let inner = &this.cond.inner;
        loop {
            match &mut this.state {
                WaitState::Start { .. } => {
                    inner.binding.check("Condition");
                    let key = inner.waiters.borrow_mut().push(cx.waker());
                    // Dropping the guard releases the lock and wakes its next waiter.
                    this.state = WaitState::Waiting(key);
                    return Poll::Pending;
                }
                WaitState::Waiting(key) => {
                    if !inner.waiters.borrow_mut().take_notified(*key, cx.waker()) {
                        return Poll::Pending;
                    }
                    this.notified = true;
                    this.state = WaitState::Reacquire(this.lock.acquire());
                }
                WaitState::Reacquire(acquire) => {
                    let guard = std::task::ready!(Pin::new(acquire).poll(cx));
                    this.notified = false;
                    this.state = WaitState::Done;
                    return Poll::Ready(guard);
                }
                WaitState::Done => panic!("ConditionWait polled after completion"),
            }
        }
    }
}

impl Drop for ConditionWait<'_, '_> {
    fn drop(&mut self) {
        // Dropping the state first: a pending re-acquire passes the lock on itself.
        let state = std::mem::replace(&mut self.state, WaitState::Done);
        let inner = &self.cond.inner;
        if let WaitState::Waiting(key) = state {
            self.notified = inner.waiters.borrow_mut().remove(key);
        } else {
            drop(state);
        }
        if self.notified {
            notify_n(&inner.waiters, |list| list, 1);
        }
    }
}

impl fmt::Debug for ConditionWait<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.state {
            WaitState::Start { .. } => "start",
            WaitState::Waiting(_) => "waiting",
            WaitState::Reacquire(_) => "reacquiring",
            WaitState::Done => "done",
        };
        f.debug_struct("ConditionWait")
            .field("phase", &phase)
            .finish()
    }
}
