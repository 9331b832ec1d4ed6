//! The loop's networking methods that take host names or TLS (asyncio's `create_connection`,
//! `create_server`, `create_unix_*`, `create_datagram_endpoint`, `start_tls`, `getaddrinfo`,
//! `getnameinfo`).
//!
//! They live here, above the reactor, because a host name is resolved on the default executor
//! and TLS is a layer of its own; the reactor's [`transport`](crate::transport) module has
//! the same calls for resolved addresses. A host with several addresses is tried address by
//! address, or, with a happy-eyeballs delay, by a staggered race (RFC 8305, as asyncio 3.8+).

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use evloop_reactor::EventLoop;
use evloop_reactor::net::TcpStream;
use evloop_reactor::transport::{
    self, DatagramProtocol, DatagramTransport, Protocol, Server, Transport,
};

use crate::resolve::{self, AddrInfo, AddrInfoHints, ResolveError};
use crate::tls::{ClientTls, DEFAULT_HANDSHAKE_TIMEOUT, ServerTls, TlsLayer, TlsRole};

/// How to connect: TLS, the name to check the certificate against, happy eyeballs.
///
/// ```
/// use std::time::Duration;
/// let options = evloop::ConnectOptions::new().happy_eyeballs_delay(Duration::from_millis(250));
/// # let _ = options;
/// ```
#[derive(Clone, Default)]
pub struct ConnectOptions {
    pub(crate) tls: Option<ClientTls>,
    pub(crate) server_hostname: Option<String>,
    pub(crate) happy_eyeballs_delay: Option<Duration>,
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) limit: Option<usize>,
}

impl ConnectOptions {
    /// Plain TCP, addresses tried one after the other.
    pub fn new() -> ConnectOptions {
        ConnectOptions::default()
    }

    /// Speaks TLS (asyncio's `ssl=`).
    pub fn tls(mut self, tls: ClientTls) -> ConnectOptions {
        self.tls = Some(tls);
        self
    }

    /// The name the server's certificate must carry (default: the host).
    pub fn server_hostname(mut self, name: impl Into<String>) -> ConnectOptions {
        self.server_hostname = Some(name.into());
        self
    }

    /// Starts the next address's attempt after `delay` even if the previous one is still
    /// pending; the first to connect wins (asyncio's `happy_eyeballs_delay`; 250 ms is RFC
    /// 8305's advice). The address families are interleaved, as asyncio does.
    pub fn happy_eyeballs_delay(mut self, delay: Duration) -> ConnectOptions {
        self.happy_eyeballs_delay = Some(delay);
        self
    }

    /// How long the TLS handshake may take (default 60 s).
    pub fn ssl_handshake_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.handshake_timeout = Some(timeout);
        self
    }

    /// The stream reader's limit (streams only; default 64 KiB).
    pub fn limit(mut self, limit: usize) -> ConnectOptions {
        self.limit = Some(limit);
        self
    }
}

/// How to serve: TLS, the listen backlog.
///
/// ```
/// let options = evloop::ServeOptions::new().backlog(1024);
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct ServeOptions {
    pub(crate) tls: Option<ServerTls>,
    pub(crate) backlog: u32,
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) limit: Option<usize>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            tls: None,
            backlog: 100,
            handshake_timeout: None,
            limit: None,
        }
    }
}

impl ServeOptions {
    /// Plain TCP, asyncio's backlog of 100.
    pub fn new() -> ServeOptions {
        ServeOptions::default()
    }

    /// Speaks TLS (asyncio's `ssl=`).
    pub fn tls(mut self, tls: ServerTls) -> ServeOptions {
        self.tls = Some(tls);
        self
    }

    /// The listen backlog, also how many connections one readiness event accepts.
    pub fn backlog(mut self, backlog: u32) -> ServeOptions {
        self.backlog = backlog;
        self
    }

    /// How long a client's TLS handshake may take (default 60 s).
    pub fn ssl_handshake_timeout(mut self, timeout: Duration) -> ServeOptions {
        self.handshake_timeout = Some(timeout);
        self
    }

