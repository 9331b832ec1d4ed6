//! asyncio's `Server`: listening sockets that make a transport and a protocol per connection.
//!
//! A listener is registered as a direct handler: its event accepts up to `backlog`
//! connections in one go (asyncio's rule), each made into a transport whose protocol comes
//! from the factory and gets `connection_made` at once. Running out of fds is reported once
//! ("socket.accept() out of system resource") and accepting pauses for one second on a loop
//! timer, so the loop does not spin on a listener that stays readable.
//!
//! `close` stops listening and leaves the connections alone (asyncio 3.12);
//! [`close_clients`](Server::close_clients) and [`abort_clients`](Server::abort_clients) end
//! them (3.13); [`wait_closed`](Server::wait_closed) waits until the server is closed and its
//! last connection is gone.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

use evloop_callbacks::TimerHandle;
use mio::{Interest, Token};

use super::socket::{SocketTransport, StreamIo};
use super::{Protocol, SockAddr, TransportImpl, sys};
use crate::io::fd::closed_error;
use crate::io::registry::{Entry, ReadyHandler};
use crate::net::{ACCEPT_RETRY_DELAY, out_of_resources, transient_accept_error};
use crate::{EventLoop, ExceptionContext, Panic};

type Factory = Box<dyn FnMut() -> Box<dyn Protocol>>;

/// `serve_forever` on a closed server (asyncio's `RuntimeError(f'server {self!r} is closed')`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server {0} is closed")]
pub struct ServerClosed(pub String);

/// What a listening socket needs to offer.
trait Listen: mio::event::Source + AsRawFd + 'static {
    type Stream: StreamIo;
    fn accept_stream(&self) -> io::Result<Self::Stream>;
    fn address(&self) -> Option<SockAddr>;
}

impl Listen for mio::net::TcpListener {
    type Stream = mio::net::TcpStream;
    fn accept_stream(&self) -> io::Result<mio::net::TcpStream> {
        let (stream, _) = self.accept()?;
        // asyncio sets TCP_NODELAY on every TCP transport.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
    fn address(&self) -> Option<SockAddr> {
        self.local_addr().ok().map(SockAddr::Inet)
    }
}

impl Listen for mio::net::UnixListener {
    type Stream = mio::net::UnixStream;
    fn accept_stream(&self) -> io::Result<mio::net::UnixStream> {
        Ok(self.accept()?.0)
    }
    fn address(&self) -> Option<SockAddr> {
        let addr = self.local_addr().ok()?;
        Some(SockAddr::Unix(addr.as_pathname().map(Into::into)))
    }
}

/// The part of a listener the server drives without knowing its type.
trait ListenerOps {
    fn address(&self) -> Option<SockAddr>;
    fn stop(&self);
}

struct Listener<L: Listen> {
    /// Strong: a server keeps serving while the loop has its listeners, even with no handle
    /// left (as in asyncio, where the loop's reader callback holds it). Taken by `stop`.
    server: RefCell<Option<Rc<ServerInner>>>,
    me: Weak<Listener<L>>,
    io: RefCell<Option<L>>,
    token: Cell<Option<Token>>,
    retry: RefCell<Option<TimerHandle>>,
    accept_scheduled: Cell<bool>,
    /// A Unix socket's path, removed when the server closes (asyncio 3.13's `cleanup_socket`).
    unlink: Option<PathBuf>,
}

impl<L: Listen> Listener<L> {
    fn register(
        server: &Rc<ServerInner>,
        mut io: L,
        unlink: Option<PathBuf>,
    ) -> io::Result<Rc<Listener<L>>> {
        let lp = &server.lp;
        let this = Rc::new_cyclic(|me| Listener {
            server: RefCell::new(Some(server.clone())),
            me: me.clone(),
            io: RefCell::new(None),
            token: Cell::new(None),
            retry: RefCell::new(None),
            accept_scheduled: Cell::new(false),
            unlink,
        });
        let token = lp
            .io()
            .registry
            .insert(Entry::Direct(this.clone() as Rc<dyn ReadyHandler>));
        if let Err(error) = lp.with_mio(|mio| mio.register(&mut io, token, Interest::READABLE)) {
            lp.io().registry.remove(token);
            return Err(error);
        }
        this.token.set(Some(token));
        *this.io.borrow_mut() = Some(io);
        Ok(this)
    }

