//! The loop's table of registered I/O sources and the dispatch of mio's readiness events.
//!
//! Every source registered with the loop's `mio::Poll` gets a slot in a slab; the slot's index is
//! its mio `Token`. A slot holds one of two kinds of source:
//!
//! - an [`ScheduledIo`]: the readiness of an async socket or pipe, with one waker per direction.
//!   An event sets readiness bits, bumps the source's tick and wakes exactly the task waiting on
//!   the direction that became ready;
//! - an [`FdCallbacks`](super::fd::FdCallbacks): asyncio-style reader/writer callbacks
//!   (`add_reader`), whose events are turned into callbacks on the ready queue.
//!
//! The tick (tokio's idea) makes clearing readiness safe: a task clears readiness only with the
//! tick it observed, so readiness that a newer poll delivered is never wiped out by a task acting
//! on an older observation, and a waiter never sleeps through an event.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use mio::Token;
use mio::event::Event;

use super::fd::FdCallbacks;

/// The source can be read (or accept).
pub(crate) const READABLE: u8 = 1;
/// The source can be written.
pub(crate) const WRITABLE: u8 = 2;
/// The peer will send nothing more (EOF, hang-up).
pub(crate) const READ_CLOSED: u8 = 4;
/// The peer will accept nothing more.
pub(crate) const WRITE_CLOSED: u8 = 8;
/// An error is pending on the source; both directions should try their operation to see it.
pub(crate) const ERROR: u8 = 16;

/// One direction of interest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    /// The bits that make an operation in this direction worth trying.
    fn mask(self) -> u8 {
        match self {
            Direction::Read => READABLE | READ_CLOSED | ERROR,
            Direction::Write => WRITABLE | WRITE_CLOSED | ERROR,
        }
    }

    /// The bit that a `WouldBlock` clears (closed and error bits are sticky).
    fn clearable(self) -> u8 {
        match self {
            Direction::Read => READABLE,
            Direction::Write => WRITABLE,
        }
    }
}

/// Readiness bits from a mio event.
pub(crate) fn event_bits(event: &Event) -> u8 {
    let mut bits = 0;
    if event.is_readable() {
        bits |= READABLE;
    }
    if event.is_writable() {
        bits |= WRITABLE;
    }
    if event.is_read_closed() {
        bits |= READ_CLOSED;
    }
    if event.is_write_closed() {
        bits |= WRITE_CLOSED;
    }
    if event.is_error() {
        bits |= ERROR;
    }
    bits
}

/// What a task saw when it found its direction ready: the bits and the tick they belong to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyEvent {
    pub(crate) tick: u32,
    pub(crate) bits: u8,
}

/// The readiness state of one async source.
#[derive(Default)]
pub(crate) struct ScheduledIo {
    readiness: Cell<u8>,
    /// Bumped by every event for this source.
    tick: Cell<u32>,
    reader: Cell<Option<Waker>>,
    writer: Cell<Option<Waker>>,
    /// Run once, the first time the peer is seen to be gone (or when the source is dropped):
    /// how a subprocess learns that its pipes are disconnected.
    on_disconnect: Cell<Option<Box<dyn FnOnce()>>>,
}

impl ScheduledIo {
    /// Applies an event: sets its bits, bumps the tick, wakes the waiters of the directions that
    /// became ready (and only those).
    pub(crate) fn dispatch(&self, bits: u8) {
        self.readiness.set(self.readiness.get() | bits);
        self.tick.set(self.tick.get().wrapping_add(1));
        if bits & Direction::Read.mask() != 0 {
            if let Some(waker) = self.reader.take() {
                waker.wake();
            }
        }
        if bits & Direction::Write.mask() != 0 {
            if let Some(waker) = self.writer.take() {
                waker.wake();
            }
        }
        if bits & (READ_CLOSED | WRITE_CLOSED | ERROR) != 0 {
            self.disconnected();
        }
    }

    /// Runs the disconnect hook, if it has not run yet.
    pub(crate) fn disconnected(&self) {
        if let Some(hook) = self.on_disconnect.take() {
            hook();
        }
    }

