//! The stream transport: a socket (TCP, Unix) or a pipe end, driven by its readiness events.
//!
//! The source is registered edge-triggered for the directions it has. A read event reads into
//! the loop's shared buffer until the kernel has no more (a short read says so), calling
//! `data_received` for each read; after 16 full reads the rest waits for a later iteration, so
//! one busy peer cannot starve the others. `write` sends at once when nothing is buffered, and
//! buffers the rest; a write event flushes the buffer. Because the kernel buffer was full when
//! bytes were buffered, the next write edge is guaranteed, and `resume_reading` schedules one
//! read to pick up what arrived while paused (no edge would report it).

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::{Rc, Weak};

use mio::{Interest, Token};

use super::protocol_cell::{Called, ProtocolCell};
use super::write_buffer::{self, WriteBuffer};
use super::{ExtraInfo, Protocol, SockAddr, Transport, TransportError, TransportImpl};
use crate::io::fd::closed_error;
use crate::io::registry::{
    ERROR, Entry, READ_CLOSED, READABLE, ReadyHandler, WRITABLE, WRITE_CLOSED,
};
use crate::{EventLoop, ExceptionContext, Panic};

/// How much one read asks the kernel for.
const READ_SIZE: usize = 64 * 1024;
/// Full reads per event before the rest is left for a later iteration.
const READS_PER_EVENT: usize = 16;
/// asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const LOST_WRITES_WARNING: u32 = 5;

/// The loop's read buffer, shared by its transports: callbacks run one at a time, so one
/// buffer serves every connection (a per-connection buffer would cost 64 KiB each).
#[derive(Default)]
pub(crate) struct ReadBuffer(RefCell<Vec<u8>>);

impl ReadBuffer {
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut buf = self.0.take();
        if buf.len() < READ_SIZE {
            buf.resize(READ_SIZE, 0);
        }
        buf
    }

    pub(crate) fn put_back(&self, buf: Vec<u8>) {
        *self.0.borrow_mut() = buf;
    }
}

/// What a stream transport needs from its source.
pub(crate) trait StreamIo: mio::event::Source + AsRawFd + 'static {
    /// Whether the source can be read (a socket, a read pipe).
    const READ: bool;
    /// Whether it can be written (a socket, a write pipe).
    const WRITE: bool;
    /// `get_extra_info`'s key for the fd.
    const FD_KEY: &'static str;
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn write_some(&self, buf: &[u8]) -> io::Result<usize>;
    /// Sends EOF: `shutdown(SHUT_WR)` on a socket; `None` for a pipe, which closes instead.
    fn shutdown_write(&self) -> Option<io::Result<()>>;
    fn address(&self, name: &str) -> Option<SockAddr>;
}

fn unix_addr(addr: io::Result<std::os::unix::net::SocketAddr>) -> Option<SockAddr> {
    let addr = addr.ok()?;
    Some(SockAddr::Unix(addr.as_pathname().map(Into::into)))
}

/// A socket stream: read, write, half-close, and its two addresses read with `to_addr`.
macro_rules! socket_stream_io {
    ($ty:ty, $to_addr:expr) => {
        impl StreamIo for $ty {
            const READ: bool = true;
            const WRITE: bool = true;
            const FD_KEY: &'static str = "socket";
            fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
                (&*self).read(buf)
            }
            fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
                (&*self).write(buf)
            }
            fn shutdown_write(&self) -> Option<io::Result<()>> {
                Some(self.shutdown(std::net::Shutdown::Write))
            }
            fn address(&self, name: &str) -> Option<SockAddr> {
                let to_addr = $to_addr;
                match name {
                    "peername" => to_addr(self.peer_addr()),
                    "sockname" => to_addr(self.local_addr()),
                    _ => None,
                }
            }
        }
    };
}

socket_stream_io!(mio::net::TcpStream, |addr: io::Result<
    std::net::SocketAddr,
>| addr.ok().map(SockAddr::Inet));
socket_stream_io!(mio::net::UnixStream, unix_addr);