    fn accept_ready(&self, server: &Rc<ServerInner>) {
        for _ in 0..server.backlog {
            if self.retry.borrow().is_some() {
                return;
            }
            let accepted = match self.io.borrow().as_ref() {
                Some(io) => io.accept_stream(),
                None => return,
            };
            match accepted {
                Ok(stream) => server.connection(stream),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if transient_accept_error(&error) => {}
                Err(error) if out_of_resources(&error) => {
                    server.lp.call_exception_handler(
                        ExceptionContext::new("socket.accept() out of system resource")
                            .with_exception(error),
                    );
                    return self.back_off(server);
                }
                Err(error) => {
                    server.lp.call_exception_handler(
                        ExceptionContext::new("Error on accepting a connection")
                            .with_exception(error),
                    );
                    return self.back_off(server);
                }
            }
        }
        // More may be waiting, and no new edge would say so: accept them on a later turn.
        self.schedule_accept(server);
    }

    fn server(&self) -> Option<Rc<ServerInner>> {
        self.server.borrow().clone()
    }

    fn schedule_accept(&self, server: &Rc<ServerInner>) {
        if self.accept_scheduled.replace(true) {
            return;
        }
        let me = self.me.clone();
        let queued = server.lp.call_soon(move || {
            if let Some(me) = me.upgrade() {
                me.accept_scheduled.set(false);
                if let Some(server) = me.server() {
                    me.accept_ready(&server);
                }
            }
        });
        if queued.is_err() {
            self.accept_scheduled.set(false);
        }
    }

    fn back_off(&self, server: &Rc<ServerInner>) {
        let me = self.me.clone();
        let timer = server.lp.call_later(ACCEPT_RETRY_DELAY, move || {
            if let Some(me) = me.upgrade() {
                me.retry.borrow_mut().take();
                if let Some(server) = me.server() {
                    me.accept_ready(&server);
                }
            }
        });
        *self.retry.borrow_mut() = timer.ok();
    }
}

impl<L: Listen> ReadyHandler for Listener<L> {
    fn on_ready(&self, _bits: u8) {
        if let Some(server) = self.server() {
            self.accept_ready(&server);
        }
    }

    fn on_loop_closed(&self) {
        self.token.set(None);
        self.stop();
    }
}

impl<L: Listen> ListenerOps for Listener<L> {
    fn address(&self) -> Option<SockAddr> {
        self.io.borrow().as_ref().and_then(Listen::address)
    }

    fn stop(&self) {
        if let Some(timer) = self.retry.borrow_mut().take() {
            timer.cancel();
        }
        let server = self.server.borrow_mut().take();
        let Some(mut io) = self.io.borrow_mut().take() else {
            return;
        };
        if let Some(server) = server {
            let _ = server.lp.with_mio(|mio| mio.deregister(&mut io));
            if let Some(token) = self.token.take() {
                drop(server.lp.io().registry.remove(token));
            }
        }
        drop(io);
        if let Some(path) = &self.unlink {
            let _ = std::fs::remove_file(path);
        }
    }
}

struct ServerInner {
    lp: EventLoop,
    me: Weak<ServerInner>,
    listeners: RefCell<Vec<Rc<dyn ListenerOps>>>,
    factory: RefCell<Factory>,
    backlog: u32,
    closed: Cell<bool>,
    serving_forever: Cell<bool>,
    clients: RefCell<HashMap<u64, Weak<dyn TransportImpl>>>,
    next_client: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl ServerInner {
    fn connection<S: StreamIo>(&self, stream: S) {
        let made = self.factory.try_borrow_mut().ok().map(|mut factory| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut *factory))
        });
        let protocol = match made {
            Some(Ok(protocol)) => protocol,
            Some(Err(payload)) => {
                self.lp.call_exception_handler(
                    ExceptionContext::new("Error on transport creation for incoming connection")
                        .with_exception(Panic::from_payload(payload)),
                );
                return;
            }
            None => return,
        };
        let transport = match SocketTransport::register(&self.lp, stream, protocol) {
            Ok(transport) => transport,
            Err(error) => {
                return self.lp.call_exception_handler(
                    ExceptionContext::new("Error on transport creation for incoming connection")
                        .with_exception(error),
                );
            }
        };
        let id = self.next_client.get();
        self.next_client.set(id + 1);
        let weak: Weak<dyn TransportImpl> = Rc::downgrade(&transport) as Weak<dyn TransportImpl>;
        self.clients.borrow_mut().insert(id, weak);
        let me = self.me.clone();
        transport.set_on_lost(Box::new(move || {
            if let Some(server) = me.upgrade() {
                server.clients.borrow_mut().remove(&id);
                server.wake();
            }
        }));
        transport.start();
    }

    fn wake(&self) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }

    fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        let listeners = std::mem::take(&mut *self.listeners.borrow_mut());
        for listener in &listeners {
            listener.stop();
        }
        self.wake();
    }
}