    /// The stream reader's limit (streams only; default 64 KiB).
    pub fn limit(mut self, limit: usize) -> ServeOptions {
        self.limit = Some(limit);
        self
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for evloop_reactor::EventLoop {}
}

/// The loop's networking methods that resolve names or speak TLS.
///
/// ```
/// use evloop::{AddrInfoHints, NetExt};
///
/// evloop::run(async {
///     let lp = evloop::get_running_loop().unwrap();
///     let found = lp.getaddrinfo(Some("localhost"), 80, AddrInfoHints::stream()).await.unwrap();
///     assert!(found.iter().all(|info| info.addr.ip().is_loopback() && info.addr.port() == 80));
/// })
/// .unwrap();
/// ```
pub trait NetExt: sealed::Sealed {
    /// Resolves `host` and `port` on the default executor (asyncio's `getaddrinfo`); an IP
    /// literal is answered at once.
    fn getaddrinfo(
        &self,
        host: Option<&str>,
        port: u16,
        hints: AddrInfoHints,
    ) -> impl Future<Output = Result<Vec<AddrInfo>, ResolveError>> + 'static;

    /// Looks `addr` up on the default executor (asyncio's `getnameinfo`): `(host, service)`.
    fn getnameinfo(
        &self,
        addr: SocketAddr,
        flags: i32,
    ) -> impl Future<Output = Result<(String, String), ResolveError>> + 'static;

    /// Connects to `host:port` and starts `protocol` on the connection (asyncio's
    /// `create_connection`; the protocol is given, not a factory, since exactly one is made).
    /// Each address is tried in turn; when all fail, the error is the one failure, or
    /// "Multiple exceptions: ..." listing them. With TLS, this returns after the handshake.
    fn create_connection<P: Protocol>(
        &self,
        protocol: P,
        host: &str,
        port: u16,
        options: ConnectOptions,
    ) -> impl Future<Output = io::Result<Transport>> + 'static;

    /// Listens on `host:port` (every address of `host`; all interfaces with `None`) and
    /// serves each connection with a protocol from `factory` (asyncio's `create_server`).
    fn create_server<P: Protocol, F: FnMut() -> P + 'static>(
        &self,
        factory: F,
        host: Option<&str>,
        port: u16,
        options: ServeOptions,
    ) -> impl Future<Output = io::Result<Server>> + 'static;

    /// Connects to the Unix socket `path` (asyncio's `create_unix_connection`).
    fn create_unix_connection<P: Protocol>(
        &self,
        protocol: P,
        path: impl Into<PathBuf>,
        options: ConnectOptions,
    ) -> impl Future<Output = io::Result<Transport>> + 'static;

    /// Listens on the Unix socket `path` (asyncio's `create_unix_server`).
    fn create_unix_server<P: Protocol, F: FnMut() -> P + 'static>(
        &self,
        factory: F,
        path: impl Into<PathBuf>,
        options: ServeOptions,
    ) -> io::Result<Server>;

    /// A UDP endpoint bound to `local` and/or connected to `remote`, host names resolved
    /// (asyncio's `create_datagram_endpoint`).
    fn create_datagram_endpoint<P: DatagramProtocol>(
        &self,
        protocol: P,
        local: Option<(&str, u16)>,
        remote: Option<(&str, u16)>,
    ) -> impl Future<Output = io::Result<DatagramTransport>> + 'static;

    /// Upgrades an open connection to TLS (asyncio's `start_tls`): the transport's current
    /// protocol becomes the application protocol above the TLS layer, and the TLS transport is
    /// returned once the handshake is done.
    fn start_tls(
        &self,
        transport: &Transport,
        role: TlsRole,
        handshake_timeout: Option<Duration>,
    ) -> impl Future<Output = io::Result<Transport>> + 'static;
}

