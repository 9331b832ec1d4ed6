//! Queues between tasks: asyncio's `Queue`, `PriorityQueue` and `LifoQueue`, with
//! `task_done`/`join` and 3.13's `shutdown`.
//!
//! The semantics are asyncio's, including its cancellation rules. A `put_nowait` stores the item
//! and wakes the first waiting getter; it does not hand the item to it, so a getter that is
//! cancelled (its future dropped) after it was woken loses nothing, and passes its wake-up to the
//! next getter if items are left. A put's item enters the queue only when the put completes, so
//! a cancelled put inserts nothing (its item is dropped with it). A woken getter that finds the
//! queue empty again (another task took the item first) waits again at the back, as in asyncio.
//!
//! One implementation, [`GenericQueue`], serves the three orders through a [`Store`];
//! [`Queue`], [`LifoQueue`] and [`PriorityQueue`] are its asyncio-named instances. Another
//! thread puts through a [`RemoteQueue`].

mod error;
mod remote;
mod store;

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

pub use error::{GetNowaitError, PutNowaitError, QueueEmpty, QueueFull, QueueShutDown};
pub use remote::RemoteQueue;
pub use store::{Fifo, Lifo, Priority, Store};

use crate::sync::ValueError;
use crate::sync::wait_list::{Key, LoopBinding, WaitList, notify_n};

/// A first-in, first-out queue (asyncio's `Queue`).
///
/// ```
/// use evloop::queue::Queue;
///
/// let total = evloop::run(async {
///     let queue = Queue::new(2); // at most 2 items: put() waits while it is full
///     let producer = evloop::create_task({
///         let queue = queue.clone();
///         async move {
///             for n in 1..=10 {
///                 queue.put(n).await.unwrap();
///             }
///         }
///     });
///     let mut total = 0;
///     for _ in 0..10 {
///         total += queue.get().await.unwrap();
///     }
///     producer.await.unwrap();
///     total
/// });
/// assert_eq!(total.unwrap(), 55);
/// ```
pub type Queue<T> = GenericQueue<Fifo<T>>;

/// A last-in, first-out queue (asyncio's `LifoQueue`).
///
/// ```
/// let queue = evloop::queue::LifoQueue::new(0);
/// for n in 1..=3 {
///     queue.put_nowait(n).unwrap();
/// }
/// assert_eq!(queue.get_nowait(), Ok(3));
/// ```
pub type LifoQueue<T> = GenericQueue<Lifo<T>>;

/// A queue that hands out its smallest item first (asyncio's `PriorityQueue`); put
/// `(priority, data)` tuples to order data by priority.
///
/// ```
/// let queue = evloop::queue::PriorityQueue::new(0);
/// queue.put_nowait((2, "later")).unwrap();
/// queue.put_nowait((1, "first")).unwrap();
/// assert_eq!(queue.get_nowait(), Ok((1, "first")));
/// ```
pub type PriorityQueue<T> = GenericQueue<Priority<T>>;

/// A queue with the item order of its [`Store`]; see [`Queue`], [`LifoQueue`] and
/// [`PriorityQueue`].
///
/// A cheap handle: clones share one queue. `!Send`; bound to the loop it is first waited on
/// (asyncio's `_LoopBoundMixin`); another thread puts through [`remote`](GenericQueue::remote).
///
/// ```
/// use evloop::queue::{GenericQueue, Lifo};
///
/// // The same type as `LifoQueue<char>`.
/// let queue: GenericQueue<Lifo<char>> = GenericQueue::new(0);
/// queue.put_nowait('a').unwrap();
/// queue.put_nowait('b').unwrap();
/// assert_eq!((queue.qsize(), queue.get_nowait()), (2, Ok('b')));
/// ```
pub struct GenericQueue<S: Store> {
    inner: Rc<Inner<S>>,
}

struct Inner<S> {
    state: RefCell<State<S>>,
    binding: LoopBinding,
}