impl StreamIo for mio::unix::pipe::Receiver {
    const READ: bool = true;
    const WRITE: bool = false;
    const FD_KEY: &'static str = "pipe";
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
    fn write_some(&self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn shutdown_write(&self) -> Option<io::Result<()>> {
        None
    }
    fn address(&self, _: &str) -> Option<SockAddr> {
        None
    }
}

impl StreamIo for mio::unix::pipe::Sender {
    const READ: bool = false;
    const WRITE: bool = true;
    const FD_KEY: &'static str = "pipe";
    fn read_some(&self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn shutdown_write(&self) -> Option<io::Result<()>> {
        None
    }
    fn address(&self, _: &str) -> Option<SockAddr> {
        None
    }
}

/// A copy of an I/O error (the same OS code, or the same kind and text): one copy is reported,
/// the other handed to `connection_lost`.
pub(crate) fn copy_error(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}

/// A stream transport over `S`.
pub(crate) struct SocketTransport<S: StreamIo> {
    lp: EventLoop,
    me: Weak<SocketTransport<S>>,
    io: RefCell<Option<S>>,
    token: Cell<Option<Token>>,
    protocol: ProtocolCell<dyn Protocol>,
    read_buf: Rc<ReadBuffer>,
    wbuf: RefCell<WriteBuffer>,
    high: Cell<usize>,
    low: Cell<usize>,
    /// `close()` or a fatal error: no more reading; the end comes when the buffer is empty.
    closing: Cell<bool>,
    /// `connection_lost` is scheduled or done (asyncio's `_conn_lost`).
    lost: Cell<bool>,
    paused: Cell<bool>,
    peer_eof: Cell<bool>,
    eof_requested: Cell<bool>,
    protocol_paused: Cell<bool>,
    /// `pause_writing` is owed to a protocol that was inside a callback when it became due.
    pause_owed: Cell<bool>,
    read_scheduled: Cell<bool>,
    writes_after_lost: Cell<u32>,
    /// Run after `connection_lost` (a server counts its connections with it).
    on_lost: RefCell<Option<Box<dyn FnOnce()>>>,
}

impl<S: StreamIo> SocketTransport<S> {
    /// Registers `io` with `lp` and gives it `protocol`; `connection_made` is not called yet
    /// (see [`start`](SocketTransport::start)).
    pub(crate) fn register(
        lp: &EventLoop,
        mut io: S,
        protocol: Box<dyn Protocol>,
    ) -> io::Result<Rc<SocketTransport<S>>> {
        if lp.is_closed() {
            return Err(closed_error());
        }
        let this = Rc::new_cyclic(|me| SocketTransport {
            lp: lp.clone(),
            me: me.clone(),
            io: RefCell::new(None),
            token: Cell::new(None),
            protocol: ProtocolCell::new(protocol),
            read_buf: lp.extension::<ReadBuffer>(),
            wbuf: RefCell::new(WriteBuffer::default()),
            high: Cell::new(write_buffer::DEFAULT_HIGH_WATER),
            low: Cell::new(write_buffer::DEFAULT_LOW_WATER),
            closing: Cell::new(false),
            lost: Cell::new(false),
            paused: Cell::new(false),
            peer_eof: Cell::new(false),
            eof_requested: Cell::new(false),
            protocol_paused: Cell::new(false),
            pause_owed: Cell::new(false),
            read_scheduled: Cell::new(false),
            writes_after_lost: Cell::new(0),
            on_lost: RefCell::new(None),
        });
        let interest = match (S::READ, S::WRITE) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (true, false) => Interest::READABLE,
            _ => Interest::WRITABLE,
        };
        let token = lp
            .io()
            .registry
            .insert(Entry::Direct(this.clone() as Rc<dyn ReadyHandler>));
        if let Err(error) = lp.with_mio(|mio| mio.register(&mut io, token, interest)) {
            lp.io().registry.remove(token);
            return Err(error);
        }
        this.token.set(Some(token));
        *this.io.borrow_mut() = Some(io);
        Ok(this)
    }

    /// Calls `connection_made` and returns the transport's handle.
    pub(crate) fn start(self: &Rc<Self>) -> Transport {
        let handle = Transport::new(self.clone());
        self.call_protocol("connection_made", |p| p.connection_made(&handle));
        handle
    }