/// asyncio's error when every address failed.
pub(crate) fn combine_errors(mut errors: Vec<io::Error>) -> io::Error {
    if errors.len() == 1 {
        return errors.remove(0);
    }
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    if texts.iter().all(|t| t == &texts[0]) {
        return errors.remove(0);
    }
    io::Error::other(format!("Multiple exceptions: {}", texts.join(", ")))
}

/// asyncio's `_interleave_addrinfos`: alternate the families, starting with the first's.
fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let v4_first = addrs[0].is_ipv4();
    let (first, second): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addrs.into_iter().partition(|a| a.is_ipv4() == v4_first);
    let mut out = Vec::with_capacity(first.len() + second.len());
    let (mut a, mut b) = (first.into_iter(), second.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

async fn resolve_stream(lp: &EventLoop, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let infos = resolve::getaddrinfo(lp, Some(host), port, AddrInfoHints::stream()).await?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for info in infos {
        if !addrs.contains(&info.addr) {
            addrs.push(info.addr);
        }
    }
    if addrs.is_empty() {
        return Err(io::Error::other("getaddrinfo() returned empty list"));
    }
    Ok(addrs)
}

type Attempt = Pin<Box<dyn Future<Output = io::Result<TcpStream>>>>;

/// RFC 8305's staggered race: attempt `i` starts `delay` after attempt `i - 1` (or at once
/// when every earlier attempt has failed); the first connection wins, the others are dropped
/// (which closes their sockets).
async fn staggered(addrs: Vec<SocketAddr>, delay: Duration) -> io::Result<TcpStream> {
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut next = 0;
    let mut errors = Vec::new();
    let mut timer: Option<Pin<Box<crate::Sleep>>> = None;
    poll_fn(|cx| {
        loop {
            let timer_fired = timer
                .as_mut()
                .is_some_and(|t| t.as_mut().poll(cx).is_ready());
            if next < addrs.len() && (attempts.is_empty() || timer_fired) {
                attempts.push(Box::pin(TcpStream::connect(addrs[next])));
                next += 1;
                timer = Some(Box::pin(crate::sleep(delay)));
                continue;
            }
            let mut i = 0;
            while i < attempts.len() {
                match attempts[i].as_mut().poll(cx) {
                    Poll::Ready(Ok(stream)) => return Poll::Ready(Ok(stream)),
                    Poll::Ready(Err(error)) => {
                        errors.push(error);
                        drop(attempts.remove(i));
                    }
                    Poll::Pending => i += 1,
                }
            }
            if attempts.is_empty() {
                if next >= addrs.len() {
                    return Poll::Ready(Err(combine_errors(std::mem::take(&mut errors))));
                }
                continue;
            }
            return Poll::Pending;
        }
    })
    .await
}

pub(crate) async fn connect_tcp(
    lp: &EventLoop,
    host: &str,
    port: u16,
    delay: Option<Duration>,
) -> io::Result<TcpStream> {
    let addrs = resolve_stream(lp, host, port).await?;
    if let Some(delay) = delay {
        return staggered(interleave(addrs), delay).await;
    }
    let mut errors = Vec::new();
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(error) => errors.push(error),
        }
    }
    Err(combine_errors(errors))
}

/// Runs `protocol` over TLS on a new connection: returns the TLS transport after the
/// handshake.
pub(crate) async fn tls_client(
    lp: &EventLoop,
    make_raw: impl FnOnce(Box<dyn Protocol>) -> io::Result<Transport>,
    protocol: Box<dyn Protocol>,
    tls: &ClientTls,
    server_name: &str,
    timeout: Option<Duration>,
) -> io::Result<Transport> {
    let layer = TlsLayer::client(
        lp,
        tls,
        server_name,
        Some(protocol),
        true,
        timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
    )?;
    let raw = make_raw(layer.adapter())?;
    if let Err(error) = layer.handshake().await {
        raw.abort();
        return Err(error);
    }
    Ok(layer.transport())
}

