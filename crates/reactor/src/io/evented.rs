//! An async source: a mio source registered with a loop, plus its readiness.
//!
//! Sockets and pipes are thin wrappers over [`PollEvented`]: an operation is tried; on
//! `WouldBlock` the readiness it acted on is cleared (with its tick) and the task waits for the
//! next event of that direction.

use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use mio::event::Source;
use mio::{Interest, Token};

use super::fd::closed_error;
use super::registry::{Direction, Entry, ScheduledIo};
use crate::{EventLoop, get_running_loop};

/// A mio source registered with a loop.
pub(crate) struct PollEvented<S: Source> {
    io: Option<S>,
    lp: EventLoop,
    token: Token,
    sched: Rc<ScheduledIo>,
}

impl<S: Source> PollEvented<S> {
    /// Registers `io` with the running loop ("no running event loop" otherwise).
    pub(crate) fn new(io: S, interest: Interest) -> io::Result<PollEvented<S>> {
        let lp = get_running_loop().map_err(io::Error::other)?;
        PollEvented::new_on(&lp, io, interest)
    }

    /// Registers `io` with `lp`.
    pub(crate) fn new_on(
        lp: &EventLoop,
        mut io: S,
        interest: Interest,
    ) -> io::Result<PollEvented<S>> {
        if lp.is_closed() {
            return Err(closed_error());
        }
        let sched = Rc::new(ScheduledIo::default());
        let token = lp.io().registry.insert(Entry::Io(sched.clone()));
        if let Err(error) = lp.with_mio(|mio| mio.register(&mut io, token, interest)) {
            lp.io().registry.remove(token);
            return Err(error);
        }
        Ok(PollEvented {
            io: Some(io),
            lp: lp.clone(),
            token,
            sched,
        })
    }

    /// Deregisters the source and hands it back (a connected socket becoming a transport).
    pub(crate) fn into_inner(mut self) -> S {
        let mut io = self.io.take().expect("present until drop");
        self.unregister(&mut io);
        io
    }

    pub(crate) fn get_ref(&self) -> &S {
        self.io.as_ref().expect("present until drop")
    }

    pub(crate) fn event_loop(&self) -> &EventLoop {
        &self.lp
    }

    pub(crate) fn scheduled(&self) -> &ScheduledIo {
        &self.sched
    }

    /// Waits until `dir` is ready (or the loop is closed).
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
    ) -> Poll<io::Result<super::registry::ReadyEvent>> {
        if self.lp.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        self.sched.poll_ready(cx, dir).map(Ok)
    }

    /// Runs `op` until it does not block: the pattern of every async operation.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let event = ready!(self.poll_ready(cx, dir))?;
            match op(self.get_ref()) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.sched.clear_readiness(event, dir);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }

    /// [`poll_io`](PollEvented::poll_io) for a stream read or write of `len` bytes: a transfer
    /// shorter than asked means the kernel buffer was drained (read) or filled (write), so the
    /// readiness is cleared right away. That saves the `WouldBlock` syscall that would
    /// otherwise follow every short transfer (tokio does the same); with the tick, a newer event
    /// is never cleared by it.
    pub(crate) fn poll_stream(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        len: usize,
        mut op: impl FnMut(&S) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let event = ready!(self.poll_ready(cx, dir))?;
            match op(self.get_ref()) {
                Ok(n) if n > 0 && n < len => {
                    self.sched.clear_readiness(event, dir);
                    return Poll::Ready(Ok(n));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.sched.clear_readiness(event, dir);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }

    fn unregister(&self, io: &mut S) {
        let _ = self.lp.with_mio(|mio| mio.deregister(io));
        // After a close the table is empty and this finds nothing; before, the slot is ours.
        drop(self.lp.io().registry.remove(self.token));
        self.sched.disconnected();
    }
}

impl<S: Source> Drop for PollEvented<S> {
    fn drop(&mut self) {
        if let Some(mut io) = self.io.take() {
            self.unregister(&mut io);
        }
    }
}
