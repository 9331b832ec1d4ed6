//! UDP at the protocol level: asyncio's `create_datagram_endpoint`, `DatagramProtocol` and
//! datagram transport.
//!
//! Each readiness event receives datagrams until the socket has none left, calling
//! `datagram_received` for each; an error the kernel reports for a datagram (an ICMP "port
//! unreachable" on a connected socket, say) goes to `error_received` and the endpoint goes on.
//! `sendto` sends at once, or queues the datagram while the socket's buffer is full.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::{Rc, Weak};

use mio::{Interest, Token};

use super::protocol_cell::{Called, ProtocolCell};
use super::socket::ReadBuffer;
use super::write_buffer;
use super::{ExtraInfo, SockAddr, TransportError};
use crate::io::fd::closed_error;
use crate::io::registry::{ERROR, Entry, READ_CLOSED, READABLE, ReadyHandler, WRITABLE};
use crate::{EventLoop, ExceptionContext};

/// Datagrams received per event before the rest waits for a later iteration.
const RECVS_PER_EVENT: usize = 64;

/// The user's side of a UDP endpoint (asyncio's `DatagramProtocol`).
pub trait DatagramProtocol: 'static {
    /// The endpoint is ready; keep `transport` to send.
    fn connection_made(&mut self, transport: &DatagramTransport) {
        let _ = transport;
    }
    /// A datagram arrived from `addr`.
    fn datagram_received(&mut self, data: &[u8], addr: SocketAddr);
    /// A send or receive failed (the endpoint stays open).
    fn error_received(&mut self, error: io::Error) {
        let _ = error;
    }
    /// The endpoint was closed.
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }
    /// The send queue went over the high-water mark.
    fn pause_writing(&mut self) {}
    /// The send queue drained to the low-water mark.
    fn resume_writing(&mut self) {}
}

struct Inner {
    lp: EventLoop,
    me: Weak<Inner>,
    io: RefCell<Option<mio::net::UdpSocket>>,
    token: Cell<Option<Token>>,
    protocol: ProtocolCell<dyn DatagramProtocol>,
    read_buf: Rc<ReadBuffer>,
    queue: RefCell<VecDeque<(Vec<u8>, Option<SocketAddr>)>>,
    queued_bytes: Cell<usize>,
    remote: Option<SocketAddr>,
    high: Cell<usize>,
    low: Cell<usize>,
    protocol_paused: Cell<bool>,
    /// `pause_writing` is owed to a protocol that was inside a callback when it became due.
    pause_owed: Cell<bool>,
    closing: Cell<bool>,
    lost: Cell<bool>,
}

/// A UDP endpoint's transport (asyncio's `DatagramTransport`). Clones share it.
///
/// ```
/// use evloop_reactor::EventLoop;
/// use evloop_reactor::transport::{self, DatagramProtocol, DatagramTransport};
/// use std::net::SocketAddr;
///
/// struct Echo(Option<DatagramTransport>);
/// impl DatagramProtocol for Echo {
///     fn connection_made(&mut self, t: &DatagramTransport) {
///         self.0 = Some(t.clone());
///     }
///     fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
///         self.0.as_ref().unwrap().sendto(data, Some(addr)).unwrap();
///     }
/// }
/// let lp = EventLoop::new()?;
/// let server = transport::create_datagram_endpoint(
///     &lp, Some("127.0.0.1:0".parse()?), None, Box::new(Echo(None)))?;
/// let Some(transport::SockAddr::Inet(addr)) = server.sockname() else { unreachable!() };
/// let client = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// client.send_to(b"ping", addr)?;
/// lp.run_once()?;
/// let mut buf = [0u8; 8];
/// let (n, _) = client.recv_from(&mut buf)?;
/// assert_eq!(&buf[..n], b"ping");
/// server.close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DatagramTransport {
    inner: Rc<Inner>,
}