/// Wraps `factory`'s protocols in a TLS server layer each.
pub(crate) fn tls_factory<P: Protocol>(
    lp: &EventLoop,
    mut factory: impl FnMut() -> P + 'static,
    tls: ServerTls,
    timeout: Option<Duration>,
) -> impl FnMut() -> Box<dyn Protocol> + 'static {
    let lp = lp.clone();
    let timeout = timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT);
    move || -> Box<dyn Protocol> {
        let app: Box<dyn Protocol> = Box::new(factory());
        match TlsLayer::server(&lp, &tls, Some(app), true, timeout) {
            Ok(layer) => layer.adapter(),
            Err(error) => Box::new(Refuse(Some(error))),
        }
    }
}

/// The protocol of a connection whose TLS layer could not be made: closes it at once.
struct Refuse(Option<io::Error>);

impl Protocol for Refuse {
    fn connection_made(&mut self, transport: &Transport) {
        if let Some(error) = self.0.take() {
            let lp = evloop_reactor::get_running_loop();
            if let Ok(lp) = lp {
                lp.call_exception_handler(
                    evloop_reactor::ExceptionContext::new("Error on TLS setup for a connection")
                        .with_exception(error),
                );
            }
        }
        transport.abort();
    }

    fn data_received(&mut self, _: &[u8]) {}
}

async fn bind_addrs(lp: &EventLoop, host: Option<&str>, port: u16) -> io::Result<Vec<SocketAddr>> {
    let hints = AddrInfoHints {
        flags: libc::AI_PASSIVE,
        ..AddrInfoHints::stream()
    };
    let infos = match host {
        Some("") | None => resolve::getaddrinfo(lp, None, port, hints).await?,
        Some(host) => resolve::getaddrinfo(lp, Some(host), port, hints).await?,
    };
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for info in infos {
        if !addrs.contains(&info.addr) {
            addrs.push(info.addr);
        }
    }
    if addrs.is_empty() {
        return Err(io::Error::other("getaddrinfo() returned empty list"));
    }
    Ok(addrs)
}