    /// Sets the hook run after `connection_lost`.
    pub(crate) fn set_on_lost(&self, hook: Box<dyn FnOnce()>) {
        *self.on_lost.borrow_mut() = Some(hook);
    }

    fn with_io<R>(&self, f: impl FnOnce(&S) -> R) -> Option<R> {
        self.io.borrow().as_ref().map(f)
    }

    /// Calls into the protocol; a panic fails the connection. Delivers an owed `pause_writing`
    /// once the callback has returned.
    fn call_protocol<R>(&self, what: &str, f: impl FnOnce(&mut dyn Protocol) -> R) -> Option<R> {
        let out = match self.protocol.call(f) {
            Called::Done(value) => Some(value),
            Called::Panicked(panic) => {
                self.protocol_panicked(what, panic);
                None
            }
            Called::Skipped => None,
        };
        if self.pause_owed.replace(false) && self.protocol_paused.get() {
            self.pause_protocol_now();
        }
        out
    }

    fn pause_protocol_now(&self) {
        if let Called::Panicked(panic) = self.protocol.call(|p| p.pause_writing()) {
            self.protocol_panicked("pause_writing", panic);
        }
    }

    fn protocol_panicked(&self, what: &str, panic: Panic) {
        self.lp.call_exception_handler(
            ExceptionContext::new(format!("Fatal error: protocol.{what}() call failed."))
                .with_exception(panic.clone()),
        );
        self.force_close(Some(io::Error::other(panic)));
    }

    fn reading_active(&self) -> bool {
        !self.closing.get() && !self.paused.get() && !self.peer_eof.get()
    }

    /// Reads what the kernel has. With `to_the_end` (the peer closed, or no edge can be
    /// trusted) reads go on until `WouldBlock` or EOF; otherwise a short read means drained.
    fn read_ready(&self, to_the_end: bool) {
        for _ in 0..READS_PER_EVENT {
            if !self.reading_active() {
                return;
            }
            let mut buf = self.read_buf.take();
            let result = match self.with_io(|io| io.read_some(&mut buf)) {
                Some(result) => result,
                None => return self.read_buf.put_back(buf),
            };
            match result {
                Ok(0) => {
                    self.read_buf.put_back(buf);
                    return self.peer_closed();
                }
                Ok(n) => {
                    self.call_protocol("data_received", |p| p.data_received(&buf[..n]));
                    self.read_buf.put_back(buf);
                    if n < READ_SIZE && !to_the_end {
                        // A short read: the kernel's queue is empty, the next data brings an
                        // edge. (Not so when this edge also said the peer closed: then no
                        // later edge would report the EOF behind the data.)
                        return;
                    }
                }
                Err(error) => {
                    self.read_buf.put_back(buf);
                    match error.kind() {
                        io::ErrorKind::WouldBlock => return,
                        io::ErrorKind::Interrupted => {}
                        _ => {
                            return self.fatal_error(error, "Fatal read error on socket transport");
                        }
                    }
                }
            }
        }
        self.schedule_read();
    }

    /// Reads again on a later iteration: after many full reads, or after `resume_reading`.
    fn schedule_read(&self) {
        if self.read_scheduled.replace(true) {
            return;
        }
        let Some(this) = self.me.upgrade() else {
            return;
        };
        let scheduled = self.lp.call_soon(move || {
            this.read_scheduled.set(false);
            this.read_ready(true);
        });
        if scheduled.is_err() {
            self.read_scheduled.set(false);
        }
    }

    fn peer_closed(&self) {
        self.peer_eof.set(true);
        match self.call_protocol("eof_received", |p| p.eof_received()) {
            Some(true) => {}
            // asyncio: a falsy return (or a protocol already gone) closes the transport.
            Some(false) | None => self.close(),
        }
    }

    fn write_now(&self, data: &[u8]) -> Option<io::Result<usize>> {
        loop {
            match self.with_io(|io| io.write_some(data))? {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Some(Ok(0)),
                other => return Some(other),
            }
        }
    }

