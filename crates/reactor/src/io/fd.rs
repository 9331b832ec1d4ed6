//! asyncio's low-level fd API: `add_reader`, `remove_reader`, `add_writer`, `remove_writer`.
//!
//! asyncio's selectors are level-triggered: a reader callback is called on every iteration for
//! as long as its fd stays readable. mio (epoll with `EPOLLET`) reports only edges, so each fd is
//! re-armed after every callback call with `EPOLL_CTL_MOD` (mio's `reregister`): the kernel then
//! checks the fd's readiness afresh and, if it is still ready, reports it again on the next poll.
//! The cost is one `epoll_ctl` per callback call, the same as a poll of one more fd; the gain is
//! that a callback that reads only part of the data is called again, exactly as in asyncio.
//!
//! A readiness event is turned into a callback on the ready queue, like asyncio's
//! `_process_events`. The queued entry remembers which callback it was queued for: a callback
//! removed or replaced before its turn does not run (the replacement gets its own event).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use mio::unix::SourceFd;
use mio::{Interest, Token};

use super::registry::{Direction, ERROR, Entry, READ_CLOSED, READABLE, WRITABLE, WRITE_CLOSED};
use crate::{EventLoop, LoopError};

type Callback = Rc<RefCell<dyn FnMut()>>;

/// The error every I/O entry point gives on a closed loop: asyncio's "Event loop is closed",
/// inside an `io::Error` so that I/O functions keep one error type.
pub(crate) fn closed_error() -> io::Error {
    io::Error::other(LoopError::Closed)
}

/// The callbacks registered for one fd.
pub(crate) struct FdCallbacks {
    fd: RawFd,
    token: Cell<Token>,
    reader: RefCell<Option<Callback>>,
    writer: RefCell<Option<Callback>>,
    read_pending: Cell<bool>,
    write_pending: Cell<bool>,
    registered: Cell<bool>,
}

impl FdCallbacks {
    fn new(fd: RawFd) -> FdCallbacks {
        FdCallbacks {
            fd,
            token: Cell::new(Token(0)),
            reader: RefCell::new(None),
            writer: RefCell::new(None),
            read_pending: Cell::new(false),
            write_pending: Cell::new(false),
            registered: Cell::new(false),
        }
    }

    fn slot(&self, dir: Direction) -> &RefCell<Option<Callback>> {
        match dir {
            Direction::Read => &self.reader,
            Direction::Write => &self.writer,
        }
    }

    fn pending(&self, dir: Direction) -> &Cell<bool> {
        match dir {
            Direction::Read => &self.read_pending,
            Direction::Write => &self.write_pending,
        }
    }

    fn interest(&self) -> Option<Interest> {
        let read = self.reader.borrow().is_some().then_some(Interest::READABLE);
        let write = self.writer.borrow().is_some().then_some(Interest::WRITABLE);
        match (read, write) {
            (Some(r), Some(w)) => Some(r | w),
            (r, w) => r.or(w),
        }
    }

    /// An event for this fd: queue the callback of each direction it concerns (once: a callback
    /// already queued is not queued again).
    pub(crate) fn dispatch(self: &Rc<Self>, bits: u8, lp: &EventLoop) {
        // As asyncio's epoll selector does, an error or hang-up counts for both directions.
        if bits & (READABLE | READ_CLOSED | ERROR) != 0 {
            self.queue(Direction::Read, lp);
        }
        if bits & (WRITABLE | WRITE_CLOSED | ERROR) != 0 {
            self.queue(Direction::Write, lp);
        }
    }

    fn queue(self: &Rc<Self>, dir: Direction, lp: &EventLoop) {
        if self.pending(dir).get() {
            return;
        }
        let Some(callback) = self.slot(dir).borrow().clone() else {
            return;
        };
        self.pending(dir).set(true);
        let this = self.clone();
        let on_loop = lp.clone();
        // The loop is running (it is dispatching), so it is not closed.
        let _ = lp.call_soon(move || this.run(dir, &callback, &on_loop));
    }

