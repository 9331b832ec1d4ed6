//! The thread-safe queue behind `call_soon_threadsafe`: many producers, one consumer (the loop).
//!
//! Waking a loop blocked in the reactor costs a system call on each side, ten to a hundred times
//! an enqueue. So a producer asks for a wake-up only when the consumer has announced that it is
//! about to block ([`RemoteQueue::try_park`]), and only the first producer after that announcement
//! asks. While the loop is busy, a burst of pushes from any number of threads costs no wake-up at
//! all: the loop drains the whole batch on its next iteration.
//!
//! The queue itself performs no I/O; [`RemoteQueue::push`] returns [`Wakeup::Needed`] and the caller
//! (the reactor) does the waking.
//!
//! All state lives under one mutex, which makes the park/push race trivially correct: the
//! consumer's "nothing queued, so I park" and a producer's "the consumer parked, so I wake it"
//! are decided under the same lock, so a push can never slip between the check and the park.

use std::fmt;
use std::sync::PoisonError;

use crate::sync::{AtomicBool, Mutex, MutexGuard, Ordering};

/// What a producer must do after a successful push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a parked consumer sleeps until it is woken"]
pub enum Wakeup {
    /// The consumer is running or already being woken: nothing to do.
    NotNeeded,
    /// The consumer is parked (or about to be) and nobody has woken it yet: wake it.
    Needed,
}

/// The queue was closed; the rejected item is handed back.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed<T>(pub T);

impl<T> fmt::Display for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Event loop is closed")
    }
}

impl<T: fmt::Debug> std::error::Error for Closed<T> {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consumer {
    Running,
    Parked,
    Notified,
}

struct Inner<T> {
    items: Vec<T>,
    consumer: Consumer,
    closed: bool,
}

/// A many-producer, single-consumer queue that wakes its consumer only when it sleeps.
///
/// ```
/// use evloop_callbacks::{RemoteQueue, Wakeup};
///
/// let queue = RemoteQueue::new();
/// // The loop is running: pushes need no wake-up.
/// assert_eq!(queue.push(1).unwrap(), Wakeup::NotNeeded);
/// let mut batch = Vec::new();
/// queue.drain_into(&mut batch);
/// assert_eq!(batch, [1]);
///
/// // The loop parks; the first push after that must wake it, the next ones need not.
/// assert!(queue.try_park());
/// assert_eq!(queue.push(2).unwrap(), Wakeup::Needed);
/// assert_eq!(queue.push(3).unwrap(), Wakeup::NotNeeded);
/// queue.unpark();
/// ```
pub struct RemoteQueue<T> {
    inner: Mutex<Inner<T>>,
    /// A lock-free hint that items are waiting, so that an idle loop iteration costs no lock.
    has_items: AtomicBool,
}

impl<T> Default for RemoteQueue<T> {
    fn default() -> Self {
        RemoteQueue::new()
    }
}

impl<T> fmt::Debug for RemoteQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("RemoteQueue")
            .field("len", &inner.items.len())
            .field("consumer", &inner.consumer)
            .field("closed", &inner.closed)
            .finish()
    }
}

impl<T> RemoteQueue<T> {
    /// An empty, open queue whose consumer is running.
    pub fn new() -> RemoteQueue<T> {
        RemoteQueue {
            inner: Mutex::new(Inner {
                items: Vec::new(),
                consumer: Consumer::Running,
                closed: false,
            }),
            has_items: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // Nothing panics while the lock is held (a Vec push aborts on OOM), so a poisoned lock
        // still guards consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends an item from any thread. Says whether the consumer must be woken, or hands the
    /// item back if the queue is closed.
    pub fn push(&self, item: T) -> Result<Wakeup, Closed<T>> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(Closed(item));
        }
        inner.items.push(item);
        self.has_items.store(true, Ordering::Release);
        if inner.consumer == Consumer::Parked {
            inner.consumer = Consumer::Notified;
            Ok(Wakeup::Needed)
        } else {
            Ok(Wakeup::NotNeeded)
        }
    }

    /// Consumer: moves every queued item into `out` (which should be empty; its capacity is
    /// reused, so a steady stream of batches does not allocate).
    pub fn drain_into(&self, out: &mut Vec<T>) {
        if !self.has_items.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.lock();
        if out.is_empty() {
            std::mem::swap(&mut inner.items, out);
        } else {
            out.append(&mut inner.items);
        }
        self.has_items.store(false, Ordering::Relaxed);
    }

    /// Whether items are waiting (a hint: another thread may push right after).
    pub fn has_items(&self) -> bool {
        self.has_items.load(Ordering::Acquire)
    }

    /// Consumer: announces that it is about to block. Returns false (and stays running) when
    /// items are already waiting, in which case the consumer must not block.
    pub fn try_park(&self) -> bool {
        let mut inner = self.lock();
        if !inner.items.is_empty() || inner.closed {
            return false;
        }
        inner.consumer = Consumer::Parked;
        true
    }

    /// Consumer: announces that it is running again (after the blocking call returned).
    pub fn unpark(&self) {
        self.lock().consumer = Consumer::Running;
    }

    /// Closes the queue: later pushes fail. Returns what was still queued, for the caller to drop.
    pub fn close(&self) -> Vec<T> {
        let mut inner = self.lock();
        inner.closed = true;
        self.has_items.store(false, Ordering::Relaxed);
        std::mem::take(&mut inner.items)
    }

    /// Whether [`close`](RemoteQueue::close) was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

// Plain threads: under `--cfg loom` the queue's primitives only work inside a model.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::thread;

