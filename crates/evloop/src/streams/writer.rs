//! `StreamWriter`: a transport's writing side, with `drain` for flow control.

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::Poll;

use evloop_reactor::transport::{ExtraInfo, Transport, TransportError};

use super::errors::StreamError;
use super::protocol::Flow;
use super::reader::StreamReader;

/// The writing side of a stream connection (asyncio's `StreamWriter`). Clones share it.
///
/// `write` never blocks: it sends what the kernel takes and buffers the rest. `drain` waits
/// while the buffer is over the high-water mark (64 KiB by default) until it is back to the
/// low one (16 KiB), so a writer that drains after each write keeps its memory bounded by a
/// slow reader.
///
/// ```
/// use evloop::streams;
///
/// evloop::run(async {
///     let server = streams::start_server(
///         |reader, writer| async move {
///             let line = reader.readline().await.unwrap();
///             writer.write(&line).unwrap();
///             writer.drain().await.unwrap();
///             writer.close();
///         },
///         Some("127.0.0.1"),
///         0,
///     )
///     .await
///     .unwrap();
///     let port = server.tcp_addrs()[0].port();
///     let (reader, writer) = streams::open_connection("127.0.0.1", port).await.unwrap();
///     writer.write(b"hello\n").unwrap();
///     assert_eq!(reader.readline().await.unwrap(), b"hello\n");
///     assert_eq!(reader.read(100).await.unwrap(), b"", "the server closed");
///     writer.close();
///     writer.wait_closed().await.unwrap();
///     server.close();
///     server.wait_closed().await;
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct StreamWriter {
    transport: Rc<RefCell<Transport>>,
    flow: Rc<Flow>,
    reader: Option<StreamReader>,
}

impl StreamWriter {
    pub(crate) fn new(
        transport: Transport,
        flow: Rc<Flow>,
        reader: Option<StreamReader>,
    ) -> StreamWriter {
        StreamWriter {
            transport: Rc::new(RefCell::new(transport)),
            flow,
            reader,
        }
    }

    /// The transport underneath.
    pub fn transport(&self) -> Transport {
        self.transport.borrow().clone()
    }

    pub(crate) fn replace_transport(&self, transport: Transport) {
        *self.transport.borrow_mut() = transport;
    }

    pub(crate) fn reader(&self) -> Option<&StreamReader> {
        self.reader.as_ref()
    }

    pub(crate) fn flow(&self) -> &Rc<Flow> {
        &self.flow
    }

    /// Sends `data` (buffered past what the kernel takes; never blocks).
    pub fn write(&self, data: &[u8]) -> Result<(), TransportError> {
        self.transport.borrow().write(data)
    }

    /// Sends each buffer in turn.
    pub fn writelines<'a>(
        &self,
        lines: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), TransportError> {
        self.transport.borrow().writelines(lines)
    }

    /// Half-closes once the buffer is flushed.
    pub fn write_eof(&self) -> Result<(), TransportError> {
        self.transport.borrow().write_eof()
    }

    /// Whether `write_eof` is possible (not over TLS).
    pub fn can_write_eof(&self) -> bool {
        self.transport.borrow().can_write_eof()
    }

    /// Closes the connection once the buffer is flushed.
    pub fn close(&self) {
        self.transport.borrow().close();
    }

    /// Whether the connection is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.transport.borrow().is_closing()
    }

    /// asyncio's `get_extra_info`: `"peername"`, `"sockname"`, `"socket"`, and over TLS
    /// `"peercert"`, `"cipher"`, `"version"`.
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        self.transport.borrow().get_extra_info(name)
    }

    /// Waits until the write buffer is under the low-water mark. Fails with the reader's
    /// error if the connection failed, or "Connection lost" once it is gone.
    pub async fn drain(&self) -> Result<(), StreamError> {
        if let Some(error) = self.reader.as_ref().and_then(StreamReader::exception) {
            return Err(StreamError::Io(error));
        }
        if self.is_closing() {
            // Let connection_lost run if it is due (asyncio's `await sleep(0)`).
            crate::yield_now().await;
        }
        poll_fn(|cx| {
            if self.flow.lost.get() {
                return Poll::Ready(Err(StreamError::Io(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "Connection lost",
                ))));
            }
            if !self.flow.paused.get() {
                return Poll::Ready(Ok(()));
            }
            self.flow.wait(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Waits until the connection is closed; the connection's error if it failed.
    pub async fn wait_closed(&self) -> Result<(), StreamError> {
        poll_fn(|cx| {
            if self.flow.lost.get() {
                return Poll::Ready(match &*self.flow.lost_error.borrow() {
                    Some(error) => Err(StreamError::Io(error.to_error())),
                    None => Ok(()),
                });
            }
            self.flow.wait(cx.waker());
            Poll::Pending
        })
        .await
    }
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter")
            .field("transport", &*self.transport.borrow())
            .finish()
    }
}
