//! tokio's I/O traits on evloop streams, so crates written against `tokio::io` (tokio-util's
//! codecs, `tokio::io::copy`, protocol crates) work on evloop sockets and pipes; and how to run
//! what needs tokio's runtime itself.
//!
//! [`TokioIo`] wraps any `futures_io` stream (every evloop socket and pipe):
//!
//! ```
//! use evloop::compat::tokio::TokioIo;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let echoed = evloop::run(async {
//!     let (a, b) = evloop::net::UnixStream::pair().unwrap();
//!     let (mut a, mut b) = (TokioIo::new(a), TokioIo::new(b));
//!     a.write_all(b"ping").await.unwrap();
//!     let mut buf = [0u8; 4];
//!     b.read_exact(&mut buf).await.unwrap();
//!     buf
//! });
//! assert_eq!(&echoed.unwrap(), b"ping");
//! ```
//!
//! # Running a tokio-only future inside evloop
//!
//! What works unchanged, with no tokio runtime: everything written against tokio's *traits*
//! (through `TokioIo`) and `tokio::sync` (channels, `Mutex`, `Notify`, `Semaphore`), which are
//! runtime-agnostic.
//!
//! What does not: tokio's timers (`tokio::time::sleep`, `timeout`, `interval`), sockets
//! (`tokio::net`), `tokio::spawn` and `spawn_blocking` look for tokio's runtime in a thread-local
//! and panic without one ("there is no reactor running, must be called from the context of a
//! Tokio 1.x runtime"); in an evloop task that panic is caught and fails the task. Two ways to run
//! such futures from evloop:
//!
//! 1. **Spawn it on a tokio runtime and await the handle** (any `Send` future): the
//!    `JoinHandle` is a plain future, so evloop awaits it, and the result arrives through evloop's
//!    waker (a wake from tokio's thread, like an executor job's).
//!
//!    ```
//!    let rt = tokio::runtime::Builder::new_multi_thread()
//!        .worker_threads(1)
//!        .enable_all()
//!        .build()
//!        .unwrap();
//!    let handle = rt.handle().clone();
//!    let value = evloop::run(async move {
//!        handle
//!            .spawn(async {
//!                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
//!                42
//!            })
//!            .await
//!            .unwrap()
//!    });
//!    assert_eq!(value.unwrap(), 42);
//!    ```
//!
//! 2. **Enter a multi-thread tokio runtime on the loop thread** for the whole run
//!    (`let _guard = rt.enter();` before `evloop::run`): tokio timers and sockets made inside
//!    evloop tasks then find the runtime, and its driver, which runs on tokio's worker threads,
//!    wakes the evloop tasks across threads. `!Send` futures work this way too. It does not work
//!    with a `current_thread` runtime, whose driver runs only inside its own `block_on`: the
//!    futures would never be woken.
//!
//! Either way each tokio timer or socket event costs a cross-thread wake-up; for servers, use
//! evloop's own sockets and timers, with `TokioIo` where a crate wants tokio's traits.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

/// An evloop stream (or any `futures_io::AsyncRead`/`AsyncWrite`) with tokio's
/// `AsyncRead`/`AsyncWrite`.
///
/// ```
/// use evloop::compat::tokio::TokioIo;
/// use tokio::io::AsyncWriteExt;
///
/// evloop::run(async {
///     let (a, b) = evloop::net::UnixStream::pair().unwrap();
///     let mut a = TokioIo::new(a);
///     a.shutdown().await.unwrap(); // poll_shutdown is futures-io's poll_close
///     let mut rest = Vec::new();
///     futures_util::AsyncReadExt::read_to_end(&mut &b, &mut rest).await.unwrap();
///     assert!(rest.is_empty());
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct TokioIo<T> {
    inner: T,
    /// Reads into uninitialized space land here first; allocated on first need.
    scratch: Option<Box<[u8]>>,
}

impl<T> TokioIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> TokioIo<T> {
        TokioIo {
            inner,
            scratch: None,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> tokio::io::AsyncRead for TokioIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let ready = buf.initialized().len() - buf.filled().len();
        if ready > 0 {
            // Initialized space (a caller's `&mut [u8]`): read straight into it.
            let n = match Pin::new(&mut this.inner).poll_read(cx, buf.initialize_unfilled_to(ready))
            {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            };
            buf.advance(n);
            return Poll::Ready(Ok(()));
        }
        // Uninitialized space (a codec's `BytesMut`, offered afresh on every call): zeroing it
        // each time would cost more than the read, so read into a scratch buffer zeroed once
        // and copy the bytes read (as `HyperIo` does).
        let scratch = this
            .scratch
            .get_or_insert_with(|| vec![0; SCRATCH].into_boxed_slice());
        let len = buf.remaining().min(scratch.len());
        let n = match Pin::new(&mut this.inner).poll_read(cx, &mut scratch[..len]) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        };
        buf.put_slice(&scratch[..n]);
        Poll::Ready(Ok(()))
    }
}

/// The scratch buffer's size: the most one read into uninitialized space takes.
const SCRATCH: usize = 16 * 1024;

impl<T: AsyncWrite + Unpin> tokio::io::AsyncWrite for TokioIo<T> {
    forward_write!();
}