struct State<S> {
    store: S,
    maxsize: usize,
    getters: WaitList,
    putters: WaitList,
    joiners: WaitList,
    unfinished: usize,
    shut_down: bool,
}

impl<S: Store> State<S> {
    #[inline]
    fn full(&self) -> bool {
        self.maxsize > 0 && self.store.len() >= self.maxsize
    }

    /// The body of `put_nowait` once the item is known to fit: returns the getter to wake.
    #[inline]
    fn insert(&mut self, item: S::Item) -> Option<Waker> {
        self.store.push(item);
        self.unfinished += 1;
        self.getters.notify_first()
    }

    /// The body of `get_nowait` once an item is known to be there: returns it and the putter
    /// to wake.
    #[inline]
    fn take(&mut self) -> (S::Item, Option<Waker>) {
        let item = self.store.pop().expect("the store is not empty");
        (item, self.putters.notify_first())
    }
}

#[inline]
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl<S: Store> GenericQueue<S> {
    /// A queue holding at most `maxsize` items; 0 means no limit (asyncio's `maxsize <= 0`).
    pub fn new(maxsize: usize) -> Self {
        GenericQueue {
            inner: Rc::new(Inner {
                state: RefCell::new(State {
                    store: S::default(),
                    maxsize,
                    getters: WaitList::new(),
                    putters: WaitList::new(),
                    joiners: WaitList::new(),
                    unfinished: 0,
                    shut_down: false,
                }),
                binding: LoopBinding::default(),
            }),
        }
    }

    /// The most items the queue holds (0: no limit).
    pub fn maxsize(&self) -> usize {
        self.inner.state.borrow().maxsize
    }

    /// How many items are in the queue.
    pub fn qsize(&self) -> usize {
        self.inner.state.borrow().store.len()
    }

    /// Whether the queue holds no item.
    pub fn empty(&self) -> bool {
        self.inner.state.borrow().store.is_empty()
    }

    /// Whether the queue holds `maxsize` items (never, with no limit).
    pub fn full(&self) -> bool {
        self.inner.state.borrow().full()
    }

    /// Puts an item, waiting while the queue is full; `Err` with the item once the queue is
    /// shut down. Cancel-safe: dropped before it completes, the put inserts nothing.
    pub fn put(&self, item: S::Item) -> Put<'_, S> {
        Put {
            queue: self,
            item: Some(item),
            key: None,
        }
    }

    /// Puts an item if there is room now; `QueueFull` or `QueueShutDown` with the item if not.
    pub fn put_nowait(&self, item: S::Item) -> Result<(), PutNowaitError<S::Item>> {
        let waker = {
            let mut state = self.inner.state.borrow_mut();
            if state.shut_down {
                return Err(PutNowaitError::ShutDown(QueueShutDown(item)));
            }
            if state.full() {
                return Err(PutNowaitError::Full(QueueFull(item)));
            }
            state.insert(item)
        };
        wake(waker);
        Ok(())
    }

    /// Takes the next item, waiting while the queue is empty; `Err` once the queue is shut down
    /// and empty (at once after `shutdown(true)`). Cancel-safe: dropped before it completes, the
    /// get takes no item.
    pub fn get(&self) -> Get<'_, S> {
        Get {
            queue: self,
            key: None,
        }
    }

    /// Takes the next item if there is one now; `QueueEmpty`, or `QueueShutDown` once the
    /// queue is shut down and empty.
    pub fn get_nowait(&self) -> Result<S::Item, GetNowaitError> {
        let (item, waker) = {
            let mut state = self.inner.state.borrow_mut();
            if state.store.is_empty() {
                return Err(if state.shut_down {
                    GetNowaitError::ShutDown(QueueShutDown(()))
                } else {
                    GetNowaitError::Empty(QueueEmpty)
                });
            }
            state.take()
        };
        wake(waker);
        Ok(item)
    }

    /// Marks one item taken with `get` as processed; when every item put has been processed,
    /// `join` returns. asyncio's ValueError "task_done() called too many times" when more
    /// items were marked than put.
    ///
    /// ```
    /// use evloop::queue::Queue;
    /// use evloop::sync::ValueError;
    ///
    /// let queue = Queue::new(0);
    /// queue.put_nowait("job").unwrap();
    /// queue.get_nowait().unwrap();
    /// assert_eq!(queue.task_done(), Ok(()));
    /// assert_eq!(queue.task_done(), Err(ValueError::TaskDoneTooManyTimes));
    /// ```
    pub fn task_done(&self) -> Result<(), ValueError> {
        let joiners = {
            let mut state = self.inner.state.borrow_mut();
            if state.unfinished == 0 {
                return Err(ValueError::TaskDoneTooManyTimes);
            }
            state.unfinished -= 1;
            if state.unfinished > 0 {
                return Ok(());
            }
            state.joiners.len()
        };
        notify_n(&self.inner.state, |s| &mut s.joiners, joiners);
        Ok(())
    }

    /// Waits until every item put has been marked with `task_done` (returns at once if so).
    pub fn join(&self) -> Join<'_, S> {
        Join {
            queue: self,
            key: None,
        }
    }

    /// Shuts the queue down (asyncio 3.13): puts fail with `QueueShutDown` from now on, and
    /// every waiting put and get wakes up to see it. Gets go on taking the items left and fail
    /// once the queue is empty; with `immediate`, the items left are dropped (each counted as
    /// done, which may end a `join`) and gets fail at once.
    ///
    /// ```
    /// use evloop::queue::{Queue, QueueShutDown};
    ///
    /// let outcome = evloop::run(async {
    ///     let queue: Queue<u32> = Queue::new(0);
    ///     let getter = evloop::create_task({
    ///         let queue = queue.clone();
    ///         async move { queue.get().await }
    ///     });
    ///     evloop::yield_now().await;
    ///     queue.shutdown(false);
    ///     getter.await.unwrap()
    /// });
    /// assert_eq!(outcome.unwrap(), Err(QueueShutDown(())));
    /// ```
    pub fn shutdown(&self, immediate: bool) {
        let (dropped, getters, putters, joiners) = {
            let mut state = self.inner.state.borrow_mut();
            state.shut_down = true;
            let mut dropped = Vec::new();
            if immediate {
                dropped.reserve(state.store.len());
                while let Some(item) = state.store.pop() {
                    dropped.push(item);
                }
                state.unfinished = state.unfinished.saturating_sub(dropped.len());
            }
            let joiners = if state.unfinished == 0 {
                state.joiners.len()
            } else {
                0
            };
            (dropped, state.getters.len(), state.putters.len(), joiners)
        };
        notify_n(&self.inner.state, |s| &mut s.joiners, joiners);
        notify_n(&self.inner.state, |s| &mut s.getters, getters);
        notify_n(&self.inner.state, |s| &mut s.putters, putters);
        // The items' destructors run last, with no borrow held: they may use the queue.
        drop(dropped);
    }
}