    /// Sets the hook run when the peer is first seen gone.
    pub(crate) fn set_on_disconnect(&self, hook: Box<dyn FnOnce()>) {
        self.on_disconnect.set(Some(hook));
    }

    /// Ready in `dir`? If not, stores the task's waker for that direction (replacing the previous
    /// waiter's: one waiter per direction, as for any async I/O object).
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<ReadyEvent> {
        let bits = self.readiness.get() & dir.mask();
        if bits != 0 {
            return Poll::Ready(ReadyEvent {
                tick: self.tick.get(),
                bits,
            });
        }
        let slot = match dir {
            Direction::Read => &self.reader,
            Direction::Write => &self.writer,
        };
        let waker = match slot.take() {
            // Re-polled by the same task: keep the waker, no clone.
            Some(old) if old.will_wake(cx.waker()) => old,
            _ => cx.waker().clone(),
        };
        slot.set(Some(waker));
        Poll::Pending
    }

    /// The operation hit `WouldBlock`: forget the readiness it acted on, unless a newer event
    /// (another tick) has arrived since it was observed.
    pub(crate) fn clear_readiness(&self, event: ReadyEvent, dir: Direction) {
        if self.tick.get() == event.tick {
            self.readiness
                .set(self.readiness.get() & !(event.bits & dir.clearable()));
        }
    }

    /// The current readiness bits (for tests).
    #[cfg(test)]
    pub(crate) fn readiness(&self) -> u8 {
        self.readiness.get()
    }

    /// Wakes both waiters (the loop is closing, or the source is being torn down).
    pub(crate) fn wake_all(&self) {
        if let Some(waker) = self.reader.take() {
            waker.wake();
        }
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
    }
}

/// A source whose events are handled at once, on the loop thread, while the loop dispatches
/// the poll's events: a transport, which reads and calls its protocol without waking a task or
/// queueing a handle (uvloop's model, and why the transport level is the fast path).
pub(crate) trait ReadyHandler {
    /// The source has these readiness bits. May run user code (the handler catches its panics).
    fn on_ready(&self, bits: u8);
    /// The loop is closing: release the source and whatever it holds (the protocol).
    fn on_loop_closed(&self);
}

/// A registered source.
pub(crate) enum Entry {
    Io(Rc<ScheduledIo>),
    Callbacks(Rc<FdCallbacks>),
    Direct(Rc<dyn ReadyHandler>),
}

/// The slab of registered sources, indexed by token.
#[derive(Default)]
pub(crate) struct Registry {
    slots: RefCell<Vec<Option<Entry>>>,
    /// Free slot indexes, reused most recent first.
    free: RefCell<Vec<usize>>,
    live: Cell<usize>,
}

impl Registry {
    /// Takes a slot for `entry`, returning its token.
    pub(crate) fn insert(&self, entry: Entry) -> Token {
        self.live.set(self.live.get() + 1);
        let mut slots = self.slots.borrow_mut();
        if let Some(index) = self.free.borrow_mut().pop() {
            slots[index] = Some(entry);
            Token(index)
        } else {
            slots.push(Some(entry));
            Token(slots.len() - 1)
        }
    }

    /// Frees the slot of `token`, returning what was there.
    pub(crate) fn remove(&self, token: Token) -> Option<Entry> {
        let taken = self.slots.borrow_mut().get_mut(token.0)?.take();
        if taken.is_some() {
            self.free.borrow_mut().push(token.0);
            self.live.set(self.live.get() - 1);
        }
        taken
    }

    /// The fd callbacks registered under `token`, if that is what is there.
    pub(crate) fn callbacks(&self, token: Token) -> Option<Rc<FdCallbacks>> {
        match self.slots.borrow().get(token.0) {
            Some(Some(Entry::Callbacks(cb))) => Some(cb.clone()),
            _ => None,
        }
    }

    /// How many sources are registered.
    pub(crate) fn len(&self) -> usize {
        self.live.get()
    }

