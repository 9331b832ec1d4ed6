//! TCP: a listener whose accept loop survives fd exhaustion, and a stream.

use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::task::{Context, Poll};

use mio::Interest;

use super::{accept_connection, first_address, stream_io, unresolved};
use crate::EventLoop;
use crate::io::evented::PollEvented;
use crate::io::registry::Direction;

/// A TCP listening socket on the loop.
///
/// ```
/// use evloop_reactor::EventLoop;
/// use evloop_reactor::net::TcpListener;
///
/// let lp = EventLoop::new().unwrap();
/// let listener = TcpListener::bind_on(&lp, "127.0.0.1:0").unwrap();
/// assert!(listener.local_addr().unwrap().port() > 0);
/// ```
pub struct TcpListener {
    io: PollEvented<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (the first address that works) and listens, on the running loop.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let lp = crate::get_running_loop().map_err(io::Error::other)?;
        TcpListener::bind_on(&lp, addr)
    }

    /// Binds to `addr` and listens, registered with `lp`.
    pub fn bind_on(lp: &EventLoop, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let listener = first_address(addr, mio::net::TcpListener::bind)?;
        Ok(TcpListener {
            io: PollEvented::new_on(lp, listener, Interest::READABLE)?,
        })
    }

    /// Wraps a bound, listening std socket (made non-blocking here), on the running loop.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            io: PollEvented::new(
                mio::net::TcpListener::from_std(listener),
                Interest::READABLE,
            )?,
        })
    }

    /// Accepts a connection.
    ///
    /// ```
    /// # use evloop_reactor::doc_support::block_on;
    /// use evloop_reactor::EventLoop;
    /// use evloop_reactor::net::{TcpListener, TcpStream};
    ///
    /// let lp = EventLoop::new()?;
    /// let listener = TcpListener::bind_on(&lp, "127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let reply = block_on(&lp, async move {
    ///     let client = TcpStream::connect(addr).await?;
    ///     let (server, _peer) = listener.accept().await?;
    ///     client.write_all(b"ping").await?;
    ///     let mut buf = [0u8; 4];
    ///     server.read_exact(&mut buf).await?;
    ///     server.write_all(&buf).await?;
    ///     client.read_exact(&mut buf).await?;
    ///     Ok::<_, std::io::Error>(buf)
    /// })?;
    /// assert_eq!(&reply, b"ping");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Running out of fds (EMFILE/ENFILE, or ENOBUFS/ENOMEM) does not fail the accept loop: the
    /// error is reported through the loop's exception handler ("socket.accept() out of system
    /// resource", as asyncio) and accepting resumes after a 1 s loop timer, so the loop does not
    /// spin on a listener that stays readable. A connection that went away before it was
    /// accepted is skipped.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (io, addr) = accept_connection(&self.io, |l| l.accept()).await?;
        Ok((TcpStream { io }, addr))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }
}

/// A TCP connection on the loop: `AsyncRead + AsyncWrite` (also through `&TcpStream`, so a
/// reader task and a writer task can share one stream).
///
/// A peer reset or a half-close affects this connection only: reads give `Ok(0)` after the
/// peer's FIN, and `ConnectionReset` / `BrokenPipe` errors after a reset.
///
/// ```
/// use evloop_reactor::EventLoop;
/// use evloop_reactor::net::{TcpListener, TcpStream};
///
/// let lp = EventLoop::new().unwrap();
/// let listener = TcpListener::bind_on(&lp, "127.0.0.1:0").unwrap();
/// // Connecting needs the loop to run: see the crate's tests for a full echo.
/// let std_stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
/// let stream = TcpStream::from_std_on(&lp, std_stream).unwrap();
/// assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());
/// ```
pub struct TcpStream {
    io: PollEvented<mio::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr` (each resolved address in turn), on the running loop.
    ///
    /// ```
    /// # use evloop_reactor::doc_support::block_on;
    /// use evloop_reactor::EventLoop;
    /// use evloop_reactor::net::TcpStream;
    ///
    /// let lp = EventLoop::new()?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let stream = block_on(&lp, async move { TcpStream::connect(addr).await })?;
    /// assert_eq!(stream.peer_addr()?, addr);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let lp = crate::get_running_loop().map_err(io::Error::other)?;
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            match TcpStream::connect_one(&lp, addr).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(unresolved))
    }

    /// The mio stream, deregistered from the loop (for a transport to take over).
    pub(crate) fn into_mio(self) -> mio::net::TcpStream {
        self.io.into_inner()
    }

    pub(crate) async fn connect_one(lp: &EventLoop, addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = mio::net::TcpStream::connect(addr)?;
        let io = PollEvented::new_on(lp, stream, Interest::READABLE | Interest::WRITABLE)?;
        poll_fn(|cx| {
            io.poll_io(cx, Direction::Write, |s| {
                if let Some(error) = s.take_error()? {
                    return Err(error);
                }
                match s.peer_addr() {
                    Ok(_) => Ok(()),
                    // Still connecting: wait for the next writable edge.
                    Err(error) if error.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(error) => Err(error),
                }
            })
        })
        .await?;
        Ok(TcpStream { io })
    }

    /// Wraps a connected std stream (made non-blocking here), on the running loop.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        let lp = crate::get_running_loop().map_err(io::Error::other)?;
        TcpStream::from_std_on(&lp, stream)
    }

    /// Wraps a connected std stream (made non-blocking here), registered with `lp`.
    pub fn from_std_on(lp: &EventLoop, stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        let io = PollEvented::new_on(
            lp,
            mio::net::TcpStream::from_std(stream),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(TcpStream { io })
    }

    /// Shuts down one or both directions (`Shutdown::Write` sends FIN: a half-close). A peer that
    /// already went away (the kernel's ENOTCONN) counts as done, as in tokio.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        super::shutdown_done(self.io.get_ref().shutdown(how))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(on)
    }

    /// Borrowed read and write halves, for a reader and a writer running concurrently.
    pub fn split(&self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf(self), WriteHalf(self))
    }

    /// Polls a read (the `AsyncRead` path, usable on `&self`).
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_read_priv(cx, buf)
    }

    /// Polls a write (the `AsyncWrite` path, usable on `&self`).
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_priv(cx, buf)
    }
}

stream_io!(TcpStream);

/// The read half of a [`TcpStream`] (see [`TcpStream::split`]).
#[derive(Clone, Copy)]
pub struct ReadHalf<'a>(&'a TcpStream);

/// The write half of a [`TcpStream`] (see [`TcpStream::split`]).
#[derive(Clone, Copy)]
pub struct WriteHalf<'a>(&'a TcpStream);

impl ReadHalf<'_> {
    /// Reads into `buf` (see [`TcpStream::read`]).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).await
    }
}

impl WriteHalf<'_> {
    /// Writes all of `buf` (see [`TcpStream::write_all`]).
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).await
    }

    /// Half-closes the connection (sends FIN).
    pub fn shutdown(&self) -> io::Result<()> {
        self.0.shutdown(Shutdown::Write)
    }
}

impl futures_io::AsyncRead for ReadHalf<'_> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_read_priv(cx, buf)
    }
}

impl futures_io::AsyncWrite for WriteHalf<'_> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_priv(cx, buf)
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.shutdown(Shutdown::Write))
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.local_addr().ok())
            .finish()
    }
}
