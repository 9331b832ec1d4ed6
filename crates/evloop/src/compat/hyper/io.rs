//! hyper's `Read`/`Write` over any `futures_io` stream (every evloop socket and pipe).

use std::io;
use std::mem::MaybeUninit;
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
}

impl<T> HyperIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> HyperIo<T> {
        HyperIo { inner }
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
        // SAFETY: the bytes are only written (zeroed, then read into), never de-initialized.
        let unfilled = unsafe { buf.as_mut() };
        let slice = zeroed(unfilled);
        let n = match Pin::new(&mut self.inner).poll_read(cx, slice) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        };
        // SAFETY: the whole slice was initialized by `zeroed`, and the read filled `n <= len` of it.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

/// Initializes `bytes` with zeros and returns them as bytes: `futures_io` reads want initialized
/// memory and hyper hands out uninitialized memory, so this costs one `memset` per read.
fn zeroed(bytes: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    for byte in bytes.iter_mut() {
        byte.write(0);
    }
    // SAFETY: every element was just initialized, and `MaybeUninit<u8>` has `u8`'s layout.
    unsafe { &mut *(bytes as *mut [MaybeUninit<u8>] as *mut [u8]) }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    forward_write!();
}