    #[test]
    fn pushes_while_running_never_ask_for_a_wake_up() {
        let queue = RemoteQueue::new();
        for i in 0..100 {
            assert_eq!(queue.push(i), Ok(Wakeup::NotNeeded));
        }
        let mut out = Vec::new();
        queue.drain_into(&mut out);
        assert!(out.iter().copied().eq(0..100));
    }

    #[test]
    fn exactly_one_wake_up_per_park() {
        let queue = RemoteQueue::new();
        assert!(queue.try_park());
        assert_eq!(queue.push(1), Ok(Wakeup::Needed));
        assert_eq!(queue.push(2), Ok(Wakeup::NotNeeded));
        queue.unpark();
        assert_eq!(queue.push(3), Ok(Wakeup::NotNeeded));
        let mut out = Vec::new();
        queue.drain_into(&mut out);
        assert!(queue.try_park());
        assert_eq!(queue.push(4), Ok(Wakeup::Needed));
    }

    #[test]
    fn does_not_park_over_waiting_items() {
        let queue = RemoteQueue::new();
        assert_eq!(queue.push(1), Ok(Wakeup::NotNeeded));
        assert!(!queue.try_park());
        assert_eq!(queue.push(2), Ok(Wakeup::NotNeeded));
    }

    #[test]
    fn closed_queue_hands_items_back() {
        let queue = RemoteQueue::new();
        assert_eq!(queue.push("a"), Ok(Wakeup::NotNeeded));
        assert_eq!(queue.close(), vec!["a"]);
        assert_eq!(queue.push("b"), Err(Closed("b")));
        assert_eq!(Closed(()).to_string(), "Event loop is closed");
        assert!(queue.is_closed());
        assert!(!queue.try_park(), "a closed queue never parks its consumer");
    }

    /// Many producers, a consumer that parks whenever it runs dry: every item arrives exactly
    /// once and the consumer is never left asleep with items queued (the test would hang).
    #[test]
    fn many_producers_nothing_lost_no_missed_wake_up() {
        let producers = 8;
        let per_producer = if cfg!(miri) { 50 } else { 10_000 };
        let queue = Arc::new(RemoteQueue::new());
        let wakes = Arc::new(AtomicUsize::new(0));
        // The "reactor": a parked consumer waits on this pair for a wake-up.
        let signal = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let threads: Vec<_> = (0..producers)
            .map(|p| {
                let queue = queue.clone();
                let wakes = wakes.clone();
                let signal = signal.clone();
                thread::spawn(move || {
                    for i in 0..per_producer {
                        if queue.push(p * per_producer + i).unwrap() == Wakeup::Needed {
                            wakes.fetch_add(1, Ordering::Relaxed);
                            let (woken, cond) = &*signal;
                            *woken.lock().unwrap() = true;
                            cond.notify_one();
                        }
                    }
                })
            })
            .collect();
        let total = producers * per_producer;
        let mut seen = vec![false; total];
        let mut count = 0;
        let mut batch = Vec::new();
        while count < total {
            queue.drain_into(&mut batch);
            for item in batch.drain(..) {
                assert!(!std::mem::replace(&mut seen[item], true), "{item} twice");
                count += 1;
            }
            if count < total && queue.try_park() {
                let (woken, cond) = &*signal;
                let mut flag = woken.lock().unwrap();
                while !*flag {
                    flag = cond.wait(flag).unwrap();
                }
                *flag = false;
                drop(flag);
                queue.unpark();
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        assert!(seen.iter().all(|&s| s));
        assert!(wakes.load(Ordering::Relaxed) <= total);
    }
}

/// Loom models of the queue's cross-thread protocol (`cargo xtask loom`): every interleaving of
/// the real code above, on loom's mutex and atomics.
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use loom::sync::{Arc, Notify};
    use loom::thread;

    /// Every interleaving with up to three preemptions: enough for each race here (a push
    /// between two steps of the consumer), and it keeps the run in seconds.
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(f);
    }

    /// Two producers push one item each while the consumer drains, parks when it runs dry and
    /// waits for a wake-up (the `Notify` stands for the loop's eventfd). A lost wake-up leaves the
    /// consumer waiting with an item queued, which loom reports as a deadlock; every item must
    /// arrive exactly once.
    #[test]
    fn loom_no_lost_wake_up() {
        model(|| {
            let queue = Arc::new(RemoteQueue::new());
            let wake = Arc::new(Notify::new());
            let producers: Vec<_> = (0..2)
                .map(|item| {
                    let (queue, wake) = (queue.clone(), wake.clone());
                    thread::spawn(move || {
                        if queue.push(item).unwrap() == Wakeup::Needed {
                            wake.notify();
                        }
                    })
                })
                .collect();
            let mut got = Vec::new();
            let mut batch = Vec::new();
            while got.len() < 2 {
                queue.drain_into(&mut batch);
                got.append(&mut batch);
                if got.len() < 2 && queue.try_park() {
                    wake.wait();
                    queue.unpark();
                }
            }
            for producer in producers {
                producer.join().unwrap();
            }
            got.sort_unstable();
            assert_eq!(got, [0, 1]);
        });
    }

    /// A push racing `close()` while the consumer drains: the item is drained, handed back by
    /// the push, or returned by `close()`, exactly one of the three; never lost, never twice.
    #[test]
    fn loom_push_racing_close_loses_nothing() {
        model(|| {
            let queue = Arc::new(RemoteQueue::new());
            let pusher = {
                let queue = queue.clone();
                thread::spawn(move || queue.push(7))
            };
            let mut drained = Vec::new();
            queue.drain_into(&mut drained);
            let left = queue.close();
            let pushed = pusher.join().unwrap();
            let returned = usize::from(pushed.is_err());
            assert_eq!(drained.len() + left.len() + returned, 1);
            assert_eq!(queue.push(8), Err(Closed(8)), "closed for good");
        });
    }
}
