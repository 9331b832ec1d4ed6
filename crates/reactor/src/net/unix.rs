//! Unix-domain stream sockets.

use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::path::Path;
use std::task::{Context, Poll};

use mio::Interest;

use super::{accept_connection, stream_io};
use crate::EventLoop;
use crate::io::evented::PollEvented;
use crate::io::registry::Direction;

/// A Unix-domain listening socket on the loop.
///
/// ```
/// use evloop_reactor::EventLoop;
/// use evloop_reactor::net::UnixListener;
///
/// let lp = EventLoop::new().unwrap();
/// let dir = std::env::temp_dir().join(format!("evloop-doc-{}", std::process::id()));
/// let _ = std::fs::remove_file(&dir);
/// let listener = UnixListener::bind_on(&lp, &dir).unwrap();
/// drop(listener);
/// std::fs::remove_file(&dir).unwrap();
/// ```
pub struct UnixListener {
    io: PollEvented<mio::net::UnixListener>,
}

impl UnixListener {
    /// Binds to `path` and listens, on the running loop.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let lp = crate::get_running_loop().map_err(io::Error::other)?;
        UnixListener::bind_on(&lp, path)
    }

    /// Binds to `path` and listens, registered with `lp`.
    pub fn bind_on(lp: &EventLoop, path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let listener = mio::net::UnixListener::bind(path)?;
        Ok(UnixListener {
            io: PollEvented::new_on(lp, listener, Interest::READABLE)?,
        })
    }

    /// Accepts a connection; backs off on fd exhaustion like [`TcpListener::accept`].
    ///
    /// [`TcpListener::accept`]: super::TcpListener::accept
    pub async fn accept(&self) -> io::Result<(UnixStream, std::os::unix::net::SocketAddr)> {
        let (io, addr) = accept_connection(&self.io, |l| l.accept()).await?;
        Ok((UnixStream { io }, addr))
    }
}

/// A Unix-domain stream on the loop: `AsyncRead + AsyncWrite` (also through `&UnixStream`).
///
/// ```
/// use evloop_reactor::EventLoop;
/// use evloop_reactor::net::UnixStream;
///
/// let lp = EventLoop::new().unwrap();
/// let (a, b) = UnixStream::pair_on(&lp).unwrap();
/// a.shutdown(std::net::Shutdown::Both).unwrap();
/// # drop(b);
/// ```
pub struct UnixStream {
    io: PollEvented<mio::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket at `path`, on the running loop.
    ///
    /// ```
    /// # use evloop_reactor::doc_support::block_on;
    /// use evloop_reactor::EventLoop;
    /// use evloop_reactor::net::{UnixListener, UnixStream};
    ///
    /// let lp = EventLoop::new()?;
    /// let path = std::env::temp_dir().join(format!("evloop-doc-c-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind_on(&lp, &path)?;
    /// let p = path.clone();
    /// let got = block_on(&lp, async move {
    ///     let client = UnixStream::connect(&p).await?;
    ///     let (server, _) = listener.accept().await?;
    ///     client.write_all(b"hi").await?;
    ///     let mut buf = [0u8; 2];
    ///     server.read_exact(&mut buf).await?;
    ///     Ok::<_, std::io::Error>(buf)
    /// })?;
    /// assert_eq!(&got, b"hi");
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let lp = crate::get_running_loop().map_err(io::Error::other)?;
        let stream = mio::net::UnixStream::connect(path)?;
        let io = PollEvented::new_on(&lp, stream, Interest::READABLE | Interest::WRITABLE)?;
        poll_fn(|cx| {
            io.poll_io(cx, Direction::Write, |s| match s.take_error()? {
                Some(error) => Err(error),
                None => Ok(()),
            })
        })
        .await?;
        Ok(UnixStream { io })
    }

    /// The mio stream, deregistered from the loop (for a transport to take over).
    pub(crate) fn into_mio(self) -> mio::net::UnixStream {
        self.io.into_inner()
    }

    /// A connected pair, on the running loop.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let lp = crate::get_running_loop().map_err(io::Error::other)?;
        UnixStream::pair_on(&lp)
    }

    /// A connected pair, registered with `lp`.
    pub fn pair_on(lp: &EventLoop) -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        let both = Interest::READABLE | Interest::WRITABLE;
        Ok((
            UnixStream {
                io: PollEvented::new_on(lp, a, both)?,
            },
            UnixStream {
                io: PollEvented::new_on(lp, b, both)?,
            },
        ))
    }

    /// Shuts down one or both directions; a peer that already went away (ENOTCONN) counts as done.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        super::shutdown_done(self.io.get_ref().shutdown(how))
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

stream_io!(UnixStream);

impl std::fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixStream").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixListener").finish_non_exhaustive()
    }
}