impl NetExt for EventLoop {
    fn getaddrinfo(
        &self,
        host: Option<&str>,
        port: u16,
        hints: AddrInfoHints,
    ) -> impl Future<Output = Result<Vec<AddrInfo>, ResolveError>> + 'static {
        let lp = self.clone();
        let host = host.map(str::to_owned);
        async move { resolve::getaddrinfo(&lp, host.as_deref(), port, hints).await }
    }

    fn getnameinfo(
        &self,
        addr: SocketAddr,
        flags: i32,
    ) -> impl Future<Output = Result<(String, String), ResolveError>> + 'static {
        let lp = self.clone();
        async move { resolve::getnameinfo(&lp, addr, flags).await }
    }

    fn create_connection<P: Protocol>(
        &self,
        protocol: P,
        host: &str,
        port: u16,
        options: ConnectOptions,
    ) -> impl Future<Output = io::Result<Transport>> + 'static {
        let lp = self.clone();
        let host = host.to_owned();
        async move {
            let stream = connect_tcp(&lp, &host, port, options.happy_eyeballs_delay).await?;
            match &options.tls {
                None => transport::transport_for_tcp_stream(&lp, stream, Box::new(protocol)),
                Some(tls) => {
                    let name = options.server_hostname.as_deref().unwrap_or(&host);
                    tls_client(
                        &lp,
                        |adapter| transport::transport_for_tcp_stream(&lp, stream, adapter),
                        Box::new(protocol),
                        tls,
                        name,
                        options.handshake_timeout,
                    )
                    .await
                }
            }
        }
    }

    fn create_server<P: Protocol, F: FnMut() -> P + 'static>(
        &self,
        factory: F,
        host: Option<&str>,
        port: u16,
        options: ServeOptions,
    ) -> impl Future<Output = io::Result<Server>> + 'static {
        let lp = self.clone();
        let host = host.map(str::to_owned);
        async move {
            let addrs = bind_addrs(&lp, host.as_deref(), port).await?;
            match options.tls {
                Some(tls) => Server::bind_tcp(
                    &lp,
                    &addrs,
                    tls_factory(&lp, factory, tls, options.handshake_timeout),
                    options.backlog,
                ),
                None => Server::bind_tcp(&lp, &addrs, factory, options.backlog),
            }
        }
    }

    fn create_unix_connection<P: Protocol>(
        &self,
        protocol: P,
        path: impl Into<PathBuf>,
        options: ConnectOptions,
    ) -> impl Future<Output = io::Result<Transport>> + 'static {
        let lp = self.clone();
        let path = path.into();
        async move {
            let Some(tls) = &options.tls else {
                return transport::create_unix_connection(&path, protocol).await;
            };
            let Some(name) = options.server_hostname.clone() else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "you must set server_hostname when using ssl without a host",
                ));
            };
            let stream = evloop_reactor::net::UnixStream::connect(&path).await?;
            tls_client(
                &lp,
                |adapter| transport::transport_for_unix_stream(&lp, stream, adapter),
                Box::new(protocol),
                tls,
                &name,
                options.handshake_timeout,
            )
            .await
        }
    }

    fn create_unix_server<P: Protocol, F: FnMut() -> P + 'static>(
        &self,
        factory: F,
        path: impl Into<PathBuf>,
        options: ServeOptions,
    ) -> io::Result<Server> {
        let path = path.into();
        match options.tls {
            Some(tls) => Server::bind_unix(
                self,
                &path,
                tls_factory(self, factory, tls, options.handshake_timeout),
                options.backlog,
            ),
            None => Server::bind_unix(self, &path, factory, options.backlog),
        }
    }

    fn create_datagram_endpoint<P: DatagramProtocol>(
        &self,
        protocol: P,
        local: Option<(&str, u16)>,
        remote: Option<(&str, u16)>,
    ) -> impl Future<Output = io::Result<DatagramTransport>> + 'static {
        let lp = self.clone();
        let local = local.map(|(h, p)| (h.to_owned(), p));
        let remote = remote.map(|(h, p)| (h.to_owned(), p));
        async move {
            let first = |infos: Vec<AddrInfo>| {
                infos
                    .first()
                    .map(|info| info.addr)
                    .ok_or_else(|| io::Error::other("getaddrinfo() returned empty list"))
            };
            let local = match local {
                Some((host, port)) => Some(first(
                    resolve::getaddrinfo(&lp, Some(&host), port, AddrInfoHints::datagram()).await?,
                )?),
                None => None,
            };
            let remote = match remote {
                Some((host, port)) => Some(first(
                    resolve::getaddrinfo(&lp, Some(&host), port, AddrInfoHints::datagram()).await?,
                )?),
                None => None,
            };
            if local.is_none() && remote.is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "unexpected address family",
                ));
            }
            transport::create_datagram_endpoint(&lp, local, remote, Box::new(protocol))
        }
    }

    fn start_tls(
        &self,
        transport: &Transport,
        role: TlsRole,
        handshake_timeout: Option<Duration>,
    ) -> impl Future<Output = io::Result<Transport>> + 'static {
        let lp = self.clone();
        let raw = transport.clone();
        async move { start_tls_on(&lp, &raw, role, handshake_timeout).await }
    }
}

pub(crate) async fn start_tls_on(
    lp: &EventLoop,
    raw: &Transport,
    role: TlsRole,
    handshake_timeout: Option<Duration>,
) -> io::Result<Transport> {
    let timeout = handshake_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT);
    let layer = match &role {
        TlsRole::Client(tls, name) => TlsLayer::client(lp, tls, name, None, false, timeout)?,
        TlsRole::Server(tls) => TlsLayer::server(lp, tls, None, false, timeout)?,
    };
    let app = raw
        .set_protocol(layer.adapter())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let Some(app) = app else {
        return Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "the connection was lost before start_tls",
        ));
    };
    layer.set_app(Some(app));
    layer.attach(raw);
    if let Err(error) = layer.handshake().await {
        raw.abort();
        return Err(error);
    }
    Ok(layer.transport())
}