impl<S: Store> Clone for GenericQueue<S> {
    fn clone(&self) -> Self {
        GenericQueue {
            inner: self.inner.clone(),
        }
    }
}

impl<S: Store> fmt::Debug for GenericQueue<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.borrow();
        f.debug_struct("Queue")
            .field("maxsize", &state.maxsize)
            .field("qsize", &state.store.len())
            .field("getters", &state.getters.len())
            .field("putters", &state.putters.len())
            .field("unfinished_tasks", &state.unfinished)
            .field("shut_down", &state.shut_down)
            .finish()
    }
}

/// The future returned by [`GenericQueue::put`].
#[must_use = "futures do nothing unless awaited"]
pub struct Put<'a, S: Store> {
    queue: &'a GenericQueue<S>,
    item: Option<S::Item>,
    key: Option<Key>,
}

// The item is moved in and out, never pinned.
impl<S: Store> Unpin for Put<'_, S> {}

impl<S: Store> Future for Put<'_, S> {
    type Output = Result<(), QueueShutDown<S::Item>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let inner = &this.queue.inner;
        let mut state = inner.state.borrow_mut();
        if let Some(key) = this.key {
            if !state.putters.take_notified(key, cx.waker()) {
                return Poll::Pending;
            }
            this.key = None;
        }
        let item = this.item.take().expect("Put polled after completion");
        if state.shut_down {
            return Poll::Ready(Err(QueueShutDown(item)));
        }
        if state.full() {
            inner.binding.check("Queue");
            this.key = Some(state.putters.push(cx.waker()));
            this.item = Some(item);
            return Poll::Pending;
        }
        let waker = state.insert(item);
        drop(state);
        wake(waker);
        Poll::Ready(Ok(()))
    }
}

