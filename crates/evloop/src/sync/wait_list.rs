//! The FIFO list of waiting tasks every primitive and queue is built on.
//!
//! asyncio keeps a deque of futures per primitive: a waiter appends its future, a wake-up sets
//! the first one's result, and a cancelled waiter removes its future in `finally`. Here a waiter
//! is a slot in a slab threaded into a doubly linked list by index, so that appending, waking the
//! first waiter and removing any waiter (a future dropped at its await point) are O(1) and, once
//! the slab has grown to the peak number of waiters, allocate nothing.
//!
//! A woken slot leaves the list but stays allocated, marked notified, until its future collects
//! the wake-up or is dropped: that mark is how a dropped future knows it was given a wake-up it
//! did not use, which it must pass on (asyncio's "woken, then cancelled" case).

use std::cell::Cell;
use std::task::Waker;

use evloop_reactor::EventLoop;

const NIL: u32 = u32::MAX;

/// A waiter's place in a [`WaitList`]; only the future that pushed it uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key(u32);

#[derive(Debug)]
enum State {
    /// Linked into the list, waiting for a wake-up.
    Waiting(Waker),
    /// Woken and unlinked; the slot waits for its future to collect the wake-up.
    Notified,
    /// On the free list.
    Free,
}

#[derive(Debug)]
struct Slot {
    prev: u32,
    /// The next waiter in FIFO order, or the next free slot.
    next: u32,
    state: State,
}

/// Waiting tasks in arrival order.
#[derive(Debug)]
pub(crate) struct WaitList {
    slots: Vec<Slot>,
    head: u32,
    tail: u32,
    free: u32,
    waiting: usize,
}

impl Default for WaitList {
    fn default() -> WaitList {
        WaitList::new()
    }
}

impl WaitList {
    pub(crate) const fn new() -> WaitList {
        WaitList {
            slots: Vec::new(),
            head: NIL,
            tail: NIL,
            free: NIL,
            waiting: 0,
        }
    }

