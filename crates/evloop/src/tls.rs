//! TLS for transports and streams, on rustls (asyncio's `ssl=` and `start_tls`).
//!
//! asyncio's TLS is a protocol layered over a transport (`sslproto`): the socket transport's
//! protocol decrypts and calls the application's protocol, and the application writes to a
//! TLS transport that encrypts into the socket transport. This module is that layer, on
//! rustls's sans-I/O connection: ciphertext from `data_received` goes into `read_tls`,
//! plaintext comes out of `reader()`, and what rustls wants to send goes to the socket
//! transport's `write`. Because it works on transports, `start_tls` can upgrade a connection
//! that is already open, which an `AsyncRead`/`AsyncWrite` wrapper cannot do
//! (docs/architecture.md says why rustls is used directly).
//!
//! The application's `connection_made` runs once the handshake is done; `create_connection`
//! and `start_tls` return then, or fail with the handshake's error. A handshake that takes
//! longer than the timeout (60 s by default, asyncio's) aborts the connection. TLS has no
//! half-close: `write_eof` is refused, as asyncio's `can_write_eof()` is false over SSL.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use evloop_reactor::transport::{ExtraInfo, Protocol, Transport, TransportError, TransportImpl};
use evloop_reactor::{EventLoop, TimerHandle};

/// rustls itself, for building configurations.
pub use rustls;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::streams::StoredError;