/// Binds a UDP socket to `local` (or an ephemeral port of `remote`'s family), connects it to
/// `remote` if given, and starts `protocol` on it (asyncio's `create_datagram_endpoint` for
/// resolved addresses).
pub fn create_datagram_endpoint(
    lp: &EventLoop,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    protocol: Box<dyn DatagramProtocol>,
) -> io::Result<DatagramTransport> {
    if lp.is_closed() {
        return Err(closed_error());
    }
    let local = match (local, remote) {
        (Some(local), _) => local,
        (None, Some(SocketAddr::V6(_))) => "[::]:0".parse().expect("valid"),
        (None, _) => "0.0.0.0:0".parse().expect("valid"),
    };
    let mut socket = mio::net::UdpSocket::bind(local)?;
    if let Some(remote) = remote {
        socket.connect(remote)?;
    }
    let inner = Rc::new_cyclic(|me| Inner {
        lp: lp.clone(),
        me: me.clone(),
        io: RefCell::new(None),
        token: Cell::new(None),
        protocol: ProtocolCell::new(protocol),
        read_buf: lp.extension::<ReadBuffer>(),
        queue: RefCell::new(VecDeque::new()),
        queued_bytes: Cell::new(0),
        remote,
        high: Cell::new(write_buffer::DEFAULT_HIGH_WATER),
        low: Cell::new(write_buffer::DEFAULT_LOW_WATER),
        protocol_paused: Cell::new(false),
        pause_owed: Cell::new(false),
        closing: Cell::new(false),
        lost: Cell::new(false),
    });
    let token = lp
        .io()
        .registry
        .insert(Entry::Direct(inner.clone() as Rc<dyn ReadyHandler>));
    if let Err(error) =
        lp.with_mio(|mio| mio.register(&mut socket, token, Interest::READABLE | Interest::WRITABLE))
    {
        lp.io().registry.remove(token);
        return Err(error);
    }
    inner.token.set(Some(token));
    *inner.io.borrow_mut() = Some(socket);
    let transport = DatagramTransport { inner };
    transport
        .inner
        .call("connection_made", |p| p.connection_made(&transport));
    Ok(transport)
}

impl Inner {
    fn call<R>(&self, what: &str, f: impl FnOnce(&mut dyn DatagramProtocol) -> R) -> Option<R> {
        let out = self.outcome(what, self.protocol.call(f));
        if self.pause_owed.replace(false) && self.protocol_paused.get() {
            let paused = self.protocol.call(|p| p.pause_writing());
            self.outcome("pause_writing", paused);
        }
        out
    }

    fn outcome<R>(&self, what: &str, called: Called<R>) -> Option<R> {
        match called {
            Called::Done(value) => Some(value),
            Called::Panicked(panic) => {
                self.lp.call_exception_handler(
                    ExceptionContext::new(format!("Fatal error: protocol.{what}() call failed."))
                        .with_exception(panic.clone()),
                );
                self.force_close(Some(io::Error::other(panic)));
                None
            }
            Called::Skipped => None,
        }
    }

    fn recv_ready(&self) {
        for _ in 0..RECVS_PER_EVENT {
            if self.closing.get() {
                return;
            }
            let mut buf = self.read_buf.take();
            let received = match self.io.borrow().as_ref() {
                Some(io) => io.recv_from(&mut buf),
                None => return self.read_buf.put_back(buf),
            };
            match received {
                Ok((n, addr)) => {
                    self.call("datagram_received", |p| {
                        p.datagram_received(&buf[..n], addr)
                    });
                    self.read_buf.put_back(buf);
                }
                Err(error) => {
                    self.read_buf.put_back(buf);
                    match error.kind() {
                        io::ErrorKind::WouldBlock => return,
                        io::ErrorKind::Interrupted => {}
                        _ => {
                            self.call("error_received", |p| p.error_received(error));
                        }
                    }
                }
            }
        }
        let me = self.me.clone();
        let _ = self.lp.call_soon(move || {
            if let Some(me) = me.upgrade() {
                me.recv_ready();
            }
        });
    }

    fn send_one(&self, data: &[u8], addr: Option<SocketAddr>) -> Option<io::Result<usize>> {
        let io = self.io.borrow();
        let io = io.as_ref()?;
        Some(match addr {
            Some(addr) if self.remote.is_none() => io.send_to(data, addr),
            _ => io.send(data),
        })
    }

    fn flush(&self) {
        loop {
            let next = self.queue.borrow_mut().pop_front();
            let Some((data, addr)) = next else { break };
            match self.send_one(&data, addr) {
                Some(Err(error)) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.queue.borrow_mut().push_front((data, addr));
                    return;
                }
                Some(Err(error)) => {
                    self.queued_bytes.set(self.queued_bytes.get() - data.len());
                    self.call("error_received", |p| p.error_received(error));
                }
                Some(Ok(_)) => self.queued_bytes.set(self.queued_bytes.get() - data.len()),
                None => return,
            }
        }
        if self.protocol_paused.get() && self.queued_bytes.get() <= self.low.get() {
            self.protocol_paused.set(false);
            self.call("resume_writing", |p| p.resume_writing());
        }
        if self.closing.get() && !self.lost.replace(true) {
            self.connection_lost(None);
        }
    }

    fn force_close(&self, error: Option<io::Error>) {
        if self.lost.replace(true) {
            return;
        }
        self.closing.set(true);
        self.queue.borrow_mut().clear();
        self.queued_bytes.set(0);
        let Some(me) = self.me.upgrade() else { return };
        if self
            .lp
            .call_soon(move || me.connection_lost(error))
            .is_err()
        {
            self.release();
        }
    }

    fn connection_lost(&self, error: Option<io::Error>) {
        self.call("connection_lost", |p| p.connection_lost(error));
        self.release();
    }

    fn release(&self) {
        self.closing.set(true);
        self.lost.set(true);
        if let Some(mut io) = self.io.borrow_mut().take() {
            let _ = self.lp.with_mio(|mio| mio.deregister(&mut io));
        }
        if let Some(token) = self.token.take() {
            drop(self.lp.io().registry.remove(token));
        }
        drop(self.protocol.take());
    }
}