    fn write_ready(&self) {
        loop {
            let mut wbuf = self.wbuf.borrow_mut();
            if wbuf.is_empty() {
                break;
            }
            let pending = wbuf.len();
            match self.write_now(wbuf.pending()) {
                Some(Ok(n)) => {
                    wbuf.consume(n);
                    if n < pending {
                        // The kernel buffer is full: the next write edge brings us back.
                        break;
                    }
                }
                Some(Err(error)) => {
                    wbuf.clear();
                    drop(wbuf);
                    return self.fatal_error(error, "Fatal write error on socket transport");
                }
                None => return,
            }
        }
        self.maybe_resume_protocol();
        if !self.wbuf.borrow().is_empty() {
            return;
        }
        if self.closing.get() && !self.lost.get() {
            self.lost.set(true);
            self.connection_lost(None);
        } else if self.eof_requested.get() {
            self.send_eof();
        }
    }

    fn send_eof(&self) {
        // A pipe has no half-close: EOF is the close of the write end. A socket's shutdown may
        // fail with ENOTCONN when the peer is gone already; the read side will tell.
        if self.with_io(|io| io.shutdown_write()).flatten().is_none() {
            self.close();
        }
    }

    fn maybe_pause_protocol(&self) {
        if self.protocol_paused.get() || self.wbuf.borrow().len() <= self.high.get() {
            return;
        }
        self.protocol_paused.set(true);
        if self.protocol.is_busy() {
            self.pause_owed.set(true);
        } else {
            self.pause_protocol_now();
        }
    }

    fn maybe_resume_protocol(&self) {
        if self.protocol_paused.get() && self.wbuf.borrow().len() <= self.low.get() {
            self.protocol_paused.set(false);
            self.pause_owed.set(false);
            self.call_protocol("resume_writing", |p| p.resume_writing());
        }
    }

    /// asyncio's `_fatal_error`: report (unless it is an ordinary connection error) and close.
    fn fatal_error(&self, error: io::Error, message: &str) {
        if !super::is_connection_error(&error) {
            self.lp.call_exception_handler(
                ExceptionContext::new(message).with_exception(copy_error(&error)),
            );
        }
        self.force_close(Some(error));
    }

    /// asyncio's `_force_close`: drop the buffer, stop reading, `connection_lost(error)` soon.
    fn force_close(&self, error: Option<io::Error>) {
        if self.lost.replace(true) {
            return;
        }
        self.wbuf.borrow_mut().clear();
        self.closing.set(true);
        self.connection_lost_soon(error);
    }

    fn connection_lost_soon(&self, error: Option<io::Error>) {
        let Some(this) = self.me.upgrade() else {
            return;
        };
        if self
            .lp
            .call_soon(move || this.connection_lost(error))
            .is_err()
        {
            // The loop is closed: no callback will run any more, so release now.
            self.release();
        }
    }

    /// asyncio's `_call_connection_lost`: tell the protocol, close the fd, drop the protocol.
    fn connection_lost(&self, error: Option<io::Error>) {
        self.call_protocol("connection_lost", |p| p.connection_lost(error));
        self.release();
    }

    /// Closes the fd, drops the protocol (breaking the transport-protocol cycle) and runs the
    /// hook. Idempotent.
    fn release(&self) {
        self.closing.set(true);
        self.lost.set(true);
        if let Some(mut io) = self.io.borrow_mut().take() {
            let _ = self.lp.with_mio(|mio| mio.deregister(&mut io));
            drop(io);
        }
        if let Some(token) = self.token.take() {
            drop(self.lp.io().registry.remove(token));
        }
        drop(self.protocol.take());
        let hook = self.on_lost.borrow_mut().take();
        if let Some(hook) = hook {
            hook();
        }
    }

