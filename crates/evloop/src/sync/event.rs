//! `Event`: a flag tasks wait on (asyncio's `asyncio.Event`).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::sync::wait_list::{Key, LoopBinding, WaitList, notify_n};

/// A flag that tasks can wait for (asyncio's `Event`): `set` wakes every waiter, `clear` makes
/// later waiters wait again. A waiter woken by `set` returns even if the flag was cleared before
/// it ran, as in asyncio.
///
/// A cheap handle: clones share one event. `!Send`; bound to the loop it is first waited on.
///
/// ```
/// use evloop::sync::Event;
///
/// let order = evloop::run(async {
///     let event = Event::new();
///     let waiter = evloop::create_task({
///         let event = event.clone();
///         async move {
///             event.wait().await;
///             "woken"
///         }
///     });
///     evloop::yield_now().await;
///     assert!(!waiter.done());
///     event.set();
///     waiter.await.unwrap()
/// });
/// assert_eq!(order.unwrap(), "woken");
/// ```
#[derive(Clone, Default)]
pub struct Event {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: RefCell<State>,
    binding: LoopBinding,
}

#[derive(Default)]
struct State {
    set: bool,
    waiters: WaitList,
}

impl Event {
    /// A new event, not set.
    pub fn new() -> Event {
        Event::default()
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.inner.state.borrow().set
    }

    /// Sets the flag and wakes every task waiting for it; later `wait`s return at once.
    pub fn set(&self) {
        let waiting = {
            let mut state = self.inner.state.borrow_mut();
            if state.set {
                return;
            }
            state.set = true;
            state.waiters.len()
        };
        notify_n(&self.inner.state, |s| &mut s.waiters, waiting);
    }

    /// Clears the flag: later `wait`s wait for the next `set`.
    pub fn clear(&self) {
        self.inner.state.borrow_mut().set = false;
    }

    /// Waits until the flag is set (returns at once if it is).
    pub fn wait(&self) -> EventWait<'_> {
        EventWait {
            event: self,
            key: None,
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.borrow();
        f.debug_struct("Event")
            .field("set", &state.set)
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

/// The future returned by [`Event::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct EventWait<'a> {
    event: &'a Event,
    key: Option<Key>,
}

impl Future for EventWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let event = self.event;
        let inner = &event.inner;
        let mut state = inner.state.borrow_mut();
        if let Some(key) = self.key {
            if !state.waiters.take_notified(key, cx.waker()) {
                return Poll::Pending;
            }
            drop(state);
            self.key = None;
            return Poll::Ready(());
        }
        if state.set {
            return Poll::Ready(());
        }
        inner.binding.check("Event");
        let key = state.waiters.push(cx.waker());
        drop(state);
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        // `set` wakes everyone, so a wake-up left unused here was meant for no one else.
        if let Some(key) = self.key.take() {
            self.event.inner.state.borrow_mut().waiters.remove(key);
        }
    }
}

impl fmt::Debug for EventWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWait")
            .field("waiting", &self.key.is_some())
            .finish()
    }
}