    /// How many waiters are still waiting (woken ones not counted).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.waiting
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    /// Appends a waiter woken through `waker`.
    #[inline]
    pub(crate) fn push(&mut self, waker: &Waker) -> Key {
        let state = State::Waiting(waker.clone());
        let index = if self.free == NIL {
            let index = u32::try_from(self.slots.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("fewer than 2^32 - 1 waiters");
            self.slots.push(Slot {
                prev: self.tail,
                next: NIL,
                state,
            });
            index
        } else {
            let index = self.free;
            let slot = &mut self.slots[index as usize];
            self.free = slot.next;
            *slot = Slot {
                prev: self.tail,
                next: NIL,
                state,
            };
            index
        };
        match self.tail {
            NIL => self.head = index,
            tail => self.slots[tail as usize].next = index,
        }
        self.tail = index;
        self.waiting += 1;
        Key(index)
    }

    /// Wakes the first waiter: unlinks it, marks it notified and returns its waker, which the
    /// caller wakes once it no longer borrows the primitive's state.
    #[inline]
    pub(crate) fn notify_first(&mut self) -> Option<Waker> {
        let index = self.head;
        if index == NIL {
            return None;
        }
        self.unlink(index);
        match std::mem::replace(&mut self.slots[index as usize].state, State::Notified) {
            State::Waiting(waker) => Some(waker),
            other => unreachable!("a linked slot is waiting, not {other:?}"),
        }
    }

    /// For a waiter's poll: true (and the slot is released) if it has been woken; otherwise the
    /// waker is refreshed if the task's changed, and false.
    #[inline]
    pub(crate) fn take_notified(&mut self, key: Key, waker: &Waker) -> bool {
        let slot = &mut self.slots[key.0 as usize];
        match &mut slot.state {
            State::Notified => {
                self.release(key.0);
                true
            }
            State::Waiting(current) => {
                if !current.will_wake(waker) {
                    current.clone_from(waker);
                }
                false
            }
            State::Free => unreachable!("a waiter's key outlived its slot"),
        }
    }

    /// For a waiter's drop: releases its slot and tells whether it had been woken (a wake-up
    /// it never used, which the caller passes on).
    #[inline]
    pub(crate) fn remove(&mut self, key: Key) -> bool {
        let notified = match self.slots[key.0 as usize].state {
            State::Notified => true,
            State::Waiting(_) => {
                self.unlink(key.0);
                false
            }
            State::Free => unreachable!("a waiter's key outlived its slot"),
        };
        self.release(key.0);
        notified
    }

    #[inline]
    fn unlink(&mut self, index: u32) {
        let Slot { prev, next, .. } = self.slots[index as usize];
        match prev {
            NIL => self.head = next,
            prev => self.slots[prev as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            next => self.slots[next as usize].prev = prev,
        }
        self.waiting -= 1;
    }

    #[inline]
    fn release(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        slot.state = State::Free;
        slot.next = self.free;
        self.free = index;
    }
}

/// Wakes up to `n` waiters of the list `list` borrows out of the primitive's state, one at a
/// time, never waking while the state is borrowed (a waker may run arbitrary code).
pub(crate) fn notify_n<S>(
    state: &std::cell::RefCell<S>,
    list: impl Fn(&mut S) -> &mut WaitList,
    n: usize,
) {
    for _ in 0..n {
        let Some(waker) = list(&mut state.borrow_mut()).notify_first() else {
            return;
        };
        waker.wake();
    }
}

/// The loop a primitive belongs to: asyncio's `_LoopBoundMixin`, checked where asyncio checks it
/// (when a waiter is about to wait). Outside any evloop loop (another executor) nothing is bound.
#[derive(Debug, Default)]
pub(crate) struct LoopBinding(Cell<u64>);

impl LoopBinding {
    /// Binds to the running loop on first use.
    ///
    /// # Panics
    ///
    /// When the primitive was first used on another loop (asyncio's RuntimeError
    /// "... is bound to a different event loop").
    #[inline]
    pub(crate) fn check(&self, what: &str) {
        let running = EventLoop::running_id();
        if running == 0 {
            return;
        }
        match self.0.get() {
            0 => self.0.set(running),
            bound if bound == running => {}
            _ => panic!("{what} is bound to a different event loop"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evloop_test_support::counting_waker;

    #[test]
    fn wakes_in_arrival_order_and_skips_removed_waiters() {
        let mut list = WaitList::new();
        let wakers: Vec<_> = (0..4).map(|_| counting_waker()).collect();
        let keys: Vec<_> = wakers.iter().map(|(_, w)| list.push(w)).collect();
        assert!(!list.remove(keys[1]));
        assert_eq!(list.len(), 3);
        for expected in [0, 2, 3] {
            list.notify_first().unwrap().wake();
            assert_eq!(wakers[expected].0.get(), 1);
        }
        assert!(list.notify_first().is_none());
        assert!(list.is_empty());
        // Woken slots stay until collected or removed, and say they were woken.
        assert!(list.take_notified(keys[0], &wakers[0].1));
        assert!(list.remove(keys[2]));
        assert!(list.remove(keys[3]));
    }

    #[test]
    fn slots_are_reused_and_order_survives_reuse() {
        let mut list = WaitList::new();
        let (_, w) = counting_waker();
        let a = list.push(&w);
        let b = list.push(&w);
        assert!(!list.remove(a));
        let c = list.push(&w);
        assert_eq!(c, a, "the freed slot is reused");
        assert_eq!(list.slots.len(), 2);
        // b arrived before c even though c sits in the lower slot.
        list.notify_first().unwrap();
        assert!(list.take_notified(b, &w));
        assert!(!list.take_notified(c, &w));
    }

    #[test]
    fn a_waiting_poll_refreshes_a_changed_waker() {
        let mut list = WaitList::new();
        let (old_count, old) = counting_waker();
        let (new_count, new) = counting_waker();
        let key = list.push(&old);
        assert!(!list.take_notified(key, &new));
        list.notify_first().unwrap().wake();
        assert_eq!(old_count.get(), 0);
        assert_eq!(new_count.get(), 1);
        assert!(list.take_notified(key, &new));
    }
}