    fn raw_fd(&self) -> Option<RawFd> {
        self.with_io(AsRawFd::as_raw_fd)
    }
}

impl<S: StreamIo> ReadyHandler for SocketTransport<S> {
    fn on_ready(&self, bits: u8) {
        if self.io.borrow().is_none() {
            return;
        }
        if S::READ && bits & (READABLE | READ_CLOSED | ERROR) != 0 {
            self.read_ready(bits & (READ_CLOSED | ERROR) != 0);
        }
        if S::WRITE && bits & (WRITABLE | WRITE_CLOSED | ERROR) != 0 {
            if !self.wbuf.borrow().is_empty() {
                self.write_ready();
            } else if !S::READ && bits & (WRITE_CLOSED | ERROR) != 0 {
                // A write pipe whose reader went away, with nothing to write: asyncio's
                // "pipe closed by peer" closes it quietly.
                self.force_close(None);
            }
        }
    }

    fn on_loop_closed(&self) {
        // The loop's registry is being emptied: close the fd and drop the protocol now (no
        // callback can run any more), so a loop closed with connections open leaks no fd.
        self.token.set(None);
        self.release();
    }
}

impl<S: StreamIo> TransportImpl for SocketTransport<S> {
    fn write(&self, data: &[u8]) -> Result<(), TransportError> {
        if !S::WRITE {
            return Err(TransportError::Unsupported("write"));
        }
        if self.eof_requested.get() {
            return Err(TransportError::WriteAfterEof);
        }
        if data.is_empty() {
            return Ok(());
        }
        if self.lost.get() {
            let count = self.writes_after_lost.get() + 1;
            self.writes_after_lost.set(count);
            if count == LOST_WRITES_WARNING {
                self.lp.call_exception_handler(ExceptionContext::new(
                    "socket.send() raised exception.",
                ));
            }
            return Ok(());
        }
        let mut wbuf = self.wbuf.borrow_mut();
        if wbuf.is_empty() {
            match self.write_now(data) {
                Some(Ok(n)) if n == data.len() => return Ok(()),
                Some(Ok(n)) => wbuf.push(&data[n..]),
                Some(Err(error)) => {
                    drop(wbuf);
                    self.fatal_error(error, "Fatal write error on socket transport");
                    return Ok(());
                }
                None => return Ok(()),
            }
        } else {
            wbuf.push(data);
        }
        drop(wbuf);
        self.maybe_pause_protocol();
        Ok(())
    }

    fn write_eof(&self) -> Result<(), TransportError> {
        if !S::WRITE {
            return Err(TransportError::Unsupported("write_eof"));
        }
        if self.closing.get() || self.eof_requested.replace(true) {
            return Ok(());
        }
        if self.wbuf.borrow().is_empty() {
            self.send_eof();
        }
        Ok(())
    }

    fn can_write_eof(&self) -> bool {
        S::WRITE
    }

    fn close(&self) {
        if self.closing.replace(true) {
            return;
        }
        if self.wbuf.borrow().is_empty() && !self.lost.replace(true) {
            self.connection_lost_soon(None);
        }
    }

    fn abort(&self) {
        self.force_close(None);
    }

    fn is_closing(&self) -> bool {
        self.closing.get()
    }

    fn pause_reading(&self) {
        if S::READ && !self.closing.get() {
            self.paused.set(true);
        }
    }

    fn resume_reading(&self) {
        if S::READ && !self.closing.get() && self.paused.replace(false) {
            self.schedule_read();
        }
    }

    fn is_reading(&self) -> bool {
        S::READ && self.reading_active()
    }

    fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), TransportError> {
        let (high, low) = write_buffer::limits(high, low)?;
        self.high.set(high);
        self.low.set(low);
        self.maybe_pause_protocol();
        Ok(())
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        (self.low.get(), self.high.get())
    }

    fn get_write_buffer_size(&self) -> usize {
        self.wbuf.borrow().len()
    }

    fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        if name == S::FD_KEY {
            return self.raw_fd().map(ExtraInfo::Fd);
        }
        self.with_io(|io| io.address(name))
            .flatten()
            .map(ExtraInfo::Address)
    }

    fn set_protocol(
        &self,
        protocol: Box<dyn Protocol>,
    ) -> Result<Option<Box<dyn Protocol>>, TransportError> {
        if self.lost.get() {
            return Ok(None);
        }
        self.protocol
            .replace(protocol)
            .map_err(|_| TransportError::ProtocolBusy)
    }
}
