//! asyncio's low-level socket coroutines: `sock_recv`, `sock_sendall`, `sock_connect`,
//! `sock_accept` on non-blocking std sockets the caller owns.
//!
//! Each tries the call first and, when it would block, waits for the fd with a one-shot
//! reader or writer callback (asyncio's way), removed again before returning or when the
//! future is dropped. A blocking socket is refused, since it would block the loop ("the
//! socket must be non-blocking").

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::sys;
use crate::EventLoop;

fn require_nonblocking(fd: RawFd) -> io::Result<()> {
    if sys::is_nonblocking(fd)? {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the socket must be non-blocking",
        ))
    }
}

/// Removes the fd callback when the wait ends, however it ends.
struct Watch<'a> {
    lp: &'a EventLoop,
    fd: RawFd,
    write: bool,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if self.write {
            self.lp.remove_writer(self.fd);
        } else {
            self.lp.remove_reader(self.fd);
        }
    }
}

/// A listening socket `sock_accept` can take.
pub trait SockAccept: AsRawFd {
    /// The accepted connection.
    type Conn;
    /// The peer's address.
    type Addr;
    /// One `accept` call.
    fn accept_now(&self) -> io::Result<(Self::Conn, Self::Addr)>;
}

impl SockAccept for std::net::TcpListener {
    type Conn = std::net::TcpStream;
    type Addr = SocketAddr;
    fn accept_now(&self) -> io::Result<(std::net::TcpStream, SocketAddr)> {
        self.accept()
    }
}

impl SockAccept for std::os::unix::net::UnixListener {
    type Conn = std::os::unix::net::UnixStream;
    type Addr = std::os::unix::net::SocketAddr;
    fn accept_now(&self) -> io::Result<(Self::Conn, Self::Addr)> {
        self.accept()
    }
}

impl EventLoop {
    /// Waits until `fd` is readable (or writable, with `write`).
    async fn wait_fd(&self, fd: RawFd, write: bool) -> io::Result<()> {
        let fired = Rc::new(Cell::new(false));
        let waker: Rc<RefCell<Option<Waker>>> = Rc::default();
        let (f, w) = (fired.clone(), waker.clone());
        let callback = move || {
            f.set(true);
            if let Some(waker) = w.borrow_mut().take() {
                waker.wake();
            }
        };
        if write {
            self.add_writer(fd, callback)?;
        } else {
            self.add_reader(fd, callback)?;
        }
        let _watch = Watch {
            lp: self,
            fd,
            write,
        };
        poll_fn(|cx| {
            if fired.get() {
                return Poll::Ready(Ok(()));
            }
            if self.is_closed() {
                return Poll::Ready(Err(crate::io::fd::closed_error()));
            }
            *waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Runs `op` until it does not block, waiting for `fd` in between.
    async fn sock_op<R>(
        &self,
        fd: RawFd,
        write: bool,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        require_nonblocking(fd)?;
        loop {
            match op() {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.wait_fd(fd, write).await?;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    /// Receives up to `buf.len()` bytes from a non-blocking socket (asyncio's `sock_recv`);
    /// `Ok(0)` at EOF.
    ///
    /// ```
    /// # use evloop_reactor::doc_support::block_on;
    /// use evloop_reactor::EventLoop;
    /// use std::os::unix::net::UnixStream;
    ///
    /// let lp = EventLoop::new()?;
    /// let (a, b) = UnixStream::pair()?;
    /// a.set_nonblocking(true)?;
    /// b.set_nonblocking(true)?;
    /// let l = lp.clone();
    /// let got = block_on(&lp, async move {
    ///     l.sock_sendall(&a, b"ping").await?;
    ///     let mut buf = [0u8; 8];
    ///     let n = l.sock_recv(&b, &mut buf).await?;
    ///     Ok::<_, std::io::Error>(buf[..n].to_vec())
    /// })?;
    /// assert_eq!(got, b"ping");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn sock_recv<S>(&self, sock: &S, buf: &mut [u8]) -> io::Result<usize>
    where
        S: AsRawFd,
        for<'a> &'a S: Read,
    {
        self.sock_op(sock.as_raw_fd(), false, || {
            let mut reader: &S = sock;
            reader.read(buf)
        })
        .await
    }

    /// Sends all of `data` on a non-blocking socket (asyncio's `sock_sendall`).
    pub async fn sock_sendall<S>(&self, sock: &S, mut data: &[u8]) -> io::Result<()>
    where
        S: AsRawFd,
        for<'a> &'a S: Write,
    {
        while !data.is_empty() {
            let n = self
                .sock_op(sock.as_raw_fd(), true, || {
                    let mut writer: &S = sock;
                    writer.write(data)
                })
                .await?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Connects a non-blocking socket to `addr` (asyncio's `sock_connect`): the socket is the
    /// caller's (made with `socket2` or `libc`, say), and stays theirs.
    ///
    /// ```
    /// # use evloop_reactor::doc_support::block_on;
    /// use evloop_reactor::EventLoop;
    /// use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    ///
    /// let lp = EventLoop::new()?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// // SAFETY: a fresh socket, owned by the OwnedFd from here on.
    /// let fd = unsafe {
    ///     OwnedFd::from_raw_fd(libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0))
    /// };
    /// let l = lp.clone();
    /// let stream = block_on(&lp, async move {
    ///     l.sock_connect(&fd, addr).await?;
    ///     Ok::<_, std::io::Error>(std::net::TcpStream::from(fd))
    /// })?;
    /// assert_eq!(stream.peer_addr()?, addr);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn sock_connect(&self, sock: &impl AsRawFd, addr: SocketAddr) -> io::Result<()> {
        let fd = sock.as_raw_fd();
        require_nonblocking(fd)?;
        if sys::start_connect(fd, &addr)? {
            return Ok(());
        }
        self.wait_fd(fd, true).await?;
        match sys::take_socket_error(fd)? {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Accepts a connection on a non-blocking listener (asyncio's `sock_accept`). The new
    /// socket is made non-blocking, as asyncio's is.
    pub async fn sock_accept<L: SockAccept>(&self, listener: &L) -> io::Result<(L::Conn, L::Addr)>
    where
        L::Conn: AsRawFd,
    {
        let (conn, addr) = self
            .sock_op(listener.as_raw_fd(), false, || listener.accept_now())
            .await?;
        // SAFETY: F_GETFL/F_SETFL on the fd we were just given.
        unsafe {
            let fd = conn.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
        Ok((conn, addr))
    }
}