    /// Routes one event to its source. Wakers only queue tasks and fd callbacks are queued as
    /// handles; a direct handler (a transport) runs its protocol's callbacks here, with no borrow
    /// of the table held.
    pub(crate) fn dispatch(&self, token: Token, bits: u8, lp: &crate::EventLoop) {
        let entry = match self.slots.borrow().get(token.0) {
            Some(Some(Entry::Io(io))) => Entry::Io(io.clone()),
            Some(Some(Entry::Callbacks(cb))) => Entry::Callbacks(cb.clone()),
            Some(Some(Entry::Direct(handler))) => Entry::Direct(handler.clone()),
            // Deregistered since the poll: a stale event.
            _ => return,
        };
        match entry {
            Entry::Io(io) => io.dispatch(bits),
            Entry::Callbacks(cb) => cb.dispatch(bits, lp),
            Entry::Direct(handler) => handler.on_ready(bits),
        }
    }

    /// Empties the table (the loop is closing): waiters are woken so that they see the closed
    /// loop, and callbacks are dropped.
    pub(crate) fn clear(&self) -> Vec<Entry> {
        let taken: Vec<Entry> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        self.free.borrow_mut().clear();
        self.slots.borrow_mut().clear();
        self.live.set(0);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evloop_test_support::counting_waker;

    #[test]
    fn readiness_wakes_only_the_waiter_of_that_direction() {
        let io = ScheduledIo::default();
        let (reads, read_waker) = counting_waker();
        let (writes, write_waker) = counting_waker();
        assert!(
            io.poll_ready(&mut Context::from_waker(&read_waker), Direction::Read)
                .is_pending()
        );
        assert!(
            io.poll_ready(&mut Context::from_waker(&write_waker), Direction::Write)
                .is_pending()
        );
        io.dispatch(READABLE);
        assert_eq!(reads.get(), 1);
        assert_eq!(writes.get(), 0);
        io.dispatch(WRITABLE);
        assert_eq!(writes.get(), 1);
        assert_eq!(reads.get(), 1, "the reader was not woken twice");
    }

    #[test]
    fn stale_tick_does_not_clear_newer_readiness() {
        let io = ScheduledIo::default();
        let (_count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        io.dispatch(READABLE);
        let Poll::Ready(seen) = io.poll_ready(&mut cx, Direction::Read) else {
            panic!("readable")
        };
        // A newer poll delivers readiness again before the task acts on what it saw.
        io.dispatch(READABLE);
        io.clear_readiness(seen, Direction::Read);
        assert!(io.poll_ready(&mut cx, Direction::Read).is_ready());
        // With the current tick, the clear takes effect.
        let Poll::Ready(seen) = io.poll_ready(&mut cx, Direction::Read) else {
            panic!("readable")
        };
        io.clear_readiness(seen, Direction::Read);
        assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());
    }

    #[test]
    fn closed_bits_are_sticky_and_fire_the_disconnect_hook_once() {
        let io = ScheduledIo::default();
        let hits = Rc::new(Cell::new(0));
        let h = hits.clone();
        io.set_on_disconnect(Box::new(move || h.set(h.get() + 1)));
        io.dispatch(READ_CLOSED | READABLE);
        io.dispatch(READ_CLOSED);
        assert_eq!(hits.get(), 1);
        let (_count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let Poll::Ready(seen) = io.poll_ready(&mut cx, Direction::Read) else {
            panic!("ready")
        };
        io.clear_readiness(seen, Direction::Read);
        assert_eq!(io.readiness() & READ_CLOSED, READ_CLOSED);
        assert!(io.poll_ready(&mut cx, Direction::Read).is_ready());
    }

    #[test]
    fn slots_are_reused() {
        let reg = Registry::default();
        let a = reg.insert(Entry::Io(Rc::default()));
        let b = reg.insert(Entry::Io(Rc::default()));
        assert_ne!(a, b);
        assert!(reg.remove(a).is_some());
        assert!(reg.remove(a).is_none());
        assert_eq!(reg.insert(Entry::Io(Rc::default())), a);
        assert_eq!(reg.len(), 2);
    }
}
