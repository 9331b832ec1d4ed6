//! Async sockets on the loop: TCP, UDP and Unix-domain streams.
//!
//! Each socket is registered with the loop it was made on (the running loop) and implements
//! `futures_io::AsyncRead`/`AsyncWrite` where it is a stream, plus inherent `async fn`s in
//! asyncio's spirit (`accept`, `connect`, `read`, `write_all`, `send_to`, `recv_from`).
//! Readiness wakes exactly the task waiting on that direction of that socket.
//!
//! A socket is tied to its loop's thread (`!Send`), as asyncio's transports are.

mod incoming;
mod tcp;
mod udp;
mod unix;

pub use incoming::Incoming;
pub use tcp::{ReadHalf, TcpListener, TcpStream, WriteHalf};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};

/// Implements the async read/write surface of a stream type whose field `io` is a
/// `PollEvented<S>` with `&S: Read + Write`.
macro_rules! stream_io {
    ($ty:ty) => {
        impl $ty {
            /// Reads into `buf`, waiting until some data (or EOF, as `Ok(0)`) is there.
            ///
            /// ```
            /// # use evloop_reactor::doc_support::block_on;
            /// use evloop_reactor::EventLoop;
            /// use evloop_reactor::net::UnixStream;
            ///
            /// let lp = EventLoop::new()?;
            /// let (a, b) = UnixStream::pair_on(&lp)?;
            /// let n = block_on(&lp, async move {
            ///     a.write_all(b"data").await?;
            ///     drop(a);
            ///     let mut buf = [0u8; 8];
            ///     let n = b.read(&mut buf).await?;
            ///     assert_eq!(b.read(&mut buf).await?, 0, "EOF");
            ///     Ok::<_, std::io::Error>(n)
            /// })?;
            /// assert_eq!(n, 4);
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::future::poll_fn(|cx| self.poll_read_priv(cx, buf)).await
            }

            /// Reads exactly `buf.len()` bytes; `UnexpectedEof` if the stream ends first.
            pub async fn read_exact(&self, mut buf: &mut [u8]) -> std::io::Result<()> {
                while !buf.is_empty() {
                    let n = self.read(buf).await?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    buf = &mut buf[n..];
                }
                Ok(())
            }

            /// Writes some of `buf`, waiting until the socket accepts at least one byte.
            pub async fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
                std::future::poll_fn(|cx| self.poll_write_priv(cx, buf)).await
            }

            /// Writes all of `buf` (partial writes are continued).
            pub async fn write_all(&self, mut buf: &[u8]) -> std::io::Result<()> {
                while !buf.is_empty() {
                    let n = self.write(buf).await?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::WriteZero.into());
                    }
                    buf = &buf[n..];
                }
                Ok(())
            }

            fn poll_read_priv(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                use std::io::Read as _;
                let len = buf.len();
                self.io
                    .poll_stream(cx, $crate::io::registry::Direction::Read, len, |s| {
                        let mut s = s;
                        s.read(buf)
                    })
            }

            fn poll_write_priv(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                use std::io::Write as _;
                self.io
                    .poll_stream(cx, $crate::io::registry::Direction::Write, buf.len(), |s| {
                        let mut s = s;
                        s.write(buf)
                    })
            }
        }

        // The traits for the stream and for a shared reference to it (reads and writes take
        // `&self`, so both directions can be driven from one value).
        $crate::net::stream_io!(@futures_io $ty);
        $crate::net::stream_io!(@futures_io &$ty);
    };
    (@futures_io $self_ty:ty) => {
        impl futures_io::AsyncRead for $self_ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.poll_read_priv(cx, buf)
            }
        }

        impl futures_io::AsyncWrite for $self_ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.poll_write_priv(cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                // Nothing is buffered in user space.
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }
    };
}
pub(crate) use stream_io;

/// std's address rule for `bind` and `connect`: try each address `addr` resolves to, in order,
/// until one works; the last failure if none does.
pub(crate) fn first_address<T>(
    addr: impl std::net::ToSocketAddrs,
    mut attempt: impl FnMut(std::net::SocketAddr) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        match attempt(addr) {
            Ok(done) => return Ok(done),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(unresolved))
}

/// The error of an address that resolved to nothing.
pub(crate) fn unresolved() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        "could not resolve to any address",
    )
}

/// The result of a `shutdown(2)`, with ENOTCONN counted as done: the peer has already gone away
/// (it reset the connection, or closed it before we half-closed), so there is nothing left to
/// shut down. Every client that hangs up first would otherwise fail `poll_close` under hyper;
/// tokio, h2 and the JDK ignore it the same way.
pub(crate) fn shutdown_done(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(error) if error.kind() == std::io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// Errors after which `accept` backs off instead of failing: the process or system is out of a
/// resource (asyncio's list in `_accept_connection`).
pub(crate) fn out_of_resources(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Errors that concern one pending connection only (it went away before we accepted it).
pub(crate) fn transient_accept_error(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM)
    )
}

/// asyncio's `ACCEPT_RETRY_DELAY`: how long an accept loop waits after running out of fds.
pub(crate) const ACCEPT_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// The accept loop of every listener (TCP and Unix): accepts one connection and registers it
/// with the listener's loop. Running out of fds is reported once through the exception handler,
/// as asyncio does, and waited out on a loop timer, so the loop does not spin on a listener that
/// stays readable; a connection that went away before it was accepted is skipped.
pub(crate) async fn accept_connection<L, S, A>(
    listener: &crate::io::evented::PollEvented<L>,
    accept: impl Fn(&L) -> std::io::Result<(S, A)>,
) -> std::io::Result<(crate::io::evented::PollEvented<S>, A)>
where
    L: mio::event::Source,
    S: mio::event::Source,
{
    use crate::io::registry::Direction;
    loop {
        let accepted =
            std::future::poll_fn(|cx| listener.poll_io(cx, Direction::Read, &accept)).await;
        match accepted {
            Ok((stream, addr)) => {
                let io = crate::io::evented::PollEvented::new_on(
                    listener.event_loop(),
                    stream,
                    mio::Interest::READABLE | mio::Interest::WRITABLE,
                )?;
                return Ok((io, addr));
            }
            Err(error) if out_of_resources(&error) => {
                let lp = listener.event_loop();
                lp.call_exception_handler(
                    crate::ExceptionContext::new("socket.accept() out of system resource")
                        .with_exception(error),
                );
                crate::Timer::at(lp, lp.time() + ACCEPT_RETRY_DELAY)
                    .map_err(std::io::Error::other)?
                    .await;
            }
            Err(error) if transient_accept_error(&error) => {}
            Err(error) => return Err(error),
        }
    }
}
