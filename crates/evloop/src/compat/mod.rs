//! Adapters that let crates written for other runtimes' traits run on evloop, each behind its own
//! Cargo feature so a program pays only for the ecosystem it uses.
//!
//! - [`hyper`] (feature `hyper`): hyper 1.x's I/O traits on evloop streams, an executor that
//!   spawns on the loop, and a `Send + Sync` timer on the loop's thread-safe handle.
//! - [`tokio`] (feature `tokio-io`): tokio's `AsyncRead`/`AsyncWrite` on evloop streams (so
//!   tokio-util codecs work), and how to run a future that needs tokio's own runtime.

/// The body of an adapter's write impl: hyper's `Write` and tokio's `AsyncWrite` have the same four
/// methods, each forwarded to the wrapped stream's `futures_io::AsyncWrite` (shutdown through
/// [`close_write`]). The adapter keeps its stream in a field named `inner`.
#[cfg(any(feature = "hyper", feature = "tokio-io"))]
macro_rules! forward_write {
    () => {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            crate::compat::close_write(Pin::new(&mut self.inner), cx)
        }
    };
}

#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "tokio-io")]
pub mod tokio;

/// Closes the write side of `stream` for an adapter's `poll_shutdown`. A peer that has already
/// gone (`ENOTCONN`) leaves nothing to shut down, so that is success, as in tokio's sockets:
/// hyper would otherwise report every connection the client closed first as an error.
#[cfg(any(feature = "hyper", feature = "tokio-io"))]
fn close_write<T: futures_io::AsyncWrite + ?Sized>(
    stream: std::pin::Pin<&mut T>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<std::io::Result<()>> {
    match stream.poll_close(cx) {
        std::task::Poll::Ready(Err(error)) if error.kind() == std::io::ErrorKind::NotConnected => {
            std::task::Poll::Ready(Ok(()))
        }
        other => other,
    }
}