    fn run(&self, dir: Direction, callback: &Callback, lp: &EventLoop) {
        self.pending(dir).set(false);
        // Re-arm however the call ends, a panic included: the callback stays registered, so it
        // must keep being called while the fd is ready (level-triggered).
        let _rearm = Rearm { this: self, lp };
        let current = self.slot(dir).borrow().clone();
        if current.is_some_and(|current| Rc::ptr_eq(&current, callback)) {
            (callback.borrow_mut())();
        }
    }

    /// Asks epoll to report the fd again if it is (still) ready.
    fn rearm(&self, lp: &EventLoop) {
        if !self.registered.get() {
            return;
        }
        if let Some(interest) = self.interest() {
            // The fd may have been closed under us; epoll forgot it then, and so do we.
            let _ = lp.with_mio(|mio| {
                mio.reregister(&mut SourceFd(&self.fd), self.token.get(), interest)
            });
        }
    }
}

struct Rearm<'a> {
    this: &'a FdCallbacks,
    lp: &'a EventLoop,
}

impl Drop for Rearm<'_> {
    fn drop(&mut self) {
        self.this.rearm(self.lp);
    }
}

impl EventLoop {
    /// Calls `callback` whenever `fd` is readable, until [`remove_reader`](EventLoop::remove_reader)
    /// (asyncio's `add_reader`). A second call for the same fd replaces the callback.
    ///
    /// Level-triggered, as in asyncio: the callback is called again on every iteration while the
    /// fd stays readable. The loop does not own `fd`; remove the reader before closing it.
    /// Fails with "Event loop is closed" on a closed loop, or with the OS error if the fd cannot
    /// be watched (a regular file, say).
    ///
    /// ```
    /// use evloop_reactor::EventLoop;
    /// use std::io::{Read, Write};
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    ///
    /// let lp = EventLoop::new()?;
    /// let (mut a, b) = UnixStream::pair()?;
    /// b.set_nonblocking(true)?;
    /// let fd = b.as_raw_fd();
    /// let stopper = lp.clone();
    /// lp.add_reader(fd, move || {
    ///     let mut buf = [0; 16];
    ///     let n = (&b).read(&mut buf).unwrap();
    ///     assert_eq!(&buf[..n], b"ping");
    ///     stopper.stop();
    /// })?;
    /// a.write_all(b"ping")?;
    /// lp.run_forever()?;
    /// assert!(lp.remove_reader(fd));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_reader(&self, fd: RawFd, callback: impl FnMut() + 'static) -> io::Result<()> {
        self.add_fd_callback(fd, Direction::Read, Rc::new(RefCell::new(callback)))
    }

    /// Calls `callback` whenever `fd` is writable, until [`remove_writer`](EventLoop::remove_writer)
    /// (asyncio's `add_writer`). Otherwise as [`add_reader`](EventLoop::add_reader).
    ///
    /// ```
    /// use evloop_reactor::EventLoop;
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    ///
    /// let lp = EventLoop::new()?;
    /// let (a, _b) = UnixStream::pair()?;
    /// let fd = a.as_raw_fd();
    /// let stopper = lp.clone();
    /// lp.add_writer(fd, move || stopper.stop())?;
    /// lp.run_forever()?;
    /// assert!(lp.remove_writer(fd));
    /// assert!(!lp.remove_writer(fd));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_writer(&self, fd: RawFd, callback: impl FnMut() + 'static) -> io::Result<()> {
        self.add_fd_callback(fd, Direction::Write, Rc::new(RefCell::new(callback)))
    }

    /// Stops watching `fd` for reading (asyncio's `remove_reader`). Returns whether a reader was
    /// registered; `false` on a closed loop. A call that was already queued does not run.
    ///
    /// ```
    /// let lp = evloop_reactor::EventLoop::new().unwrap();
    /// assert!(!lp.remove_reader(0));
    /// ```
    pub fn remove_reader(&self, fd: RawFd) -> bool {
        self.remove_fd_callback(fd, Direction::Read)
    }

    /// Stops watching `fd` for writing (asyncio's `remove_writer`). Returns whether a writer was
    /// registered; `false` on a closed loop.
    ///
    /// ```
    /// let lp = evloop_reactor::EventLoop::new().unwrap();
    /// lp.close().unwrap();
    /// assert!(!lp.remove_writer(1));
    /// ```
    pub fn remove_writer(&self, fd: RawFd) -> bool {
        self.remove_fd_callback(fd, Direction::Write)
    }

    fn add_fd_callback(&self, fd: RawFd, dir: Direction, callback: Callback) -> io::Result<()> {
        if self.is_closed() {
            return Err(closed_error());
        }
        let existing = self.io().fds.borrow().get(&fd).copied();
        if let Some(token) = existing {
            let entry = self
                .io()
                .registry
                .callbacks(token)
                .expect("fd map and slab agree");
            let old = entry.slot(dir).replace(Some(callback));
            let interest = entry.interest().expect("a callback was just set");
            let result = self.with_mio(|mio| mio.reregister(&mut SourceFd(&fd), token, interest));
            drop(old);
            return result;
        }
        let entry = Rc::new(FdCallbacks::new(fd));
        *entry.slot(dir).borrow_mut() = Some(callback);
        self.register_callbacks(entry, Some(fd))?;
        Ok(())
    }

    /// Registers `entry` and returns its token; with `user_fd`, it is also found by fd.
    fn register_callbacks(
        &self,
        entry: Rc<FdCallbacks>,
        user_fd: Option<RawFd>,
    ) -> io::Result<Token> {
        let fd = entry.fd;
        let interest = entry.interest().expect("a callback is set");
        let token = self.io().registry.insert(Entry::Callbacks(entry.clone()));
        entry.token.set(token);
        if let Err(error) = self.with_mio(|mio| mio.register(&mut SourceFd(&fd), token, interest)) {
            self.io().registry.remove(token);
            return Err(error);
        }
        entry.registered.set(true);
        if let Some(fd) = user_fd {
            self.io().fds.borrow_mut().insert(fd, token);
        }
        Ok(token)
    }

    fn remove_fd_callback(&self, fd: RawFd, dir: Direction) -> bool {
        if self.is_closed() {
            return false;
        }
        let Some(token) = self.io().fds.borrow().get(&fd).copied() else {
            return false;
        };
        let entry = self
            .io()
            .registry
            .callbacks(token)
            .expect("fd map and slab agree");
        let old = entry.slot(dir).borrow_mut().take();
        if old.is_none() {
            return false;
        }
        match entry.interest() {
            Some(interest) => {
                let _ = self.with_mio(|mio| mio.reregister(&mut SourceFd(&fd), token, interest));
            }
            None => {
                self.io().fds.borrow_mut().remove(&fd);
                self.unregister_callbacks(&entry);
            }
        }
        // Dropped last, with no borrow held: its destructor may call into the loop.
        drop(old);
        true
    }

    fn unregister_callbacks(&self, entry: &FdCallbacks) {
        if entry.registered.replace(false) {
            // The fd may already be closed, and epoll then forgot it by itself.
            let _ = self.with_mio(|mio| mio.deregister(&mut SourceFd(&entry.fd)));
            self.io().registry.remove(entry.token.get());
        }
    }

    /// A reader callback for the loop's own use (the signal pipe, a pidfd): not visible to
    /// `remove_reader`. Returns the token to pass to [`remove_internal_reader`].
    ///
    /// [`remove_internal_reader`]: EventLoop::remove_internal_reader
    pub(crate) fn add_internal_reader(
        &self,
        fd: RawFd,
        callback: impl FnMut() + 'static,
    ) -> io::Result<Token> {
        if self.is_closed() {
            return Err(closed_error());
        }
        let entry = Rc::new(FdCallbacks::new(fd));
        *entry.reader.borrow_mut() = Some(Rc::new(RefCell::new(callback)));
        self.register_callbacks(entry, None)
    }

    /// Removes a reader added with `add_internal_reader`; safe to call from inside it.
    pub(crate) fn remove_internal_reader(&self, token: Token) {
        if let Some(entry) = self.io().registry.callbacks(token) {
            let old = entry.reader.borrow_mut().take();
            self.unregister_callbacks(&entry);
            drop(old);
        }
    }
}
