//! Async sockets: echo at scale, large transfers, resets, half-close, EMFILE back-off.

mod common;

use std::cell::Cell;
use std::io::{ErrorKind, Write as _};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use common::{block_on, sleep, spawn};
use evloop_reactor::EventLoop;
use evloop_reactor::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use evloop_test_support::{in_child, reset_on_close};

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit with a valid struct; this runs in a child test process.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max.min(65536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

#[test]
fn echo_with_1000_concurrent_connections() {
    if in_child("echo_with_1000_concurrent_connections") {
        return;
    }
    raise_fd_limit();
    let lp = EventLoop::new().unwrap();
    let listener = Rc::new(TcpListener::bind_on(&lp, "127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let server_lp = lp.clone();
    let l = listener.clone();
    spawn(&lp, async move {
        loop {
            let (stream, _) = l.accept().await.unwrap();
            spawn(&server_lp, async move {
                let mut buf = [0u8; 1024];
                loop {
                    let n = stream.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    stream.write_all(&buf[..n]).await.unwrap();
                }
            });
        }
    });
    let n = 1000;
    let done = Rc::new(Cell::new(0));
    let client_lp = lp.clone();
    let d = done.clone();
    block_on(&lp, async move {
        let mut handles = Vec::new();
        for i in 0..n {
            let d = d.clone();
            handles.push(spawn(&client_lp, async move {
                let stream = TcpStream::connect(addr).await.unwrap();
                let msg = format!("hello from client {i}").repeat(3);
                for _ in 0..3 {
                    stream.write_all(msg.as_bytes()).await.unwrap();
                    let mut back = vec![0u8; msg.len()];
                    stream.read_exact(&mut back).await.unwrap();
                    assert_eq!(back, msg.as_bytes());
                }
                stream.shutdown(Shutdown::Write).unwrap();
                let mut rest = [0u8; 8];
                assert_eq!(stream.read(&mut rest).await.unwrap(), 0);
                d.set(d.get() + 1);
            }));
        }
        while handles.iter().any(|h| !h.is_done()) {
            sleep(Duration::from_millis(10)).await;
        }
    });
    assert_eq!(done.get(), n);
}

#[test]
fn large_transfer_with_partial_reads_and_writes() {
    let lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair_on(&lp).unwrap();
    let size = 16 * 1024 * 1024;
    let data: Rc<Vec<u8>> = Rc::new((0..size).map(|i| (i * 7 % 251) as u8).collect());
    let sent = data.clone();
    let writer = spawn(&lp, async move {
        // Odd-sized writes: the socket buffer is far smaller, so most are partial.
        let mut off = 0;
        let mut partial = 0;
        while off < sent.len() {
            let end = (off + 1_000_003).min(sent.len());
            let n = a.write(&sent[off..end]).await.unwrap();
            if n < end - off {
                partial += 1;
            }
            off += n;
        }
        drop(a);
        partial
    });
    let received = block_on(&lp, async move {
        let mut out = Vec::with_capacity(size);
        let mut buf = vec![0u8; 7919];
        loop {
            let n = b.read(&mut buf).await.unwrap();
            if n == 0 {
                break out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    });
    assert!(received == *data, "16 MiB arrived intact");
    assert!(writer.take().unwrap() > 0, "some writes were partial");
}

#[test]
fn peer_reset_fails_that_connection_only() {
    let lp = EventLoop::new().unwrap();
    let listener = TcpListener::bind_on(&lp, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        // First connection: reset (SO_LINGER 0 then close sends RST).
        let s = std::net::TcpStream::connect(addr).unwrap();
        reset_on_close(&s);
        drop(s);
        // Second connection: a normal exchange.
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"still fine").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut back = String::new();
        std::io::Read::read_to_string(&mut s, &mut back).unwrap();
        back
    });
    block_on(&lp, async move {
        let (reset, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        // Give the RST time to arrive, then read: ECONNRESET for this connection.
        sleep(Duration::from_millis(100)).await;
        let err = reset.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
        let (ok, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        loop {
            let n = ok.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"still fine");
        // Half-closed by the peer: we can still write back.
        ok.write_all(b"echo: still fine").await.unwrap();
    });
    assert_eq!(client.join().unwrap(), "echo: still fine");
}

/// A peer that reset the connection leaves the socket unconnected: shutdown(2) says ENOTCONN,
/// and `poll_close` must count that as closed (hyper closes every connection this way).
#[test]
fn poll_close_after_the_peer_reset_is_done() {
    use futures_io::AsyncWrite;
    use std::pin::Pin;
    // The kernel's side of it, on plain std sockets: a reset socket refuses shutdown.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = std::net::TcpStream::connect(std_listener.local_addr().unwrap()).unwrap();
    let (server, _) = std_listener.accept().unwrap();
    reset_on_close(&peer);
    drop(peer);
    let _ = std::io::Read::read(&mut &server, &mut [0u8; 8]);
    let raw = server.shutdown(Shutdown::Write).unwrap_err();
    assert_eq!(raw.raw_os_error(), Some(libc::ENOTCONN), "{raw}");

    let lp = EventLoop::new().unwrap();
    let listener = TcpListener::bind_on(&lp, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    block_on(&lp, async move {
        let peer = std::net::TcpStream::connect(addr).unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        reset_on_close(&peer);
        drop(peer);
        let mut buf = [0u8; 8];
        let err = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
        std::future::poll_fn(|cx| Pin::new(&mut conn).poll_close(cx))
            .await
            .expect("ENOTCONN on close is done, not an error");
        conn.shutdown(Shutdown::Both).unwrap();
    });
}

#[test]
fn half_close_delivers_eof_and_keeps_the_other_direction() {
    let lp = EventLoop::new().unwrap();
    let listener = TcpListener::bind_on(&lp, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reply = block_on(&lp, async move {
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (r, w) = client.split();
        w.write_all(b"request").await.unwrap();
        w.shutdown().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 16];
        loop {
            let n = server.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        assert_eq!(req, b"request");
        server.write_all(b"response").await.unwrap();
        drop(server);
        let mut out = Vec::new();
        loop {
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                break out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    });
    assert_eq!(reply, b"response");
}

#[test]
fn connect_refused_is_an_error() {
    let lp = EventLoop::new().unwrap();
    // Bind then drop to get a port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = block_on(
        &lp,
        async move { TcpStream::connect(addr).await.unwrap_err() },
    );
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    assert_eq!(
        lp.io_source_count(),
        0,
        "the failed socket was deregistered"
    );
}

/// std's address rule for `bind`: each resolved address in turn until one works, the last
/// failure if none does, and "could not resolve to any address" when there is none.
#[test]
fn bind_tries_each_address_until_one_works() {
    let lp = EventLoop::new().unwrap();
    // TEST-NET-1 is no local interface's address: binding to it fails with EADDRNOTAVAIL.
    let foreign: std::net::SocketAddr = "192.0.2.1:0".parse().unwrap();
    let local: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let listener = TcpListener::bind_on(&lp, &[foreign, local][..]).unwrap();
    assert!(listener.local_addr().unwrap().ip().is_loopback());
    let socket = UdpSocket::bind_on(&lp, &[foreign, local][..]).unwrap();
    assert!(socket.local_addr().unwrap().ip().is_loopback());

    let err = TcpListener::bind_on(&lp, &[foreign][..]).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::AddrNotAvailable);
    let err = UdpSocket::bind_on(&lp, &[foreign][..]).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::AddrNotAvailable);

    let none: &[std::net::SocketAddr] = &[];
    let err = TcpListener::bind_on(&lp, none).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "could not resolve to any address");
    let err = UdpSocket::bind_on(&lp, none).err().unwrap();
    assert_eq!(err.to_string(), "could not resolve to any address");
}

#[test]
fn udp_send_to_and_recv_from() {
    let lp = EventLoop::new().unwrap();
    let a = UdpSocket::bind_on(&lp, "127.0.0.1:0").unwrap();
    let b = UdpSocket::bind_on(&lp, "127.0.0.1:0").unwrap();
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    block_on(&lp, async move {
        let echo = async {
            let mut buf = [0u8; 64];
            let (n, from) = b.recv_from(&mut buf).await.unwrap();
            b.send_to(&buf[..n], from).await.unwrap();
        };
        a.send_to(b"datagram", b_addr).await.unwrap();
        echo.await;
        let mut buf = [0u8; 64];
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"datagram");
        assert_eq!(from, b_addr);
        a.connect(b_addr).unwrap();
        b.connect(a_addr).unwrap();
        a.send(b"connected").await.unwrap();
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"connected");
    });
}

#[test]
fn unix_listener_and_stream() {
    let lp = EventLoop::new().unwrap();
    let path = std::env::temp_dir().join(format!("evloop-test-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind_on(&lp, &path).unwrap();
    let p = path.clone();
    let got = block_on(&lp, async move {
        let client = UnixStream::connect(&p).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(b"over unix").await.unwrap();
        let mut buf = [0u8; 9];
        server.read_exact(&mut buf).await.unwrap();
        buf
    });
    assert_eq!(&got, b"over unix");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn futures_io_traits_work() {
    use futures_io::{AsyncRead, AsyncWrite};
    use std::pin::Pin;
    // Both directions take `&self`, so a shared reference is a stream too.
    fn is_io<T: AsyncRead + AsyncWrite>() {}
    is_io::<TcpStream>();
    is_io::<&TcpStream>();
    is_io::<UnixStream>();
    is_io::<&UnixStream>();
    let lp = EventLoop::new().unwrap();
    let (mut a, b) = UnixStream::pair_on(&lp).unwrap();
    let got = block_on(&lp, async move {
        let n = std::future::poll_fn(|cx| Pin::new(&mut a).poll_write(cx, b"trait"))
            .await
            .unwrap();
        assert_eq!(n, 5);
        std::future::poll_fn(|cx| Pin::new(&mut a).poll_close(cx))
            .await
            .unwrap();
        let mut buf = [0u8; 8];
        let mut shared = &b;
        let n = std::future::poll_fn(|cx| Pin::new(&mut shared).poll_read(cx, &mut buf))
            .await
            .unwrap();
        buf[..n].to_vec()
    });
    assert_eq!(got, b"trait");
}

#[test]
fn sockets_on_a_closed_loop_report_it() {
    let lp = EventLoop::new().unwrap();
    let (a, _b) = UnixStream::pair_on(&lp).unwrap();
    lp.close().unwrap();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut buf = [0u8; 4];
    match a.poll_read(&mut cx, &mut buf) {
        std::task::Poll::Ready(Err(e)) => assert_eq!(e.to_string(), "Event loop is closed"),
        other => panic!("expected the closed-loop error, got {other:?}"),
    }
    assert_eq!(
        UdpSocket::bind_on(&lp, "127.0.0.1:0")
            .unwrap_err()
            .to_string(),
        "Event loop is closed"
    );
}

#[test]
fn emfile_during_accept_backs_off_without_spinning() {
    if in_child("emfile_during_accept_backs_off_without_spinning") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let reports = Rc::new(Cell::new(0));
    let r = reports.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_: &EventLoop, ctx: &evloop_reactor::ExceptionContext| {
            assert_eq!(ctx.message, "socket.accept() out of system resource");
            r.set(r.get() + 1);
        },
    )));
    let listener = TcpListener::bind_on(&lp, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let pending = std::net::TcpStream::connect(addr).unwrap();
    // Fill the fd table up to a low limit.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a valid struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    lim.rlim_cur = 64;
    // SAFETY: lowering the soft limit of this (child test) process.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let mut fillers = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => fillers.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
                break;
            }
        }
    }
    let fillers = Rc::new(std::cell::RefCell::new(fillers));
    let f = fillers.clone();
    // Free the fds after 1.5 s: the accept loop must then succeed on its own.
    lp.call_later(Duration::from_millis(1500), move || f.borrow_mut().clear())
        .unwrap();
    let start_iterations = lp.iteration_count();
    let started = std::time::Instant::now();
    let peer = block_on(&lp, async move {
        let (stream, peer) = listener.accept().await.unwrap();
        drop(stream);
        peer
    });
    assert_eq!(peer, pending.local_addr().unwrap());
    let iterations = lp.iteration_count() - start_iterations;
    assert!(
        iterations < 50,
        "the accept loop spun: {iterations} iterations"
    );
    assert!(reports.get() >= 1, "the exhaustion was reported");
    assert!(started.elapsed() >= Duration::from_millis(1400));
}