/// A listening server (asyncio's `Server`). Clones share the one server.
///
/// ```
/// use evloop_reactor::EventLoop;
/// use evloop_reactor::transport::{Protocol, Server};
///
/// struct Nothing;
/// impl Protocol for Nothing {
///     fn data_received(&mut self, _: &[u8]) {}
/// }
/// let lp = EventLoop::new()?;
/// let server = Server::bind_tcp(&lp, &["127.0.0.1:0".parse()?], || Nothing, 100)?;
/// assert!(server.is_serving());
/// assert_eq!(server.sockets().len(), 1);
/// server.close();
/// assert!(!server.is_serving());
/// assert!(server.sockets().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Rc<ServerInner>,
}

impl Server {
    fn new<P: Protocol>(
        lp: &EventLoop,
        mut factory: impl FnMut() -> P + 'static,
        backlog: u32,
    ) -> io::Result<Server> {
        if lp.is_closed() {
            return Err(closed_error());
        }
        let factory: Factory = Box::new(move || Box::new(factory()) as Box<dyn Protocol>);
        Ok(Server {
            inner: Rc::new_cyclic(|me| ServerInner {
                lp: lp.clone(),
                me: me.clone(),
                listeners: RefCell::new(Vec::new()),
                factory: RefCell::new(factory),
                backlog: backlog.max(1),
                closed: Cell::new(false),
                serving_forever: Cell::new(false),
                clients: RefCell::new(HashMap::new()),
                next_client: Cell::new(0),
                waiters: RefCell::new(Vec::new()),
            }),
        })
    }

    fn add<L: Listen>(&self, io: L, unlink: Option<PathBuf>) -> io::Result<()> {
        let listener = Listener::register(&self.inner, io, unlink)?;
        self.inner.listeners.borrow_mut().push(listener);
        Ok(())
    }

    /// Listens on every address of `addrs` (with `SO_REUSEADDR`, and `IPV6_V6ONLY` for IPv6,
    /// as asyncio) with a listen backlog of `backlog`, which is also how many connections one
    /// readiness event accepts. `factory` makes the protocol of each connection.
    pub fn bind_tcp<P: Protocol>(
        lp: &EventLoop,
        addrs: &[SocketAddr],
        factory: impl FnMut() -> P + 'static,
        backlog: u32,
    ) -> io::Result<Server> {
        let server = Server::new(lp, factory, backlog)?;
        for addr in addrs {
            let listener = sys::tcp_listener(addr, backlog)?;
            server.add(mio::net::TcpListener::from_std(listener), None)?;
        }
        Ok(server)
    }

    /// Serves on listening sockets made elsewhere (asyncio's `create_server(sock=...)`); they
    /// are made non-blocking here.
    pub fn from_tcp_listeners<P: Protocol>(
        lp: &EventLoop,
        listeners: Vec<std::net::TcpListener>,
        factory: impl FnMut() -> P + 'static,
        backlog: u32,
    ) -> io::Result<Server> {
        let server = Server::new(lp, factory, backlog)?;
        for listener in listeners {
            listener.set_nonblocking(true)?;
            server.add(mio::net::TcpListener::from_std(listener), None)?;
        }
        Ok(server)
    }

