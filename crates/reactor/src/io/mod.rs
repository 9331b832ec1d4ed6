//! I/O on the loop: the registry of sources, asyncio's fd callbacks and the async-source plumbing
//! that sockets, pipes, signals and subprocesses are built on.
//!
//! mio is edge-triggered: an event says "this became ready", once. Async sources live with that
//! directly (a task retries its operation until `WouldBlock`, then waits for the next edge).
//! asyncio's fd callbacks (`add_reader`) are level-triggered instead: a callback is called again
//! on every iteration while its fd stays ready. [`fd`] emulates that by re-arming the fd after each
//! call (see its doc).

pub(crate) mod evented;
pub(crate) mod fd;
pub(crate) mod registry;

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::RawFd;

use mio::Token;
use mio::event::Event;

use crate::EventLoop;
use registry::{Entry, Registry, event_bits};

/// Everything I/O the loop owns: the source table and the fd-to-token map of `add_reader`.
#[derive(Default)]
pub(crate) struct IoState {
    pub(crate) registry: Registry,
    /// fds with asyncio-style callbacks, by fd.
    pub(crate) fds: RefCell<HashMap<RawFd, Token>>,
}

impl IoState {
    pub(crate) fn dispatch(&self, event: &Event, lp: &EventLoop) {
        self.registry.dispatch(event.token(), event_bits(event), lp);
    }

    /// The loop is closing: empties the registry and hands back every registration, for the
    /// caller to wake its waiters and drop its callbacks with no borrow held (a destructor may
    /// call back into the loop, or panic).
    pub(crate) fn close(&self) -> Vec<Entry> {
        self.fds.borrow_mut().clear();
        self.registry.clear()
    }
}
