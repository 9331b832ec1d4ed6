//! Where a transport keeps its protocol: calls into it catch panics and never re-enter it.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::Panic;

/// The protocol slot of a transport (`P` is `dyn Protocol` or `dyn DatagramProtocol`).
pub(crate) struct ProtocolCell<P: ?Sized> {
    slot: RefCell<Option<Box<P>>>,
}

/// What a call into the protocol came to.
pub(crate) enum Called<R> {
    Done(R),
    Panicked(Panic),
    /// No protocol (the connection was lost), or the protocol is in a callback already.
    Skipped,
}

impl<P: ?Sized> ProtocolCell<P> {
    pub(crate) fn new(protocol: Box<P>) -> ProtocolCell<P> {
        ProtocolCell {
            slot: RefCell::new(Some(protocol)),
        }
    }

    /// Calls `f` with the protocol, catching a panic.
    pub(crate) fn call<R>(&self, f: impl FnOnce(&mut P) -> R) -> Called<R> {
        let Ok(mut slot) = self.slot.try_borrow_mut() else {
            return Called::Skipped;
        };
        let Some(protocol) = slot.as_mut() else {
            return Called::Skipped;
        };
        match catch_unwind(AssertUnwindSafe(|| f(protocol))) {
            Ok(value) => Called::Done(value),
            Err(payload) => Called::Panicked(Panic::from_payload(payload)),
        }
    }

    /// Whether a callback of the protocol is running now.
    pub(crate) fn is_busy(&self) -> bool {
        self.slot.try_borrow_mut().is_err()
    }

    /// Takes the protocol out (after `connection_lost`, which breaks the transport-protocol
    /// cycle); `None` if it is gone or busy.
    pub(crate) fn take(&self) -> Option<Box<P>> {
        self.slot.try_borrow_mut().ok()?.take()
    }

    /// Puts `protocol` in, returning the previous one; refused while a callback runs.
    pub(crate) fn replace(&self, protocol: Box<P>) -> Result<Option<Box<P>>, Box<P>> {
        match self.slot.try_borrow_mut() {
            Ok(mut slot) => Ok(slot.replace(protocol)),
            Err(_) => Err(protocol),
        }
    }
}