impl<S: Store> Drop for Put<'_, S> {
    #[inline]
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let waker = {
            let mut state = self.queue.inner.state.borrow_mut();
            // Woken for a free slot we will not fill: wake the next putter for it.
            if state.putters.remove(key) && !state.full() {
                state.putters.notify_first()
            } else {
                None
            }
        };
        wake(waker);
    }
}

impl<S: Store> fmt::Debug for Put<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Put")
            .field("waiting", &self.key.is_some())
            .finish()
    }
}

/// The future returned by [`GenericQueue::get`].
#[must_use = "futures do nothing unless awaited"]
pub struct Get<'a, S: Store> {
    queue: &'a GenericQueue<S>,
    key: Option<Key>,
}

impl<S: Store> Future for Get<'_, S> {
    type Output = Result<S::Item, QueueShutDown>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let queue = self.queue;
        let inner = &queue.inner;
        let mut state = inner.state.borrow_mut();
        if let Some(key) = self.key {
            if !state.getters.take_notified(key, cx.waker()) {
                return Poll::Pending;
            }
            self.key = None;
        }
        if state.store.is_empty() {
            if state.shut_down {
                return Poll::Ready(Err(QueueShutDown(())));
            }
            inner.binding.check("Queue");
            let key = state.getters.push(cx.waker());
            drop(state);
            self.key = Some(key);
            return Poll::Pending;
        }
        let (item, waker) = state.take();
        drop(state);
        wake(waker);
        Poll::Ready(Ok(item))
    }
}

impl<S: Store> Drop for Get<'_, S> {
    #[inline]
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let waker = {
            let mut state = self.queue.inner.state.borrow_mut();
            // Woken for an item we will not take: wake the next getter for it.
            if state.getters.remove(key) && !state.store.is_empty() {
                state.getters.notify_first()
            } else {
                None
            }
        };
        wake(waker);
    }
}

impl<S: Store> fmt::Debug for Get<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Get")
            .field("waiting", &self.key.is_some())
            .finish()
    }
}

/// The future returned by [`GenericQueue::join`].
#[must_use = "futures do nothing unless awaited"]
pub struct Join<'a, S: Store> {
    queue: &'a GenericQueue<S>,
    key: Option<Key>,
}

impl<S: Store> Future for Join<'_, S> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let queue = self.queue;
        let inner = &queue.inner;
        let mut state = inner.state.borrow_mut();
        if let Some(key) = self.key {
            if !state.joiners.take_notified(key, cx.waker()) {
                return Poll::Pending;
            }
            drop(state);
            self.key = None;
            return Poll::Ready(());
        }
        if state.unfinished == 0 {
            return Poll::Ready(());
        }
        inner.binding.check("Queue");
        let key = state.joiners.push(cx.waker());
        drop(state);
        self.key = Some(key);
        Poll::Pending
    }
}

impl<S: Store> Drop for Join<'_, S> {
    #[inline]
    fn drop(&mut self) {
        // Joiners are all woken together: an unused wake-up was meant for no one else.
        if let Some(key) = self.key.take() {
            self.queue.inner.state.borrow_mut().joiners.remove(key);
        }
    }
}

impl<S: Store> fmt::Debug for Join<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("waiting", &self.key.is_some())
            .finish()
    }
}