/// asyncio's `SSL_HANDSHAKE_TIMEOUT`: 60 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client side's TLS settings (asyncio's client `SSLContext`).
///
/// ```
/// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// let tls = evloop::tls::ClientTls::with_roots([cert.cert.der().clone()]).unwrap();
/// # let _ = tls;
/// ```
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl ClientTls {
    /// Uses `config` as given.
    pub fn new(config: Arc<rustls::ClientConfig>) -> ClientTls {
        ClientTls { config }
    }

    /// Trusts exactly `roots` (rustls's safe defaults otherwise; no client certificate).
    pub fn with_roots(
        roots: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<ClientTls, rustls::Error> {
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store.add(root)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(ClientTls::new(Arc::new(config)))
    }
}

/// The server side's TLS settings (asyncio's server `SSLContext`).
///
/// ```
/// use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
///
/// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
/// let tls = evloop::tls::ServerTls::with_single_cert(vec![cert.cert.der().clone()], key).unwrap();
/// # let _ = tls;
/// ```
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    /// Uses `config` as given.
    pub fn new(config: Arc<rustls::ServerConfig>) -> ServerTls {
        ServerTls { config }
    }

    /// Serves `chain` (leaf first) with `key`; no client authentication.
    pub fn with_single_cert(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<ServerTls, rustls::Error> {
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        Ok(ServerTls::new(Arc::new(config)))
    }
}

/// Which side of the handshake to play in [`start_tls`](crate::NetExt::start_tls).
#[derive(Clone)]
pub enum TlsRole {
    /// The client, checking the server's certificate against `server_hostname`.
    Client(ClientTls, String),
    /// The server.
    Server(ServerTls),
}

fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

enum Handshake {
    Pending(Option<Waker>),
    Done,
    Failed(StoredError),
}

/// The TLS layer of one connection: the application's transport (this) and, through
/// [`Adapter`], the socket transport's protocol.
pub(crate) struct TlsLayer {
    lp: EventLoop,
    me: Weak<TlsLayer>,
    conn: RefCell<rustls::Connection>,
    raw: RefCell<Option<Transport>>,
    app: RefCell<Option<Box<dyn Protocol>>>,
    /// Whether the application's `connection_made` is called at the handshake's end.
    call_made: bool,
    app_started: Cell<bool>,
    handshake: RefCell<Handshake>,
    timeout: Duration,
    timer: RefCell<Option<TimerHandle>>,
    closing: Cell<bool>,
}

impl TlsLayer {
    fn new(
        lp: &EventLoop,
        conn: rustls::Connection,
        app: Option<Box<dyn Protocol>>,
        call_made: bool,
        timeout: Duration,
    ) -> Rc<TlsLayer> {
        Rc::new_cyclic(|me| TlsLayer {
            lp: lp.clone(),
            me: me.clone(),
            conn: RefCell::new(conn),
            raw: RefCell::new(None),
            app: RefCell::new(app),
            call_made,
            app_started: Cell::new(false),
            handshake: RefCell::new(Handshake::Pending(None)),
            timeout,
            timer: RefCell::new(None),
            closing: Cell::new(false),
        })
    }

    /// A client connection to `server_name`.
    pub(crate) fn client(
        lp: &EventLoop,
        tls: &ClientTls,
        server_name: &str,
        app: Option<Box<dyn Protocol>>,
        call_made: bool,
        timeout: Duration,
    ) -> io::Result<Rc<TlsLayer>> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let conn = rustls::ClientConnection::new(tls.config.clone(), name).map_err(tls_error)?;
        Ok(TlsLayer::new(lp, conn.into(), app, call_made, timeout))
    }

    /// A server connection.
    pub(crate) fn server(
        lp: &EventLoop,
        tls: &ServerTls,
        app: Option<Box<dyn Protocol>>,
        call_made: bool,
        timeout: Duration,
    ) -> io::Result<Rc<TlsLayer>> {
        let conn = rustls::ServerConnection::new(tls.config.clone()).map_err(tls_error)?;
        Ok(TlsLayer::new(lp, conn.into(), app, call_made, timeout))
    }

    /// The socket transport's protocol for this layer.
    pub(crate) fn adapter(self: &Rc<Self>) -> Box<dyn Protocol> {
        Box::new(Adapter(self.clone()))
    }

    /// The application's transport.
    pub(crate) fn transport(self: &Rc<Self>) -> Transport {
        Transport::new(self.clone())
    }

    pub(crate) fn set_app(&self, app: Option<Box<dyn Protocol>>) {
        *self.app.borrow_mut() = app;
    }

    /// Starts on `raw`: sends the client's hello (if a client) and arms the timeout.
    pub(crate) fn attach(&self, raw: &Transport) {
        *self.raw.borrow_mut() = Some(raw.clone());
        let timeout = self.timeout;
        let me = self.me.clone();
        let timer = self.lp.call_later(timeout, move || {
            if let Some(me) = me.upgrade() {
                let message = format!(
                    "SSL handshake is taking longer than {} seconds: aborting the connection",
                    timeout.as_secs_f64()
                );
                me.fail(io::Error::new(io::ErrorKind::ConnectionAborted, message));
            }
        });
        *self.timer.borrow_mut() = timer.ok();
        self.flush();
    }

    /// Waits for the handshake's end.
    pub(crate) async fn handshake(&self) -> io::Result<()> {
        poll_fn(|cx| match &mut *self.handshake.borrow_mut() {
            Handshake::Done => Poll::Ready(Ok(())),
            Handshake::Failed(error) => Poll::Ready(Err(error.to_error())),
            Handshake::Pending(waker) => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    fn raw(&self) -> Option<Transport> {
        self.raw.borrow().clone()
    }

    fn with_app(&self, f: impl FnOnce(&mut dyn Protocol)) {
        if let Ok(mut app) = self.app.try_borrow_mut() {
            if let Some(app) = app.as_mut() {
                f(&mut **app);
            }
        }
    }

    /// Hands what rustls wants to send to the socket transport.
    fn flush(&self) {
        let mut out = Vec::new();
        {
            let mut conn = self.conn.borrow_mut();
            while conn.wants_write() {
                if conn.write_tls(&mut out).is_err() {
                    break;
                }
            }
        }
        if !out.is_empty() {
            if let Some(raw) = self.raw() {
                let _ = raw.write(&out);
            }
        }
    }

    fn finish_handshake(&self, outcome: Result<(), io::Error>) {
        let waker = {
            let mut handshake = self.handshake.borrow_mut();
            let Handshake::Pending(waker) = &mut *handshake else {
                return;
            };
            let waker = waker.take();
            *handshake = match &outcome {
                Ok(()) => Handshake::Done,
                Err(error) => Handshake::Failed(StoredError::of(error)),
            };
            waker
        };
        if let Some(timer) = self.timer.borrow_mut().take() {
            timer.cancel();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
        if outcome.is_ok() && self.call_made && !self.app_started.replace(true) {
            let transport = self.me.upgrade().map(|me| me.transport());
            if let Some(transport) = transport {
                self.with_app(|app| app.connection_made(&transport));
            }
        } else if outcome.is_ok() {
            self.app_started.set(true);
        }
    }

    fn fail(&self, error: io::Error) {
        self.finish_handshake(Err(crate::streams::copy_error(&error)));
        if let Some(raw) = self.raw() {
            raw.abort();
        }
    }

    fn receive(&self, mut data: &[u8]) {
        let mut plain = Vec::new();
        let mut peer_closed = false;
        let mut failure = None;
        {
            let mut conn = self.conn.borrow_mut();
            while !data.is_empty() && failure.is_none() {
                if let Err(error) = conn.read_tls(&mut data) {
                    failure = Some(error);
                    break;
                }
                if let Err(error) = conn.process_new_packets() {
                    failure = Some(tls_error(error));
                    break;
                }
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    match conn.reader().read(&mut chunk) {
                        Ok(0) => {
                            peer_closed = true;
                            break;
                        }
                        Ok(n) => plain.extend_from_slice(&chunk[..n]),
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    }
                }
            }
        }
        // Alerts and handshake messages go out before anything else happens.
        self.flush();
        if let Some(error) = failure {
            return self.fail(error);
        }
        if !self.conn.borrow().is_handshaking() {
            self.finish_handshake(Ok(()));
        }
        if !plain.is_empty() && self.app_started.get() {
            self.with_app(|app| app.data_received(&plain));
        }
        if peer_closed {
            // asyncio: TLS has no half-close; the peer's close_notify closes the connection.
            self.with_app(|app| {
                app.eof_received();
            });
            TransportImpl::close(self);
        }
    }
}

/// The socket transport's protocol: ciphertext in, events passed on to the application.
struct Adapter(Rc<TlsLayer>);

impl Protocol for Adapter {
    fn connection_made(&mut self, transport: &Transport) {
        self.0.attach(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.0.receive(data);
    }

    fn eof_received(&mut self) -> bool {
        let layer = &self.0;
        if matches!(&*layer.handshake.borrow(), Handshake::Pending(_)) {
            layer.finish_handshake(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "Connection lost during the SSL handshake",
            )));
        } else {
            layer.with_app(|app| {
                app.eof_received();
            });
        }
        false
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        let layer = &self.0;
        layer.closing.set(true);
        if matches!(&*layer.handshake.borrow(), Handshake::Pending(_)) {
            let error = error
                .as_ref()
                .map(crate::streams::copy_error)
                .unwrap_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "Connection lost during the SSL handshake",
                    )
                });
            layer.finish_handshake(Err(error));
        }
        if layer.app_started.get() {
            layer.with_app(|app| app.connection_lost(error));
        }
        // Break the cycles: application protocol -> TLS transport -> layer -> raw transport.
        let app = layer
            .app
            .try_borrow_mut()
            .ok()
            .and_then(|mut app| app.take());
        drop(app);
        layer.raw.borrow_mut().take();
    }

    fn pause_writing(&mut self) {
        self.0.with_app(|app| app.pause_writing());
    }

    fn resume_writing(&mut self) {
        self.0.with_app(|app| app.resume_writing());
    }
}

