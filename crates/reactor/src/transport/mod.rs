//! asyncio's transports and protocols: the callback level of networking, and its fast path.
//!
//! A [`Protocol`] is the user's object: the loop calls its `data_received` with the bytes of
//! every read, `eof_received` at the peer's half-close, `connection_lost` once at the end, and
//! `pause_writing`/`resume_writing` around its write buffer's high and low water marks. A
//! [`Transport`] is the loop's side, given to `connection_made`: `write` sends at once when it
//! can and buffers (never blocks) otherwise, `close` flushes then ends, `abort` ends now.
//!
//! Why this level exists next to the async sockets of [`net`](crate::net): a transport is
//! driven straight from the reactor's readiness. An event for its socket reads into a
//! loop-wide buffer and calls the protocol right there, with no task to wake, no waker and no
//! allocation per read, which is how uvloop serves. The streams API of the facade crate is
//! built on it, as asyncio's is.
//!
//! Callbacks run on the loop thread while the loop dispatches the poll's events (uvloop's
//! order; asyncio queues them behind the callbacks already ready, which programs cannot tell
//! apart). A panic in a protocol callback is caught: it is reported ("Fatal error:
//! protocol.data_received() call failed.") and fails that connection only. `pause_writing`,
//! which asyncio calls from inside `write`, is delivered right after the protocol callback that
//! wrote returns when `write` was called from one (a protocol is never re-entered).
//!
//! ```
//! # use evloop_reactor::doc_support::block_on;
//! use evloop_reactor::EventLoop;
//! use evloop_reactor::transport::{self, Protocol, Transport};
//!
//! struct Echo(Option<Transport>);
//! impl Protocol for Echo {
//!     fn connection_made(&mut self, transport: &Transport) {
//!         self.0 = Some(transport.clone());
//!     }
//!     fn data_received(&mut self, data: &[u8]) {
//!         self.0.as_ref().unwrap().write(data).unwrap();
//!     }
//! }
//!
//! let lp = EventLoop::new()?;
//! let server = transport::Server::bind_tcp(&lp, &["127.0.0.1:0".parse()?], || Echo(None), 100)?;
//! let addr = server.tcp_addrs()[0];
//! let reply = block_on(&lp, async move {
//!     let stream = evloop_reactor::net::TcpStream::connect(addr).await?;
//!     stream.write_all(b"ping").await?;
//!     let mut buf = [0u8; 4];
//!     stream.read_exact(&mut buf).await?;
//!     Ok::<_, std::io::Error>(buf)
//! })?;
//! assert_eq!(&reply, b"ping");
//! server.close();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod connect;
mod datagram;
mod protocol_cell;
mod server;
mod sock;
mod socket;
mod sys;
mod write_buffer;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::rc::Rc;

pub use connect::{
    StdStream, connect_accepted_socket, connect_read_pipe, connect_write_pipe, create_connection,
    create_unix_connection, transport_for_tcp_stream, transport_for_unix_stream,
};
pub use datagram::{DatagramError, DatagramProtocol, DatagramTransport, create_datagram_endpoint};
pub use server::{Server, ServerClosed};
pub use sock::SockAccept;

/// `addr` in C form (`sockaddr_storage` and length), for the facade's `getnameinfo`.
#[doc(hidden)]
pub use sys::sockaddr as c_sockaddr;
pub use write_buffer::{DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER};

/// The user's side of a connection: the callbacks the loop calls (asyncio's `Protocol`).
///
/// Every method but `data_received` has asyncio's default (do nothing; `eof_received` returns
/// `false`, so the transport closes itself at the peer's EOF).
///
/// ```
/// use evloop_reactor::transport::{Protocol, Transport};
///
/// #[derive(Default)]
/// struct Count {
///     bytes: usize,
/// }
/// impl Protocol for Count {
///     fn data_received(&mut self, data: &[u8]) {
///         self.bytes += data.len();
///     }
///     fn eof_received(&mut self) -> bool {
///         true // keep the transport open for writing after the peer's half-close
///     }
/// }
/// let mut count = Count::default();
/// count.data_received(b"abc");
/// assert_eq!(count.bytes, 3);
/// ```
pub trait Protocol: 'static {
    /// The connection is up; `transport` is its handle (clone it to keep it).
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// Bytes arrived. `data` borrows the loop's read buffer: copy what must outlive the call.
    fn data_received(&mut self, data: &[u8]);

    /// The peer half-closed. Return `true` to keep the transport open (it may still write);
    /// `false` (the default) closes it.
    fn eof_received(&mut self) -> bool {
        false
    }

    /// The connection is gone: `None` after a regular close or EOF, the error otherwise.
    /// Called exactly once; the transport drops the protocol afterwards.
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }

    /// The write buffer went over the high-water mark: stop writing until `resume_writing`.
    fn pause_writing(&mut self) {}

    /// The write buffer drained to the low-water mark.
    fn resume_writing(&mut self) {}
}

