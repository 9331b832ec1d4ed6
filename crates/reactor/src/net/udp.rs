//! UDP sockets.

use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use mio::Interest;

use super::first_address;
use crate::EventLoop;
use crate::io::evented::PollEvented;
use crate::io::registry::Direction;

/// A UDP socket on the loop.
///
/// ```
/// use evloop_reactor::EventLoop;
/// use evloop_reactor::net::UdpSocket;
///
/// let lp = EventLoop::new().unwrap();
/// let socket = UdpSocket::bind_on(&lp, "127.0.0.1:0").unwrap();
/// assert!(socket.local_addr().unwrap().port() > 0);
/// ```
pub struct UdpSocket {
    io: PollEvented<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr`, on the running loop.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let lp = crate::get_running_loop().map_err(io::Error::other)?;
        UdpSocket::bind_on(&lp, addr)
    }

    /// Binds to `addr` (the first address that works), registered with `lp`.
    pub fn bind_on(lp: &EventLoop, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let socket = first_address(addr, mio::net::UdpSocket::bind)?;
        Ok(UdpSocket {
            io: PollEvented::new_on(lp, socket, Interest::READABLE | Interest::WRITABLE)?,
        })
    }

    /// Sets the default peer for [`send`](UdpSocket::send) / [`recv`](UdpSocket::recv).
    pub fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        self.io.get_ref().connect(addr)
    }

    /// Sends one datagram to `target`.
    ///
    /// ```
    /// # use evloop_reactor::doc_support::block_on;
    /// use evloop_reactor::EventLoop;
    /// use evloop_reactor::net::UdpSocket;
    ///
    /// let lp = EventLoop::new()?;
    /// let a = UdpSocket::bind_on(&lp, "127.0.0.1:0")?;
    /// let b = UdpSocket::bind_on(&lp, "127.0.0.1:0")?;
    /// let b_addr = b.local_addr()?;
    /// let (n, from) = block_on(&lp, async move {
    ///     a.send_to(b"hello", b_addr).await?;
    ///     let mut buf = [0u8; 16];
    ///     let (n, from) = b.recv_from(&mut buf).await?;
    ///     assert_eq!(&buf[..n], b"hello");
    ///     Ok::<_, std::io::Error>((n, from == a.local_addr()?))
    /// })?;
    /// assert_eq!((n, from), (5, true));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        poll_fn(|cx| {
            self.io
                .poll_io(cx, Direction::Write, |s| s.send_to(buf, target))
        })
        .await
    }

    /// Receives one datagram and its sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.io.poll_io(cx, Direction::Read, |s| s.recv_from(buf))).await
    }

    /// Sends one datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.io.poll_io(cx, Direction::Write, |s| s.send(buf))).await
    }

    /// Receives one datagram from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.io.poll_io(cx, Direction::Read, |s| s.recv(buf))).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local_addr().ok())
            .finish()
    }
}
