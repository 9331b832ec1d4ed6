//! The async ends of a child's pipes.
//!
//! Each pipe tells the child's state when the child's end goes away (hang-up, or the pipe is
//! dropped here): `wait()` resolves only once every pipe is disconnected, as in asyncio.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use mio::Interest;
use mio::unix::pipe::{Receiver, Sender};

use super::ChildState;
use crate::EventLoop;
use crate::io::evented::PollEvented;
use crate::io::registry::Direction;

fn hook(io: &PollEvented<impl mio::event::Source>, state: &Rc<ChildState>) {
    state.pipes_open.set(state.pipes_open.get() + 1);
    let state = state.clone();
    io.scheduled()
        .set_on_disconnect(Box::new(move || state.pipe_disconnected()));
}

/// The child's stdin: `AsyncWrite`. Dropping it (or [`close`](ChildStdin::close)) closes the
/// pipe, which the child sees as EOF.
///
/// ```
/// use evloop_reactor::EventLoop;
/// use evloop_reactor::process::create_subprocess_exec;
/// use std::process::Stdio;
///
/// let lp = EventLoop::new()?;
/// let mut proc = create_subprocess_exec("cat", [] as [&str; 0])
///     .stdin(Stdio::piped())
///     .stdout(Stdio::null())
///     .spawn_on(&lp)?;
/// proc.stdin.take().unwrap().close(); // cat sees EOF and exits
/// while proc.returncode().is_none() {
///     lp.run_once()?;
/// }
/// assert_eq!(proc.returncode(), Some(0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ChildStdin {
    io: PollEvented<Sender>,
}

impl ChildStdin {
    pub(crate) fn new(
        lp: &EventLoop,
        pipe: std::process::ChildStdin,
        state: &Rc<ChildState>,
    ) -> io::Result<ChildStdin> {
        let sender = Sender::from(pipe);
        sender.set_nonblocking(true)?;
        let io = PollEvented::new_on(lp, sender, Interest::WRITABLE)?;
        hook(&io, state);
        Ok(ChildStdin { io })
    }

    /// Polls a write of some of `buf`.
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io
            .poll_stream(cx, Direction::Write, buf.len(), |mut s| s.write(buf))
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = std::future::poll_fn(|cx| self.poll_write(cx, buf)).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Closes the pipe (the child reads EOF).
    pub fn close(self) {}
}

impl futures_io::AsyncWrite for ChildStdin {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ChildStdin::poll_write(&self, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The pipe closes when the value is dropped; nothing is buffered before that.
        Poll::Ready(Ok(()))
    }
}

macro_rules! read_pipe {
    ($name:ident, $std:ty, $what:literal) => {
        #[doc = concat!("The child's ", $what, ": `AsyncRead`.")]
        ///
        /// ```
        /// use evloop_reactor::EventLoop;
        /// use evloop_reactor::process::create_subprocess_shell;
        /// use std::process::Stdio;
        /// use std::task::{Context, Poll, Waker};
        ///
        /// let lp = EventLoop::new()?;
        /// let proc = create_subprocess_shell("echo hi; echo hi >&2")
        ///     .stdout(Stdio::piped())
        ///     .stderr(Stdio::piped())
        ///     .spawn_on(&lp)?;
        /// let (out, err) = (proc.stdout.as_ref().unwrap(), proc.stderr.as_ref().unwrap());
        /// let mut cx = Context::from_waker(Waker::noop());
        /// let mut buf = [0u8; 8];
        /// // Poll by hand until the data is there (an executor would do this on wake-ups).
        /// let n = loop {
        ///     if let Poll::Ready(n) = out.poll_read(&mut cx, &mut buf) {
        ///         break n?;
        ///     }
        ///     lp.run_once()?;
        /// };
        /// assert_eq!(&buf[..n], b"hi\n");
        /// # let _ = err;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub struct $name {
            io: PollEvented<Receiver>,
        }

        impl $name {
            pub(crate) fn new(
                lp: &EventLoop,
                pipe: $std,
                state: &Rc<ChildState>,
            ) -> io::Result<$name> {
                let receiver = Receiver::from(pipe);
                receiver.set_nonblocking(true)?;
                let io = PollEvented::new_on(lp, receiver, Interest::READABLE)?;
                hook(&io, state);
                Ok($name { io })
            }

            /// Polls a read into `buf` (`Ok(0)` at EOF).
            pub fn poll_read(
                &self,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                let len = buf.len();
                self.io
                    .poll_stream(cx, Direction::Read, len, |mut s| s.read(buf))
            }

            /// Reads into `buf` (`Ok(0)` at EOF).
            pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
                std::future::poll_fn(|cx| self.poll_read(cx, buf)).await
            }

            /// Reads everything up to EOF, appending to `out`; returns the count.
            pub async fn read_to_end(&self, out: &mut Vec<u8>) -> io::Result<usize> {
                let start = out.len();
                let mut chunk = [0u8; 8192];
                loop {
                    let n = self.read(&mut chunk).await?;
                    if n == 0 {
                        return Ok(out.len() - start);
                    }
                    out.extend_from_slice(&chunk[..n]);
                }
            }
        }

        impl futures_io::AsyncRead for $name {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                $name::poll_read(&self, cx, buf)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

read_pipe!(ChildStdout, std::process::ChildStdout, "stdout");
read_pipe!(ChildStderr, std::process::ChildStderr, "stderr");

impl std::fmt::Debug for ChildStdin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildStdin").finish_non_exhaustive()
    }
}
