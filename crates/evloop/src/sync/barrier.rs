//! `Barrier`: a meeting point for a fixed number of tasks (asyncio's `asyncio.Barrier`).
//!
//! The state machine is asyncio's: filling until `parties` tasks arrived, then draining while
//! they leave (newcomers wait for the next round), resetting while a reset's waiters leave,
//! broken after `abort`. Every change wakes every waiter, which re-checks the state when it runs,
//! as asyncio's `Condition.wait_for` does; so an abort that lands before a released waiter has
//! run still breaks that waiter, exactly as in asyncio.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::sync::error::{BrokenBarrierError, ValueError};
use crate::sync::wait_list::{Key, LoopBinding, WaitList, notify_n};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Filling,
    Draining,
    Resetting,
    Broken,
}

/// Lets `parties` tasks wait for each other (asyncio's `Barrier`): each `wait` returns once
/// `parties` tasks are waiting, with the task's arrival index (0 to `parties - 1`).
///
/// A cheap handle: clones share one barrier. `!Send`; bound to the loop it is first waited on.
/// `reset` and `abort` are plain methods: asyncio's are coroutines only because they take the
/// barrier's internal lock.
///
/// ```
/// use evloop::sync::Barrier;
///
/// let indices = evloop::run(async {
///     let barrier = Barrier::new(3).unwrap();
///     let tasks: Vec<_> = (0..3)
///         .map(|_| {
///             let barrier = barrier.clone();
///             evloop::create_task(async move { barrier.wait().await })
///         })
///         .collect();
///     let mut indices = Vec::new();
///     for task in tasks {
///         indices.push(task.await.unwrap().unwrap());
///     }
///     indices
/// });
/// assert_eq!(indices.unwrap(), [0, 1, 2]);
/// ```
#[derive(Clone)]
pub struct Barrier {
    inner: Rc<Inner>,
}

struct Inner {
    parties: usize,
    state: RefCell<State>,
    binding: LoopBinding,
}

struct State {
    phase: Phase,
    /// Tasks inside `wait` past the entry check (asyncio's `_count`).
    count: usize,
    waiters: WaitList,
}

impl Barrier {
    /// A barrier for `parties` tasks; asyncio's ValueError "parties must be > 0" for zero.
    pub fn new(parties: usize) -> Result<Barrier, ValueError> {
        if parties == 0 {
            return Err(ValueError::NoParties);
        }
        Ok(Barrier {
            inner: Rc::new(Inner {
                parties,
                state: RefCell::new(State {
                    phase: Phase::Filling,
                    count: 0,
                    waiters: WaitList::new(),
                }),
                binding: LoopBinding::default(),
            }),
        })
    }

    /// Waits until `parties` tasks are waiting, and returns this task's arrival index; or
    /// [`BrokenBarrierError`] if the barrier is or becomes broken, or is reset meanwhile.
    pub fn wait(&self) -> BarrierWait<'_> {
        BarrierWait {
            barrier: self,
            step: Step::Entering(None),
        }
    }

    /// Puts the barrier back to its empty state. Tasks waiting in it get
    /// [`BrokenBarrierError::Interrupted`]; the barrier takes new arrivals once they have left.
    pub fn reset(&self) {
        {
            let mut state = self.inner.state.borrow_mut();
            state.phase = if state.count > 0 {
                Phase::Resetting
            } else {
                Phase::Filling
            };
        }
        self.wake_all();
    }

    /// Breaks the barrier: waiting and future `wait`s fail with [`BrokenBarrierError`].
    pub fn abort(&self) {
        self.inner.state.borrow_mut().phase = Phase::Broken;
        self.wake_all();
    }

    /// How many tasks must arrive to trip the barrier.
    pub fn parties(&self) -> usize {
        self.inner.parties
    }

    /// How many tasks are waiting for it to trip (0 while draining or resetting).
    pub fn n_waiting(&self) -> usize {
        let state = self.inner.state.borrow();
        if state.phase == Phase::Filling {
            state.count
        } else {
            0
        }
    }

    /// Whether the barrier is broken (aborted).
    pub fn broken(&self) -> bool {
        self.inner.state.borrow().phase == Phase::Broken
    }

    fn wake_all(&self) {
        let waiting = self.inner.state.borrow().waiters.len();
        notify_n(&self.inner.state, |s| &mut s.waiters, waiting);
    }

    /// A task leaves `wait` (asyncio's `finally: _count -= 1; _exit()`): the last one out ends
    /// a drain or a reset.
    fn leave(&self) {
        {
            let mut state = self.inner.state.borrow_mut();
            state.count -= 1;
            if state.count > 0 {
                return;
            }
            if matches!(state.phase, Phase::Draining | Phase::Resetting) {
                state.phase = Phase::Filling;
            }
        }
        self.wake_all();
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.borrow();
        f.debug_struct("Barrier")
            .field("parties", &self.inner.parties)
            .field("phase", &state.phase)
            .field("n_waiting", &self.n_waiting())
            .finish()
    }
}

