//! Putting into a queue from another thread: asyncio's `loop.call_soon_threadsafe(q.put_nowait,
//! item)`, as a `Send` handle.
//!
//! The queue itself stays single-threaded. Another thread's items go into a mutex-guarded inbox
//! and wake one forwarding task on the queue's loop, which moves them into the queue with
//! `put().await`, in order. So a bounded queue's limit holds (the inbox waits instead of failing
//! with `QueueFull` as asyncio's callback would), and no item is lost to a full queue.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use evloop_reactor::{EventLoop, ExceptionContext};

use crate::LoopExt;
use crate::queue::{GenericQueue, QueueShutDown, Store};

/// A `Send + Sync` handle that puts into a [`GenericQueue`] from any thread (made by
/// [`GenericQueue::remote`]).
///
/// Items from one handle (and its clones) arrive in the order they were put. They wait in an
/// unbounded inbox until the queue has room. Once the queue is shut down (or its loop closed),
/// `put` hands the item back; items already in the inbox then are dropped, as asyncio's
/// `put_nowait` callbacks would fail.
///
/// ```
/// use evloop::queue::Queue;
///
/// let sum = evloop::run(async {
///     let queue = Queue::new(4);
///     let remote = queue.remote();
///     let thread = std::thread::spawn(move || {
///         for n in 1..=100 {
///             remote.put(n).unwrap();
///         }
///     });
///     let mut sum = 0;
///     for _ in 0..100 {
///         sum += queue.get().await.unwrap();
///     }
///     thread.join().unwrap();
///     sum
/// });
/// assert_eq!(sum.unwrap(), 5050);
/// ```
pub struct RemoteQueue<T> {
    inbox: Arc<Mutex<Inbox<T>>>,
}

struct Inbox<T> {
    items: VecDeque<T>,
    /// The forwarding task, when it waits for items.
    forwarder: Option<Waker>,
    /// Live `RemoteQueue` handles: at zero, the forwarder ends.
    handles: usize,
    /// The queue was shut down or the forwarder is gone: puts are refused.
    closed: bool,
}

fn lock<T>(inbox: &Mutex<Inbox<T>>) -> MutexGuard<'_, Inbox<T>> {
    // No code that can panic runs under the lock; a poisoned inbox is still consistent.
    inbox.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: Send> RemoteQueue<T> {
    /// Puts an item without waiting; `Err` with the item once the queue is shut down or its
    /// loop closed.
    pub fn put(&self, item: T) -> Result<(), QueueShutDown<T>> {
        let forwarder = {
            let mut inbox = lock(&self.inbox);
            if inbox.closed {
                return Err(QueueShutDown(item));
            }
            inbox.items.push_back(item);
            inbox.forwarder.take()
        };
        if let Some(waker) = forwarder {
            waker.wake();
        }
        Ok(())
    }
}

impl<T> Clone for RemoteQueue<T> {
    fn clone(&self) -> Self {
        lock(&self.inbox).handles += 1;
        RemoteQueue {
            inbox: self.inbox.clone(),
        }
    }
}

impl<T> Drop for RemoteQueue<T> {
    fn drop(&mut self) {
        let forwarder = {
            let mut inbox = lock(&self.inbox);
            inbox.handles -= 1;
            if inbox.handles > 0 {
                return;
            }
            inbox.forwarder.take()
        };
        // The last handle is gone: let the forwarder finish.
        if let Some(waker) = forwarder {
            waker.wake();
        }
    }
}

impl<T> fmt::Debug for RemoteQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inbox = lock(&self.inbox);
        f.debug_struct("RemoteQueue")
            .field("in_flight", &inbox.items.len())
            .field("closed", &inbox.closed)
            .finish()
    }
}

fn report_dropped(items: usize) {
    let context = ExceptionContext::new(format!(
        "RemoteQueue: the queue was shut down; {items} item(s) put from other threads were dropped"
    ))
    .with_exception(QueueShutDown(()));
    EventLoop::with_running(|lp| {
        if let Some(lp) = lp {
            lp.call_exception_handler(context);
        }
    });
}

/// Closes the inbox when the forwarder ends for any reason (shutdown, cancellation, loop close).
struct CloseOnDrop<T>(Arc<Mutex<Inbox<T>>>);

impl<T> Drop for CloseOnDrop<T> {
    fn drop(&mut self) {
        let items = {
            let mut inbox = lock(&self.0);
            inbox.closed = true;
            inbox.forwarder = None;
            std::mem::take(&mut inbox.items)
        };
        drop(items);
    }
}

impl<S> GenericQueue<S>
where
    S: Store + 'static,
    S::Item: Send + 'static,
{
    /// A handle that other threads use to put into this queue (see [`RemoteQueue`]). Each call
    /// starts one forwarding task on the running loop, which ends when the last clone of the
    /// handle is dropped; make one and clone it.
    ///
    /// # Panics
    ///
    /// Outside a running loop, or on a loop other than the one the queue is bound to.
    #[track_caller]
    pub fn remote(&self) -> RemoteQueue<S::Item> {
        let lp = evloop_reactor::get_running_loop().ok().unwrap_or_else(|| {
            panic!("remote() called outside a running event loop: call it inside evloop::run")
        });
        self.inner.binding.check("Queue");
        let inbox = Arc::new(Mutex::new(Inbox {
            items: VecDeque::new(),
            forwarder: None,
            handles: 1,
            closed: false,
        }));
        let queue = self.clone();
        let closer = CloseOnDrop(inbox.clone());
        let forward = async move {
            let closer = closer;
            let mut batch = VecDeque::new();
            loop {
                let more = poll_fn(|cx| {
                    let mut inbox = lock(&closer.0);
                    if !inbox.items.is_empty() {
                        std::mem::swap(&mut inbox.items, &mut batch);
                        return Poll::Ready(true);
                    }
                    if inbox.handles == 0 {
                        return Poll::Ready(false);
                    }
                    inbox.forwarder = Some(cx.waker().clone());
                    Poll::Pending
                })
                .await;
                if !more {
                    return;
                }
                while let Some(item) = batch.pop_front() {
                    if queue.put(item).await.is_err() {
                        // Shut down: refuse later puts, and say what is dropped, as asyncio's
                        // failing `put_nowait` callbacks would be reported.
                        let dropped = 1 + batch.len() + lock(&closer.0).items.len();
                        report_dropped(dropped);
                        return;
                    }
                }
            }
        };
        let task = lp.create_task(forward).unwrap_or_else(|e| panic!("{e}"));
        task.set_name("RemoteQueue forwarder");
        task.detach();
        RemoteQueue { inbox }
    }
}