/// Counts how often the wrapped future is polled.
struct CountPolls<F> {
    inner: std::pin::Pin<Box<F>>,
    polls: Rc<Cell<u32>>,
}

impl<F: std::future::Future> std::future::Future for CountPolls<F> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.polls.set(self.polls.get() + 1);
        self.inner.as_mut().poll(cx)
    }
}

#[test]
fn write_readiness_does_not_wake_the_reader() {
    let lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair_on(&lp).unwrap();
    let (a, b) = (Rc::new(a), Rc::new(b));
    let polls = Rc::new(Cell::new(0));
    let reader_side = a.clone();
    let reader = spawn(
        &lp,
        CountPolls {
            inner: Box::pin(async move {
                let mut buf = [0u8; 16];
                reader_side.read(&mut buf).await.unwrap()
            }),
            polls: polls.clone(),
        },
    );
    let size = 4 * 1024 * 1024;
    let writer_side = a.clone();
    let writer = spawn(&lp, async move {
        // Far more than the socket buffer: the writer waits for many writable edges on `a`.
        writer_side.write_all(&vec![1u8; size]).await.unwrap();
    });
    let n = block_on(&lp, async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < size {
            got += b.read(&mut buf).await.unwrap();
        }
        // Only now does `a` become readable.
        b.write_all(b"x").await.unwrap();
        while !reader.is_done() {
            sleep(Duration::from_millis(1)).await;
        }
        reader.take().unwrap()
    });
    assert!(writer.is_done());
    assert_eq!(n, 1);
    assert_eq!(
        polls.get(),
        2,
        "polled once to start and once when data arrived"
    );
}