/// An address a transport is bound or connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockAddr {
    /// An IPv4 or IPv6 address.
    Inet(SocketAddr),
    /// A Unix-domain socket's path (`None` for an unnamed socket).
    Unix(Option<PathBuf>),
}

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockAddr::Inet(addr) => write!(f, "{addr}"),
            SockAddr::Unix(Some(path)) => write!(f, "{}", path.display()),
            SockAddr::Unix(None) => f.write_str("<unnamed>"),
        }
    }
}

/// A value of `get_extra_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtraInfo {
    /// `"peername"`, `"sockname"`.
    Address(SockAddr),
    /// `"socket"` (and `"pipe"`): the fd, still owned by the transport.
    Fd(RawFd),
    /// Text, such as a TLS transport's `"cipher"` and `"version"`.
    Text(String),
    /// Bytes, such as a TLS transport's `"peercert"` (DER).
    Bytes(Vec<u8>),
}

/// Why a transport refused a call (asyncio's texts).
///
/// ```
/// use evloop_reactor::transport::TransportError;
/// assert_eq!(TransportError::WriteAfterEof.to_string(), "Cannot call write() after write_eof()");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// `write` after `write_eof`.
    #[error("Cannot call write() after write_eof()")]
    WriteAfterEof,
    /// `set_write_buffer_limits` with `high < low`.
    #[error("high ({high}) must be >= low ({low}) must be >= 0")]
    BadLimits {
        /// The high-water mark asked for.
        high: usize,
        /// The low-water mark asked for.
        low: usize,
    },
    /// The transport cannot do this (writing to a read pipe, `write_eof` on TLS 1.2...).
    #[error("{0} is not supported by this transport")]
    Unsupported(&'static str),
    /// `set_protocol` was called from inside a callback of the protocol it would replace.
    #[error("the protocol cannot be replaced from inside its own callback")]
    ProtocolBusy,
}

/// The operations of a stream transport. [`Transport`] is a handle to one; the TLS layer of
/// the facade crate implements it over another transport.
pub trait TransportImpl {
    /// Sends `data`: at once as far as the kernel takes it, the rest buffered.
    fn write(&self, data: &[u8]) -> Result<(), TransportError>;
    /// Half-closes after the buffer is flushed.
    fn write_eof(&self) -> Result<(), TransportError>;
    /// Whether `write_eof` is possible.
    fn can_write_eof(&self) -> bool;
    /// Closes after the buffer is flushed; `connection_lost(None)` follows.
    fn close(&self);
    /// Closes now, dropping the buffer; `connection_lost(None)` follows.
    fn abort(&self);
    /// Whether `close` or `abort` was called or the connection was lost.
    fn is_closing(&self) -> bool;
    /// Stops calling `data_received` until `resume_reading`.
    fn pause_reading(&self);
    /// Resumes reading.
    fn resume_reading(&self);
    /// Whether reading is active.
    fn is_reading(&self) -> bool;
    /// Sets the water marks (asyncio's defaulting rules: see [`Transport`]).
    fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), TransportError>;
    /// The water marks `(low, high)`.
    fn get_write_buffer_limits(&self) -> (usize, usize);
    /// Bytes buffered, not yet written to the kernel.
    fn get_write_buffer_size(&self) -> usize;
    /// asyncio's `get_extra_info(name)`: `"peername"`, `"sockname"`, `"socket"`, ...
    fn get_extra_info(&self, name: &str) -> Option<ExtraInfo>;
    /// Replaces the protocol and returns the old one (asyncio's `set_protocol`, which
    /// `start_tls` uses): `None` if the connection was lost already. Refused from inside a
    /// callback of the protocol being replaced.
    fn set_protocol(
        &self,
        protocol: Box<dyn Protocol>,
    ) -> Result<Option<Box<dyn Protocol>>, TransportError>;
}

/// A handle to a stream transport (cheap to clone; `!Send`, like the loop).
///
/// Water marks follow asyncio: by default high 64 KiB and low 16 KiB; with only `high` given,
/// low is `high / 4`; with only `low`, high is `4 * low`.
///
/// ```
/// use evloop_reactor::EventLoop;
/// use evloop_reactor::transport::{self, Protocol, Transport};
///
/// struct Quiet;
/// impl Protocol for Quiet {
///     fn data_received(&mut self, _: &[u8]) {}
/// }
/// let lp = EventLoop::new()?;
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let t: Transport = transport::connect_accepted_socket(&lp, a.into(), Box::new(Quiet))?;
/// assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
/// t.set_write_buffer_limits(Some(1000), None)?;
/// assert_eq!(t.get_write_buffer_limits(), (250, 1000));
/// assert!(t.set_write_buffer_limits(Some(1), Some(2)).is_err());
/// t.abort();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Transport(Rc<dyn TransportImpl>);