impl ReadyHandler for Inner {
    fn on_ready(&self, bits: u8) {
        if bits & (READABLE | READ_CLOSED | ERROR) != 0 {
            self.recv_ready();
        }
        if bits & (WRITABLE | ERROR) != 0 && !self.queue.borrow().is_empty() {
            self.flush();
        }
    }

    fn on_loop_closed(&self) {
        self.token.set(None);
        self.release();
    }
}

impl DatagramTransport {
    /// Sends `data` to `addr` (or to the connected peer with `None`). With a connected peer,
    /// `addr` must be `None` or that peer (asyncio's "Invalid address: must be None or ...").
    pub fn sendto(&self, data: &[u8], addr: Option<SocketAddr>) -> Result<(), DatagramError> {
        let inner = &self.inner;
        match (inner.remote, addr) {
            (Some(remote), Some(addr)) if addr != remote => {
                return Err(DatagramError::InvalidAddress(Some(remote)));
            }
            (None, None) => return Err(DatagramError::InvalidAddress(None)),
            _ => {}
        }
        if inner.lost.get() || inner.closing.get() {
            return Ok(());
        }
        if inner.queue.borrow().is_empty() {
            match inner.send_one(data, addr) {
                Some(Ok(_)) | None => return Ok(()),
                Some(Err(error)) if error.kind() != io::ErrorKind::WouldBlock => {
                    inner.call("error_received", |p| p.error_received(error));
                    return Ok(());
                }
                Some(Err(_)) => {}
            }
        }
        inner.queue.borrow_mut().push_back((data.to_vec(), addr));
        inner
            .queued_bytes
            .set(inner.queued_bytes.get() + data.len());
        if !inner.protocol_paused.get() && inner.queued_bytes.get() > inner.high.get() {
            inner.protocol_paused.set(true);
            if inner.protocol.is_busy() {
                // Inside one of its callbacks: delivered when that callback returns.
                inner.pause_owed.set(true);
            } else {
                inner.call("pause_writing", |p| p.pause_writing());
            }
        }
        Ok(())
    }

    /// Closes once the queue is sent; `connection_lost(None)` follows.
    pub fn close(&self) {
        let inner = &self.inner;
        if inner.closing.replace(true) {
            return;
        }
        if inner.queue.borrow().is_empty() && !inner.lost.replace(true) {
            let Some(me) = inner.me.upgrade() else { return };
            if inner
                .lp
                .call_soon(move || me.connection_lost(None))
                .is_err()
            {
                inner.release();
            }
        }
    }

    /// Closes at once, dropping the queue.
    pub fn abort(&self) {
        self.inner.force_close(None);
    }

    /// Whether the endpoint is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.inner.closing.get()
    }

    /// Bytes queued, not yet sent.
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.queued_bytes.get()
    }

    /// Sets the queue's water marks (the stream transports' rules).
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), TransportError> {
        let (high, low) = write_buffer::limits(high, low)?;
        self.inner.high.set(high);
        self.inner.low.set(low);
        Ok(())
    }

    /// `"peername"` (if connected), `"sockname"`, `"socket"`.
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        let io = self.inner.io.borrow();
        let io = io.as_ref()?;
        match name {
            "socket" => Some(ExtraInfo::Fd(io.as_raw_fd())),
            "sockname" => io
                .local_addr()
                .ok()
                .map(|a| ExtraInfo::Address(SockAddr::Inet(a))),
            "peername" => self
                .inner
                .remote
                .map(|a| ExtraInfo::Address(SockAddr::Inet(a))),
            _ => None,
        }
    }

    /// The local address.
    pub fn sockname(&self) -> Option<SockAddr> {
        match self.get_extra_info("sockname") {
            Some(ExtraInfo::Address(addr)) => Some(addr),
            _ => None,
        }
    }
}

/// Why `sendto` refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramError {
    /// The address does not fit the endpoint (asyncio's `ValueError`).
    #[error("Invalid address: must be None or {}", .0.map(|a| a.to_string()).unwrap_or_else(|| "a target address".into()))]
    InvalidAddress(Option<SocketAddr>),
}

impl fmt::Debug for DatagramTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramTransport")
            .field("sockname", &self.sockname())
            .field("closing", &self.is_closing())
            .finish()
    }
}
