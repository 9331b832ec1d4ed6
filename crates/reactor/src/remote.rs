//! The loop's thread-safe side: what other threads may do to a loop they cannot touch.
//!
//! An [`EventLoop`](crate::EventLoop) is `!Send`; a [`RemoteHandle`] is `Send + Sync + Clone` and
//! offers the few operations that make sense from another thread: `call_soon_threadsafe`,
//! `stop`, waking a task, and holding the virtual clock while outside work is in flight. Items
//! go through a [`RemoteQueue`], which asks for a wake-up (a write to the loop's eventfd through
//! `mio::Waker`) only when the loop is parked in the reactor.

use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use evloop_callbacks::{Closed, RemoteQueue, SendCallback, Snapshot, TaskRef, Wakeup};

use crate::LoopError;

/// What another thread can send to the loop.
pub(crate) enum RemoteItem {
    /// `call_soon_threadsafe`: the callback, where it was scheduled, and the calling thread's
    /// context (it runs in a copy of it, as asyncio's handle does).
    /// A callback of up to three words travels inline (no allocation per call).
    Callback(SendCallback, &'static Location<'static>, Option<Snapshot>),
    /// A task woken off the loop thread.
    Task(TaskRef),
    /// `stop()` requested from another thread.
    Stop,
    /// Nothing to run: only makes a parked loop look at its state again.
    Nudge,
}

/// State shared between the loop and its remote handles.
pub(crate) struct RemoteShared {
    pub(crate) queue: RemoteQueue<RemoteItem>,
    /// Dropped when the loop closes, so that a handle kept by a long-lived thread does not keep
    /// the loop's eventfd open.
    waker: Mutex<Option<mio::Waker>>,
    /// While positive, a virtual clock must not jump ahead: outside work will come back.
    clock_holds: AtomicUsize,
    pub(crate) loop_id: u64,
}

impl RemoteShared {
    pub(crate) fn new(waker: mio::Waker, loop_id: u64) -> RemoteShared {
        RemoteShared {
            queue: RemoteQueue::new(),
            waker: Mutex::new(Some(waker)),
            clock_holds: AtomicUsize::new(0),
            loop_id,
        }
    }

    pub(crate) fn send(&self, item: RemoteItem) -> Result<(), LoopError> {
        match self.queue.push(item) {
            Ok(Wakeup::NotNeeded) => Ok(()),
            Ok(Wakeup::Needed) => {
                self.wake();
                Ok(())
            }
            // The rejected item is dropped here, on this thread: it is Send by construction.
            Err(Closed(_item)) => Err(LoopError::Closed),
        }
    }

    fn wake(&self) {
        let waker = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(waker) = waker.as_ref() {
            // A failed write means the eventfd counter is saturated, so the loop is awake anyway.
            let _ = waker.wake();
        }
    }

    pub(crate) fn drop_waker(&self) {
        self.waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    pub(crate) fn clock_held(&self) -> bool {
        self.clock_holds.load(Ordering::Acquire) > 0
    }
}

/// A thread-safe handle to an [`EventLoop`](crate::EventLoop): `Send + Sync + Clone`.
///
/// ```
/// use evloop_reactor::EventLoop;
/// use std::thread;
///
/// let lp = EventLoop::new().unwrap();
/// let remote = lp.remote();
/// thread::spawn(move || {
///     remote.call_soon_threadsafe(|| println!("from another thread")).unwrap();
///     remote.stop().unwrap();
/// });
/// lp.run_forever().unwrap();
/// ```
#[derive(Clone)]
pub struct RemoteHandle {
    pub(crate) shared: Arc<RemoteShared>,
}

impl RemoteHandle {
    /// Schedules `callback` to run on the loop thread, waking the loop if it is blocked.
    ///
    /// The callback runs in a copy of the calling thread's context (asyncio's
    /// `call_soon_threadsafe`), and after everything the loop thread scheduled once this call
    /// had returned: the two kinds of `call_soon` share one order. Fails with "Event loop is
    /// closed" once the loop is closed (the callback is dropped).
    /// Unlike asyncio, no handle is returned: cancelling from another thread would race with the
    /// loop running the callback.
    #[track_caller]
    pub fn call_soon_threadsafe(
        &self,
        callback: impl FnOnce() + Send + 'static,
    ) -> Result<(), LoopError> {
        self.shared.send(RemoteItem::Callback(
            SendCallback::new(callback),
            Location::caller(),
            Snapshot::capture(),
        ))
    }

    /// Asks the loop to stop after its current iteration (asyncio's
    /// `call_soon_threadsafe(loop.stop)`).
    pub fn stop(&self) -> Result<(), LoopError> {
        self.shared.send(RemoteItem::Stop)
    }

    /// Queues a task to be polled on the loop thread: the off-thread half of a task's waker.
    pub fn schedule_task(&self, task: TaskRef) -> Result<(), LoopError> {
        self.shared.send(RemoteItem::Task(task))
    }

    /// Whether the loop has been closed.
    pub fn is_closed(&self) -> bool {
        self.shared.queue.is_closed()
    }

    /// The id of the loop this handle belongs to (see [`EventLoop::id`](crate::EventLoop::id)).
    pub fn loop_id(&self) -> u64 {
        self.shared.loop_id
    }

    /// Keeps a virtual clock from jumping ahead until the returned guard is dropped.
    ///
    /// An executor holds the clock while a job runs on another thread, so that a test with a
    /// virtual clock waits for the job instead of firing a timeout that real time would not
    /// have reached. No effect on a loop with the real clock.
    pub fn hold_clock(&self) -> ClockHold {
        self.shared.clock_holds.fetch_add(1, Ordering::AcqRel);
        ClockHold {
            shared: self.shared.clone(),
        }
    }
}

impl fmt::Debug for RemoteHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteHandle")
            .field("loop_id", &self.shared.loop_id)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Keeps a loop's virtual clock from jumping ahead while it lives (see
/// [`RemoteHandle::hold_clock`]).
#[derive(Debug)]
#[must_use = "the hold ends when the guard is dropped"]
pub struct ClockHold {
    shared: Arc<RemoteShared>,
}

impl Drop for ClockHold {
    fn drop(&mut self) {
        self.shared.clock_holds.fetch_sub(1, Ordering::AcqRel);
        // A parked loop may now be free to advance its clock: let it look again.
        let _ = self.shared.send(RemoteItem::Nudge);
    }
}

impl fmt::Debug for RemoteShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteShared")
            .field("loop_id", &self.loop_id)
            .finish()
    }
}
