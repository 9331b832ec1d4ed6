//! A listener's incoming connections as a `futures_core::Stream`, so a server can be written as
//! a stream pipeline (`for_each_concurrent`, `take`, `select`) as well as an `accept` loop.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::{TcpListener, TcpStream, UnixListener, UnixStream};

type Accept<'a, S> = Pin<Box<dyn Future<Output = io::Result<S>> + 'a>>;

/// The connections of a [`TcpListener`] or [`UnixListener`], one `accept` after another: made by
/// their `incoming()`. It never ends; an error (other than running out of fds, which `accept`
/// waits out) is yielded and the next poll accepts again, so the server decides whether to stop.
///
/// ```
/// # use evloop_reactor::doc_support::block_on;
/// use evloop_reactor::EventLoop;
/// use evloop_reactor::net::{TcpListener, TcpStream};
///
/// let lp = EventLoop::new()?;
/// let listener = TcpListener::bind_on(&lp, "127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let peer = block_on(&lp, async move {
///     let _client = TcpStream::connect(addr).await?;
///     let mut incoming = listener.incoming();
///     let accepted = std::future::poll_fn(|cx| {
///         futures_core::Stream::poll_next(std::pin::Pin::new(&mut incoming), cx)
///     });
///     let stream = accepted.await.expect("never ends")?;
///     stream.peer_addr()
/// })?;
/// assert_eq!(peer.ip(), addr.ip());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Incoming<'a, S> {
    accept: Box<dyn Fn() -> Accept<'a, S> + 'a>,
    pending: Option<Accept<'a, S>>,
}

impl<'a, S> Incoming<'a, S> {
    fn new(accept: impl Fn() -> Accept<'a, S> + 'a) -> Incoming<'a, S> {
        Incoming {
            accept: Box::new(accept),
            pending: None,
        }
    }
}

impl<S> Stream for Incoming<'_, S> {
    type Item = io::Result<S>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let pending = this.pending.get_or_insert_with(|| (this.accept)());
        let accepted = match pending.as_mut().poll(cx) {
            Poll::Ready(accepted) => accepted,
            Poll::Pending => return Poll::Pending,
        };
        this.pending = None;
        Poll::Ready(Some(accepted))
    }
}

impl<S> fmt::Debug for Incoming<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("accepting", &self.pending.is_some())
            .finish()
    }
}

impl TcpListener {
    /// The incoming connections as a `Stream` (see [`Incoming`]).
    pub fn incoming(&self) -> Incoming<'_, TcpStream> {
        Incoming::new(move || Box::pin(async move { Ok(self.accept().await?.0) }))
    }
}

impl UnixListener {
    /// The incoming connections as a `Stream` (see [`Incoming`]).
    ///
    /// ```
    /// let lp = evloop_reactor::EventLoop::new().unwrap();
    /// let dir = std::env::temp_dir().join(format!("evloop-incoming-{}", std::process::id()));
    /// let listener = evloop_reactor::net::UnixListener::bind_on(&lp, &dir).unwrap();
    /// let _incoming = listener.incoming();
    /// std::fs::remove_file(&dir).unwrap();
    /// ```
    pub fn incoming(&self) -> Incoming<'_, UnixStream> {
        Incoming::new(move || Box::pin(async move { Ok(self.accept().await?.0) }))
    }
}