#[derive(Debug)]
enum Step {
    /// Waiting (if keyed) for a drain or reset to end before entering.
    Entering(Option<Key>),
    /// Counted in, arrival `index`; waiting for the barrier to trip.
    Arrived {
        index: usize,
        key: Key,
    },
    Done,
}

/// The future returned by [`Barrier::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct BarrierWait<'a> {
    barrier: &'a Barrier,
    step: Step,
}

impl Future for BarrierWait<'_> {
    type Output = Result<usize, BrokenBarrierError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let barrier = self.barrier;
        let inner = &barrier.inner;
        let mut state = inner.state.borrow_mut();
        match self.step {
            Step::Entering(key) => {
                if let Some(key) = key {
                    if !state.waiters.take_notified(key, cx.waker()) {
                        return Poll::Pending;
                    }
                }
                if matches!(state.phase, Phase::Draining | Phase::Resetting) {
                    inner.binding.check("Barrier");
                    self.step = Step::Entering(Some(state.waiters.push(cx.waker())));
                    return Poll::Pending;
                }
                if state.phase == Phase::Broken {
                    self.step = Step::Done;
                    return Poll::Ready(Err(BrokenBarrierError::Broken));
                }
                let index = state.count;
                state.count += 1;
                if index + 1 < inner.parties {
                    inner.binding.check("Barrier");
                    let key = state.waiters.push(cx.waker());
                    self.step = Step::Arrived { index, key };
                    return Poll::Pending;
                }
                // The last arrival trips the barrier and leaves first.
                state.phase = Phase::Draining;
                drop(state);
                barrier.wake_all();
                self.step = Step::Done;
                barrier.leave();
                Poll::Ready(Ok(index))
            }
            Step::Arrived { index, key } => {
                if !state.waiters.take_notified(key, cx.waker()) {
                    return Poll::Pending;
                }
                let outcome = match state.phase {
                    Phase::Filling => {
                        // Woken by some other change: wait on, at the back as asyncio does.
                        let key = state.waiters.push(cx.waker());
                        self.step = Step::Arrived { index, key };
                        return Poll::Pending;
                    }
                    Phase::Draining => Ok(index),
                    Phase::Broken | Phase::Resetting => Err(BrokenBarrierError::Interrupted),
                };
                drop(state);
                self.step = Step::Done;
                barrier.leave();
                Poll::Ready(outcome)
            }
            Step::Done => panic!("BarrierWait polled after completion"),
        }
    }
}

impl Drop for BarrierWait<'_> {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.step, Step::Done) {
            Step::Entering(Some(key)) => {
                self.barrier.inner.state.borrow_mut().waiters.remove(key);
            }
            Step::Arrived { key, .. } => {
                // Every change wakes everyone, so an unused wake-up was meant for no one else;
                // but a task that had counted in counts out, as asyncio's `finally` does.
                self.barrier.inner.state.borrow_mut().waiters.remove(key);
                self.barrier.leave();
            }
            Step::Entering(None) | Step::Done => {}
        }
    }
}

impl fmt::Debug for BarrierWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWait")
            .field("step", &self.step)
            .finish()
    }
}
