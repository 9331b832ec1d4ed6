//! Making a transport for a connection: by connecting (`create_connection`,
//! `create_unix_connection`), from a socket connected elsewhere (`connect_accepted_socket`),
//! or from a pipe end (`connect_read_pipe`, `connect_write_pipe`).
//!
//! These take addresses, not host names: resolving a name needs the default executor, which
//! lives in the facade crate, whose `create_connection` resolves and then calls these.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use super::Protocol;
use super::Transport;
use super::socket::SocketTransport;
use crate::EventLoop;
use crate::net::{TcpStream, UnixStream};

/// Connects to `addr` on the running loop and starts `protocol` on the connection (asyncio's
/// `create_connection` for one address; TCP_NODELAY is set, as asyncio does).
///
/// ```
/// # use evloop_reactor::doc_support::block_on;
/// use evloop_reactor::EventLoop;
/// use evloop_reactor::transport::{self, Protocol};
/// use std::io::Read;
///
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, t: &transport::Transport) {
///         t.write(b"hello").unwrap();
///         t.close();
///     }
///     fn data_received(&mut self, _: &[u8]) {}
/// }
/// let lp = EventLoop::new()?;
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let t = block_on(&lp, async move { transport::create_connection(addr, Hello).await })?;
/// let (mut peer, _) = listener.accept()?;
/// while !t.is_closing() { lp.run_once()?; }
/// lp.run_once()?; // connection_lost runs, the socket closes
/// let mut got = String::new();
/// peer.read_to_string(&mut got)?;
/// assert_eq!(got, "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn create_connection<P: Protocol>(
    addr: SocketAddr,
    protocol: P,
) -> io::Result<Transport> {
    let lp = crate::get_running_loop().map_err(io::Error::other)?;
    let stream = TcpStream::connect_one(&lp, addr).await?.into_mio();
    let _ = stream.set_nodelay(true);
    let transport = SocketTransport::register(&lp, stream, Box::new(protocol))?;
    Ok(transport.start())
}

/// Connects to the Unix socket at `path` on the running loop and starts `protocol` on it
/// (asyncio's `create_unix_connection`).
pub async fn create_unix_connection<P: Protocol>(
    path: impl AsRef<Path>,
    protocol: P,
) -> io::Result<Transport> {
    let lp = crate::get_running_loop().map_err(io::Error::other)?;
    let stream = UnixStream::connect(path).await?.into_mio();
    let transport = SocketTransport::register(&lp, stream, Box::new(protocol))?;
    Ok(transport.start())
}

/// A connected std stream socket, for [`connect_accepted_socket`].
#[derive(Debug)]
pub enum StdStream {
    /// A TCP connection.
    Tcp(std::net::TcpStream),
    /// A Unix-domain connection.
    Unix(std::os::unix::net::UnixStream),
}

impl From<std::net::TcpStream> for StdStream {
    fn from(stream: std::net::TcpStream) -> StdStream {
        StdStream::Tcp(stream)
    }
}

impl From<std::os::unix::net::UnixStream> for StdStream {
    fn from(stream: std::os::unix::net::UnixStream) -> StdStream {
        StdStream::Unix(stream)
    }
}

/// Makes a transport for a socket connected elsewhere (asyncio's `connect_accepted_socket`);
/// the socket is made non-blocking here and `protocol` gets `connection_made` at once.
pub fn connect_accepted_socket(
    lp: &EventLoop,
    socket: StdStream,
    protocol: Box<dyn Protocol>,
) -> io::Result<Transport> {
    match socket {
        StdStream::Tcp(stream) => {
            stream.set_nonblocking(true)?;
            let _ = stream.set_nodelay(true);
            let stream = mio::net::TcpStream::from_std(stream);
            Ok(SocketTransport::register(lp, stream, protocol)?.start())
        }
        StdStream::Unix(stream) => {
            stream.set_nonblocking(true)?;
            let stream = mio::net::UnixStream::from_std(stream);
            Ok(SocketTransport::register(lp, stream, protocol)?.start())
        }
    }
}

/// The transport of an evloop [`TcpStream`] (it moves from the async-socket API to the
/// protocol API, as asyncio's `open_connection(sock=...)` does).
pub fn transport_for_tcp_stream(
    lp: &EventLoop,
    stream: TcpStream,
    protocol: Box<dyn Protocol>,
) -> io::Result<Transport> {
    Ok(SocketTransport::register(lp, stream.into_mio(), protocol)?.start())
}

/// The transport of an evloop [`UnixStream`].
pub fn transport_for_unix_stream(
    lp: &EventLoop,
    stream: UnixStream,
    protocol: Box<dyn Protocol>,
) -> io::Result<Transport> {
    Ok(SocketTransport::register(lp, stream.into_mio(), protocol)?.start())
}

/// asyncio's check: pipe transports take pipes, sockets and character devices only.
fn check_pipe(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: `stat` is plain old data, filled in by fstat on a live fd.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open for the duration of the call; `stat` is a valid out-pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } < 0 {
        return Err(io::Error::last_os_error());
    }
    match stat.st_mode & libc::S_IFMT {
        libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "Pipe transport is for pipes/sockets only.",
        )),
    }
}

/// Reads the pipe `fd` with `protocol` (asyncio's `connect_read_pipe`): `data_received` per
/// read, `eof_received` then `connection_lost(None)` when the writer closes. The transport
/// can pause and resume reading; `write` is not supported.
///
/// ```
/// use evloop_reactor::EventLoop;
/// use evloop_reactor::transport::{self, Protocol};
/// use std::cell::RefCell;
/// use std::io::Write;
/// use std::rc::Rc;
///
/// struct Collect(Rc<RefCell<Vec<u8>>>);
/// impl Protocol for Collect {
///     fn data_received(&mut self, data: &[u8]) {
///         self.0.borrow_mut().extend_from_slice(data);
///     }
/// }
/// let lp = EventLoop::new()?;
/// let (reader, writer) = std::io::pipe()?;
/// let got = Rc::new(RefCell::new(Vec::new()));
/// let t = transport::connect_read_pipe(&lp, reader.into(), Box::new(Collect(got.clone())))?;
/// let mut writer = std::fs::File::from(std::os::fd::OwnedFd::from(writer));
/// writer.write_all(b"through the pipe")?;
/// drop(writer);
/// while !t.is_closing() { lp.run_once()?; }
/// assert_eq!(&got.borrow()[..], b"through the pipe");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn connect_read_pipe(
    lp: &EventLoop,
    fd: OwnedFd,
    protocol: Box<dyn Protocol>,
) -> io::Result<Transport> {
    check_pipe(&fd)?;
    let pipe = mio::unix::pipe::Receiver::from(fd);
    pipe.set_nonblocking(true)?;
    Ok(SocketTransport::register(lp, pipe, protocol)?.start())
}

/// Writes to the pipe `fd` through a transport (asyncio's `connect_write_pipe`): writes are
/// buffered with flow control; `write_eof` closes the pipe once flushed; the reader going
/// away ends the transport.
pub fn connect_write_pipe(
    lp: &EventLoop,
    fd: OwnedFd,
    protocol: Box<dyn Protocol>,
) -> io::Result<Transport> {
    check_pipe(&fd)?;
    let pipe = mio::unix::pipe::Sender::from(fd);
    pipe.set_nonblocking(true)?;
    Ok(SocketTransport::register(lp, pipe, protocol)?.start())
}
