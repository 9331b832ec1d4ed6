//! asyncio's streams: `open_connection`, `start_server`, `StreamReader`, `StreamWriter`.
//!
//! A stream pair sits on a transport, as in asyncio: the transport's protocol feeds the
//! [`StreamReader`] and tracks flow control for the [`StreamWriter`]. So a stream server pays
//! one task wake-up per read on top of the transport's callback, and nothing else.
//!
//! ```
//! use evloop::streams;
//!
//! async fn handle(reader: streams::StreamReader, writer: streams::StreamWriter) {
//!     while let Ok(line) = reader.readline().await {
//!         if line.is_empty() {
//!             break; // EOF
//!         }
//!         writer.write(&line.to_ascii_uppercase()).unwrap();
//!         if writer.drain().await.is_err() {
//!             break;
//!         }
//!     }
//!     writer.close();
//! }
//!
//! evloop::run(async {
//!     let server = streams::start_server(handle, Some("127.0.0.1"), 0).await.unwrap();
//!     let port = server.tcp_addrs()[0].port();
//!     let (reader, writer) = streams::open_connection("127.0.0.1", port).await.unwrap();
//!     writer.write(b"shout\n").unwrap();
//!     assert_eq!(reader.readline().await.unwrap(), b"SHOUT\n");
//!     server.close();
//! })
//! .unwrap();
//! ```

mod errors;
mod protocol;
mod reader;
mod writer;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use evloop_reactor::transport::{Server, Transport};
use evloop_reactor::{EventLoop, get_running_loop};

pub use errors::{IncompleteReadError, LimitOverrunError, StreamError};
pub use reader::{DEFAULT_LIMIT, StreamReader};
pub use writer::StreamWriter;

use crate::network::{ConnectOptions, NetExt, ServeOptions};
use crate::tls::TlsRole;
use protocol::{Flow, StreamProtocol};

/// An I/O error kept for later (io::Error is not `Clone`): its OS code, or kind and text.
#[derive(Debug, Clone)]
pub(crate) struct StoredError {
    raw: Option<i32>,
    kind: io::ErrorKind,
    message: String,
}

impl StoredError {
    pub(crate) fn of(error: &io::Error) -> StoredError {
        StoredError {
            raw: error.raw_os_error(),
            kind: error.kind(),
            message: error.to_string(),
        }
    }

    pub(crate) fn to_error(&self) -> io::Error {
        match self.raw {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, self.message.clone()),
        }
    }
}

/// A copy of `error` (same OS code, or kind and text).
pub(crate) fn copy_error(error: &io::Error) -> io::Error {
    StoredError::of(error).to_error()
}

fn running() -> io::Result<EventLoop> {
    get_running_loop().map_err(io::Error::other)
}

fn client_protocol(limit: Option<usize>) -> (StreamProtocol, StreamReader, Rc<Flow>) {
    let reader = StreamReader::with_limit(limit.unwrap_or(DEFAULT_LIMIT));
    let flow = Rc::new(Flow::default());
    let protocol = StreamProtocol {
        reader: reader.clone(),
        flow: flow.clone(),
        on_connect: None,
    };
    (protocol, reader, flow)
}

/// Connects to `host:port` and returns the stream pair (asyncio's `open_connection`).
pub async fn open_connection(host: &str, port: u16) -> io::Result<(StreamReader, StreamWriter)> {
    open_connection_with(host, port, ConnectOptions::new()).await
}

/// [`open_connection`] with options (TLS, happy eyeballs, the reader's limit).
///
/// ```
/// use evloop::ConnectOptions;
///
/// evloop::run(async {
///     let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let port = refused.local_addr().unwrap().port();
///     drop(refused); // nothing listens there now
///     let error = evloop::streams::open_connection_with("127.0.0.1", port, ConnectOptions::new())
///         .await
///         .unwrap_err();
///     assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
/// })
/// .unwrap();
/// ```
pub async fn open_connection_with(
    host: &str,
    port: u16,
    options: ConnectOptions,
) -> io::Result<(StreamReader, StreamWriter)> {
    let lp = running()?;
    let (protocol, reader, flow) = client_protocol(options.limit);
    let transport = lp.create_connection(protocol, host, port, options).await?;
    Ok((
        reader.clone(),
        StreamWriter::new(transport, flow, Some(reader)),
    ))
}

