//! hyper's `Read`/`Write` over any `futures_io` stream (every evloop socket and pipe).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

/// An evloop stream (or any `futures_io::AsyncRead + AsyncWrite`) with hyper's I/O traits.
///
/// ```
/// use evloop::compat::hyper::HyperIo;
///
/// evloop::run(async {
///     let listener = evloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let stream = evloop::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
///     let io = HyperIo::new(stream);
///     let _stream: &evloop::net::TcpStream = io.get_ref();
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct HyperIo<T> {
    inner: T,
    /// Reads land here first (see `poll_read`); allocated on the first read.
    scratch: Option<Box<[u8]>>,
}

impl<T> HyperIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> HyperIo<T> {
        HyperIo {
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

impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // `futures_io` reads want initialized memory and hyper offers uninitialized spare
        // capacity (often tens of KiB). Zeroing that on every call cost more than the rest of a
        // request put together (measured), so reads go through a scratch buffer zeroed once per
        // connection, and only the bytes read are copied over.
        let this = &mut *self;
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

/// The scratch buffer's size: the most one read takes from the stream.
const SCRATCH: usize = 16 * 1024;

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    forward_write!();
}