impl Transport {
    /// Wraps an implementation (the TLS layer's, say).
    pub fn new(inner: Rc<dyn TransportImpl>) -> Transport {
        Transport(inner)
    }

    /// Sends `data`; see [`TransportImpl::write`]. After the connection is lost, data is
    /// dropped silently (asyncio warns after five such writes; so does this, once).
    pub fn write(&self, data: &[u8]) -> Result<(), TransportError> {
        self.0.write(data)
    }

    /// Writes each buffer in turn.
    pub fn writelines<'a>(
        &self,
        lines: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), TransportError> {
        for line in lines {
            self.0.write(line)?;
        }
        Ok(())
    }

    /// Half-closes the connection once the buffer is flushed (sends FIN).
    pub fn write_eof(&self) -> Result<(), TransportError> {
        self.0.write_eof()
    }

    /// Whether [`write_eof`](Transport::write_eof) is possible.
    pub fn can_write_eof(&self) -> bool {
        self.0.can_write_eof()
    }

    /// Closes once the buffer is flushed; the protocol's `connection_lost(None)` follows.
    pub fn close(&self) {
        self.0.close()
    }

    /// Closes at once, discarding the buffer.
    pub fn abort(&self) {
        self.0.abort()
    }

    /// Whether the transport is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.0.is_closing()
    }

    /// Stops reading until [`resume_reading`](Transport::resume_reading).
    pub fn pause_reading(&self) {
        self.0.pause_reading()
    }

    /// Resumes reading.
    pub fn resume_reading(&self) {
        self.0.resume_reading()
    }

    /// Whether the transport is reading.
    pub fn is_reading(&self) -> bool {
        self.0.is_reading()
    }

    /// Sets the write buffer's water marks.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), TransportError> {
        self.0.set_write_buffer_limits(high, low)
    }

    /// The water marks, `(low, high)` as asyncio returns them.
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.0.get_write_buffer_limits()
    }

    /// Bytes buffered and not yet handed to the kernel.
    pub fn get_write_buffer_size(&self) -> usize {
        self.0.get_write_buffer_size()
    }

    /// asyncio's `get_extra_info`: `"peername"`, `"sockname"`, `"socket"` (and, over TLS,
    /// `"peercert"`, `"cipher"`, `"version"`).
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        self.0.get_extra_info(name)
    }

    /// The peer's address (`get_extra_info("peername")`).
    pub fn peername(&self) -> Option<SockAddr> {
        match self.get_extra_info("peername") {
            Some(ExtraInfo::Address(addr)) => Some(addr),
            _ => None,
        }
    }

    /// The local address (`get_extra_info("sockname")`).
    pub fn sockname(&self) -> Option<SockAddr> {
        match self.get_extra_info("sockname") {
            Some(ExtraInfo::Address(addr)) => Some(addr),
            _ => None,
        }
    }

    /// Replaces the protocol, returning the old one (asyncio's `set_protocol`).
    pub fn set_protocol(
        &self,
        protocol: Box<dyn Protocol>,
    ) -> Result<Option<Box<dyn Protocol>>, TransportError> {
        self.0.set_protocol(protocol)
    }

    /// Whether two handles are the same transport.
    pub fn ptr_eq(&self, other: &Transport) -> bool {
        std::ptr::addr_eq(Rc::as_ptr(&self.0), Rc::as_ptr(&other.0))
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("peername", &self.peername())
            .field("closing", &self.is_closing())
            .finish()
    }
}

/// A boxed protocol is a protocol (so factories of `Box<dyn Protocol>` can be served).
impl Protocol for Box<dyn Protocol> {
    fn connection_made(&mut self, transport: &Transport) {
        (**self).connection_made(transport)
    }
    fn data_received(&mut self, data: &[u8]) {
        (**self).data_received(data)
    }
    fn eof_received(&mut self) -> bool {
        (**self).eof_received()
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        (**self).connection_lost(error)
    }
    fn pause_writing(&mut self) {
        (**self).pause_writing()
    }
    fn resume_writing(&mut self) {
        (**self).resume_writing()
    }
}

/// Errors that end a connection without being worth a report (asyncio's `_fatal_error`
/// logs only at debug level for these).
pub(crate) fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
    )
}