fn version_name(version: rustls::ProtocolVersion) -> String {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

impl TransportImpl for TlsLayer {
    fn write(&self, data: &[u8]) -> Result<(), TransportError> {
        if data.is_empty() || self.closing.get() {
            return Ok(());
        }
        // Before the handshake's end rustls keeps the plaintext and sends it afterwards.
        let _ = self.conn.borrow_mut().writer().write_all(data);
        self.flush();
        Ok(())
    }

    fn write_eof(&self) -> Result<(), TransportError> {
        Err(TransportError::Unsupported("write_eof"))
    }

    fn can_write_eof(&self) -> bool {
        false
    }

    fn close(&self) {
        if self.closing.replace(true) {
            return;
        }
        self.conn.borrow_mut().send_close_notify();
        self.flush();
        if let Some(raw) = self.raw() {
            raw.close();
        }
    }

    fn abort(&self) {
        self.closing.set(true);
        if let Some(raw) = self.raw() {
            raw.abort();
        }
    }

    fn is_closing(&self) -> bool {
        self.closing.get() || self.raw().is_none_or(|raw| raw.is_closing())
    }

    fn pause_reading(&self) {
        if let Some(raw) = self.raw() {
            raw.pause_reading();
        }
    }

    fn resume_reading(&self) {
        if let Some(raw) = self.raw() {
            raw.resume_reading();
        }
    }

    fn is_reading(&self) -> bool {
        self.raw().is_some_and(|raw| raw.is_reading())
    }

    fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), TransportError> {
        match self.raw() {
            Some(raw) => raw.set_write_buffer_limits(high, low),
            None => Ok(()),
        }
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.raw().map_or(
            (
                evloop_reactor::transport::DEFAULT_LOW_WATER,
                evloop_reactor::transport::DEFAULT_HIGH_WATER,
            ),
            |raw| raw.get_write_buffer_limits(),
        )
    }

    fn get_write_buffer_size(&self) -> usize {
        self.raw().map_or(0, |raw| raw.get_write_buffer_size())
    }

    fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        let conn = self.conn.borrow();
        match name {
            "peercert" => conn
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| ExtraInfo::Bytes(cert.as_ref().to_vec())),
            "cipher" => conn
                .negotiated_cipher_suite()
                .map(|suite| ExtraInfo::Text(format!("{:?}", suite.suite()))),
            "version" => conn
                .protocol_version()
                .map(|v| ExtraInfo::Text(version_name(v))),
            _ => {
                drop(conn);
                self.raw()?.get_extra_info(name)
            }
        }
    }

    fn set_protocol(
        &self,
        protocol: Box<dyn Protocol>,
    ) -> Result<Option<Box<dyn Protocol>>, TransportError> {
        match self.app.try_borrow_mut() {
            Ok(mut app) => Ok(app.replace(protocol)),
            Err(_) => Err(TransportError::ProtocolBusy),
        }
    }
}