/// Connects to the Unix socket `path` (asyncio's `open_unix_connection`).
pub async fn open_unix_connection(
    path: impl Into<PathBuf>,
    options: ConnectOptions,
) -> io::Result<(StreamReader, StreamWriter)> {
    let lp = running()?;
    let (protocol, reader, flow) = client_protocol(options.limit);
    let transport = lp.create_unix_connection(protocol, path, options).await?;
    Ok((
        reader.clone(),
        StreamWriter::new(transport, flow, Some(reader)),
    ))
}

/// The protocol factory of a stream server: each connection gets a stream pair and a task
/// running `handler` (asyncio's `client_connected_cb`).
fn server_factory<H, F>(
    lp: &EventLoop,
    handler: H,
    limit: Option<usize>,
) -> impl FnMut() -> StreamProtocol + 'static
where
    H: FnMut(StreamReader, StreamWriter) -> F + 'static,
    F: Future + 'static,
{
    use crate::LoopExt;
    let handler = Rc::new(std::cell::RefCell::new(handler));
    let lp = lp.clone();
    move || {
        let reader = StreamReader::with_limit(limit.unwrap_or(DEFAULT_LIMIT));
        let flow = Rc::new(Flow::default());
        let (handler, lp) = (handler.clone(), lp.clone());
        let (r, f) = (reader.clone(), flow.clone());
        let on_connect = Box::new(move |transport: &Transport| {
            let writer = StreamWriter::new(transport.clone(), f, Some(r.clone()));
            let future = (handler.borrow_mut())(r, writer);
            if let Ok(task) = lp.create_task(future) {
                task.detach();
            }
        });
        StreamProtocol {
            reader,
            flow,
            on_connect: Some(on_connect),
        }
    }
}

/// Serves `host:port` (every address of `host`; all interfaces with `None`), running
/// `handler(reader, writer)` as a task for each connection (asyncio's `start_server`).
pub async fn start_server<H, F>(handler: H, host: Option<&str>, port: u16) -> io::Result<Server>
where
    H: FnMut(StreamReader, StreamWriter) -> F + 'static,
    F: Future + 'static,
{
    start_server_with(handler, host, port, ServeOptions::new()).await
}

/// [`start_server`] with options (TLS, backlog, the readers' limit).
pub async fn start_server_with<H, F>(
    handler: H,
    host: Option<&str>,
    port: u16,
    options: ServeOptions,
) -> io::Result<Server>
where
    H: FnMut(StreamReader, StreamWriter) -> F + 'static,
    F: Future + 'static,
{
    let lp = running()?;
    let factory = server_factory(&lp, handler, options.limit);
    lp.create_server(factory, host, port, options).await
}

/// Serves the Unix socket `path` (asyncio's `start_unix_server`).
pub fn start_unix_server<H, F>(
    handler: H,
    path: impl Into<PathBuf>,
    options: ServeOptions,
) -> io::Result<Server>
where
    H: FnMut(StreamReader, StreamWriter) -> F + 'static,
    F: Future + 'static,
{
    let lp = running()?;
    let factory = server_factory(&lp, handler, options.limit);
    lp.create_unix_server(factory, path, options)
}

impl StreamWriter {
    /// Upgrades the connection to TLS (asyncio's `StreamWriter.start_tls`): the reader and
    /// writer go on over the TLS transport once the handshake is done.
    pub async fn start_tls(
        &self,
        role: TlsRole,
        handshake_timeout: Option<Duration>,
    ) -> io::Result<()> {
        let lp = running()?;
        let tls =
            crate::network::start_tls_on(&lp, &self.transport(), role, handshake_timeout).await?;
        if let Some(reader) = self.reader() {
            reader.set_transport(tls.clone());
        }
        let _ = self.flow();
        self.replace_transport(tls);
        Ok(())
    }
}