    /// Listens on the Unix socket `path` (asyncio's `create_unix_server`). A stale socket
    /// file at `path` is removed first, and the file is removed again when the server closes.
    ///
    /// ```
    /// use evloop_reactor::EventLoop;
    /// use evloop_reactor::transport::{Protocol, Server};
    ///
    /// struct Nothing;
    /// impl Protocol for Nothing {
    ///     fn data_received(&mut self, _: &[u8]) {}
    /// }
    /// let lp = EventLoop::new()?;
    /// let path = std::env::temp_dir().join(format!("evloop-srv-{}", std::process::id()));
    /// let server = Server::bind_unix(&lp, &path, || Nothing, 100)?;
    /// assert!(path.exists());
    /// server.close();
    /// assert!(!path.exists(), "the socket file went with the server");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind_unix<P: Protocol>(
        lp: &EventLoop,
        path: impl AsRef<Path>,
        factory: impl FnMut() -> P + 'static,
        backlog: u32,
    ) -> io::Result<Server> {
        let path = path.as_ref();
        remove_stale_socket(path);
        let server = Server::new(lp, factory, backlog)?;
        let listener = std::os::unix::net::UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        server.add(
            mio::net::UnixListener::from_std(listener),
            Some(path.to_owned()),
        )?;
        Ok(server)
    }

    /// The loop the server runs on.
    pub fn get_loop(&self) -> EventLoop {
        self.inner.lp.clone()
    }

    /// Whether the server accepts connections.
    pub fn is_serving(&self) -> bool {
        !self.inner.closed.get()
    }

    /// The addresses the server listens on (asyncio's `sockets`); empty once closed.
    pub fn sockets(&self) -> Vec<SockAddr> {
        self.inner
            .listeners
            .borrow()
            .iter()
            .filter_map(|listener| listener.address())
            .collect()
    }

    /// The TCP addresses among [`sockets`](Server::sockets).
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.sockets()
            .into_iter()
            .filter_map(|addr| match addr {
                SockAddr::Inet(addr) => Some(addr),
                SockAddr::Unix(_) => None,
            })
            .collect()
    }

    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.inner.clients.borrow().len()
    }

    /// Stops listening (the connections stay open). Idempotent.
    pub fn close(&self) {
        self.inner.close();
    }

    fn clients(&self) -> Vec<Rc<dyn TransportImpl>> {
        self.inner
            .clients
            .borrow()
            .values()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Closes every connection (each flushes its buffer first; asyncio 3.13).
    pub fn close_clients(&self) {
        for client in self.clients() {
            client.close();
        }
    }

    /// Aborts every connection (asyncio 3.13).
    pub fn abort_clients(&self) {
        for client in self.clients() {
            client.abort();
        }
    }

    /// Waits until the server is closed and its last connection is gone (asyncio 3.12).
    pub async fn wait_closed(&self) {
        poll_fn(|cx| {
            if self.inner.closed.get() && self.inner.clients.borrow().is_empty() {
                return Poll::Ready(());
            }
            self.inner.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Serves until the server is closed; dropping the future (cancelling the task) closes
    /// it, as asyncio's `serve_forever` does on cancellation. Fails at once on a closed server.
    pub async fn serve_forever(&self) -> Result<(), ServerClosed> {
        if self.inner.closed.get() {
            return Err(ServerClosed(format!("{self:?}")));
        }
        struct CloseOnDrop<'a>(&'a Server);
        impl Drop for CloseOnDrop<'_> {
            fn drop(&mut self) {
                self.0.inner.serving_forever.set(false);
                self.0.close();
            }
        }
        self.inner.serving_forever.set(true);
        let _guard = CloseOnDrop(self);
        poll_fn(|cx| {
            if self.inner.closed.get() {
                return Poll::Ready(Ok(()));
            }
            self.inner.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// Removes `path` if it is a socket file (asyncio's `create_unix_server` does so before
/// binding, so that a server restarted after a crash can bind again).
fn remove_stale_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Server sockets={:?}>", self.sockets())
    }
}
