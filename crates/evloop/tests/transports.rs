//! Transports and protocols: callback order, flow control both ways, half-close, abort, a
//! panicking protocol, UDP, pipes and the `sock_*` coroutines.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;

use evloop::transport::{
    self, DatagramProtocol, DatagramTransport, ExtraInfo, Protocol, Transport, TransportError,
};
use evloop::{ConnectOptions, NetExt, ServeOptions};
use evloop_test_support::{in_child, open_fds, record_reports, reset_on_close, until};

type Log = Rc<RefCell<Vec<String>>>;

/// Records every callback; echoes data back unless `echo` is off.
struct Recorder {
    log: Log,
    transport: Option<Transport>,
    echo: bool,
    keep_open_on_eof: bool,
}

impl Recorder {
    fn new(log: &Log, echo: bool) -> Recorder {
        Recorder {
            log: log.clone(),
            transport: None,
            echo,
            keep_open_on_eof: false,
        }
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: &Transport) {
        self.log.borrow_mut().push("made".into());
        self.transport = Some(transport.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        self.log
            .borrow_mut()
            .push(format!("data {}", String::from_utf8_lossy(data)));
        if self.echo {
            self.transport.as_ref().unwrap().write(data).unwrap();
        }
    }
    fn eof_received(&mut self) -> bool {
        self.log.borrow_mut().push("eof".into());
        self.keep_open_on_eof
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let what = match error {
            None => "lost".to_owned(),
            Some(e) => format!("lost {}", e.kind()),
        };
        self.log.borrow_mut().push(what);
    }
    fn pause_writing(&mut self) {
        self.log.borrow_mut().push("pause".into());
    }
    fn resume_writing(&mut self) {
        self.log.borrow_mut().push("resume".into());
    }
}

fn has(log: &Log, entry: &str) -> bool {
    log.borrow().iter().any(|e| e == entry)
}

#[test]
fn callbacks_come_in_asyncio_order() {
    evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        let server_log: Log = Rc::default();
        let sl = server_log.clone();
        let server = lp
            .create_server(
                move || Recorder::new(&sl, true),
                Some("127.0.0.1"),
                0,
                ServeOptions::new(),
            )
            .await
            .unwrap();
        let port = server.tcp_addrs()[0].port();
        let client_log: Log = Rc::default();
        let t = lp
            .create_connection(
                Recorder::new(&client_log, false),
                "127.0.0.1",
                port,
                ConnectOptions::new(),
            )
            .await
            .unwrap();
        assert_eq!(client_log.borrow()[..], ["made"]);
        assert!(matches!(t.get_extra_info("socket"), Some(ExtraInfo::Fd(_))));
        t.write(b"hello").unwrap();
        let cl = client_log.clone();
        until(move || has(&cl, "data hello")).await;
        t.write_eof().unwrap();
        // Server: EOF, then (eof_received said close) the end; the client sees EOF and closes.
        let cl = client_log.clone();
        until(move || has(&cl, "lost")).await;
        let sl = server_log.clone();
        until(move || has(&sl, "lost")).await;
        assert_eq!(
            server_log.borrow()[..],
            ["made", "data hello", "eof", "lost"]
        );
        assert_eq!(
            client_log.borrow()[..],
            ["made", "data hello", "eof", "lost"]
        );
        assert!(t.is_closing());
        server.close();
        server.wait_closed().await;
    })
    .unwrap();
}

#[test]
fn write_buffer_flow_control_pauses_and_resumes_the_writer() {
    evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        let server_log: Log = Rc::default();
        let sl = server_log.clone();
        let server_transport: Rc<RefCell<Option<Transport>>> = Rc::default();
        let st = server_transport.clone();
        struct Sink(Log, Rc<RefCell<Option<Transport>>>, usize);
        impl Protocol for Sink {
            fn connection_made(&mut self, t: &Transport) {
                t.pause_reading();
                assert!(!t.is_reading());
                *self.1.borrow_mut() = Some(t.clone());
            }
            fn data_received(&mut self, data: &[u8]) {
                self.2 += data.len();
                if self.2 == 16 << 20 {
                    self.0.borrow_mut().push("all in".into());
                }
            }
        }
        let server = lp
            .create_server(
                move || Sink(sl.clone(), st.clone(), 0),
                Some("127.0.0.1"),
                0,
                ServeOptions::new(),
            )
            .await
            .unwrap();
        let port = server.tcp_addrs()[0].port();
        let log: Log = Rc::default();
        let t = lp
            .create_connection(
                Recorder::new(&log, false),
                "127.0.0.1",
                port,
                ConnectOptions::new(),
            )
            .await
            .unwrap();
        t.set_write_buffer_limits(Some(4096), None).unwrap();
        assert_eq!(t.get_write_buffer_limits(), (1024, 4096));
        assert_eq!(
            t.set_write_buffer_limits(Some(1), Some(2)),
            Err(TransportError::BadLimits { high: 1, low: 2 })
        );
        // 16 MiB: more than the kernel's socket buffers hold, with the server not reading.
        let chunk = vec![b'x'; 256 * 1024];
        for _ in 0..64 {
            t.write(&chunk).unwrap();
        }
        assert!(
            has(&log, "pause"),
            "pause_writing inside write: {:?}",
            log.borrow()
        );
        assert!(t.get_write_buffer_size() > 4096);
        let st = server_transport.clone();
        until(move || st.borrow().is_some()).await;
        server_transport.borrow().as_ref().unwrap().resume_reading();
        let l = log.clone();
        until(move || has(&l, "resume")).await;
        let sl = server_log.clone();
        until(move || has(&sl, "all in")).await;
        assert_eq!(t.get_write_buffer_size(), 0);
        t.close();
        server.close();
    })
    .unwrap();
}

#[test]
fn pause_reading_holds_data_until_resumed() {
    evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        let log: Log = Rc::default();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let t =
            transport::connect_accepted_socket(&lp, a.into(), Box::new(Recorder::new(&log, false)))
                .unwrap();
        t.pause_reading();
        (&b).write_all(b"held").unwrap();
        for _ in 0..20 {
            evloop::yield_now().await;
        }
        assert_eq!(log.borrow()[..], ["made"], "nothing delivered while paused");
        t.resume_reading();
        let l = log.clone();
        until(move || has(&l, "data held")).await;
        t.abort();
        let l = log.clone();
        until(move || has(&l, "lost")).await;
        drop(b);
    })
    .unwrap();
}

#[test]
fn abort_drops_the_buffer_and_a_reset_reaches_connection_lost() {
    evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        let log: Log = Rc::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = lp
            .create_connection(
                Recorder::new(&log, false),
                "127.0.0.1",
                port,
                ConnectOptions::new(),
            )
            .await
            .unwrap();
        let (peer, _) = listener.accept().unwrap();
        // Fill the peer's window, so that part stays buffered, then abort.
        let big = vec![0u8; 8 << 20];
        t.write(&big).unwrap();
        assert!(t.get_write_buffer_size() > 0);
        t.abort();
        assert_eq!(t.get_write_buffer_size(), 0, "abort drops the buffer");
        let l = log.clone();
        until(move || has(&l, "lost")).await;
        drop(peer);

        // A peer that resets: the error reaches connection_lost; no report for it.
        let reports = record_reports(&lp);
        let log: Log = Rc::default();
        let t = lp
            .create_connection(
                Recorder::new(&log, false),
                "127.0.0.1",
                port,
                ConnectOptions::new(),
            )
            .await
            .unwrap();
        let (peer, _) = listener.accept().unwrap();
        reset_on_close(&peer);
        drop(peer);
        let l = log.clone();
        until(move || l.borrow().iter().any(|e| e.starts_with("lost"))).await;
        assert!(has(&log, "lost connection reset"), "{:?}", log.borrow());
        assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
        assert!(t.is_closing());
    })
    .unwrap();
}

#[test]
fn a_panicking_protocol_fails_its_connection_only() {
    evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        let reports = record_reports(&lp);
        struct Fragile(Log, Option<Transport>);
        impl Protocol for Fragile {
            fn connection_made(&mut self, t: &Transport) {
                self.1 = Some(t.clone());
            }
            fn data_received(&mut self, data: &[u8]) {
                if data.starts_with(b"boom") {
                    panic!("boom");
                }
                self.1.as_ref().unwrap().write(data).unwrap();
            }
            fn connection_lost(&mut self, error: Option<io::Error>) {
                self.0
                    .borrow_mut()
                    .push(format!("lost {}", error.is_some()));
            }
        }
        let log: Log = Rc::default();
        let l = log.clone();
        let server = lp
            .create_server(
                move || Fragile(l.clone(), None),
                Some("127.0.0.1"),
                0,
                ServeOptions::new(),
            )
            .await
            .unwrap();
        let port = server.tcp_addrs()[0].port();
        let (good_reader, good_writer) = evloop::streams::open_connection("127.0.0.1", port)
            .await
            .unwrap();
        let (bad_reader, bad_writer) = evloop::streams::open_connection("127.0.0.1", port)
            .await
            .unwrap();
        bad_writer.write(b"boom").unwrap();
        assert_eq!(
            bad_reader.read(10).await.unwrap(),
            b"",
            "that connection ended"
        );
        good_writer.write(b"fine").unwrap();
        assert_eq!(good_reader.readexactly(4).await.unwrap(), b"fine");
        assert_eq!(
            reports
                .borrow()
                .iter()
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>(),
            ["Fatal error: protocol.data_received() call failed."]
        );
        assert_eq!(log.borrow()[..], ["lost true"]);
        server.close();
    })
    .unwrap();
}

#[test]
fn udp_echo_and_error_received() {
    struct Echo(Option<DatagramTransport>, Log);
    impl DatagramProtocol for Echo {
        fn connection_made(&mut self, t: &DatagramTransport) {
            self.0 = Some(t.clone());
        }
        fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
            self.1
                .borrow_mut()
                .push(String::from_utf8_lossy(data).into_owned());
            if let Some(t) = &self.0 {
                t.sendto(data, Some(addr)).unwrap();
            }
        }
        fn error_received(&mut self, error: io::Error) {
            self.1.borrow_mut().push(format!("error {}", error.kind()));
        }
        fn connection_lost(&mut self, _: Option<io::Error>) {
            self.1.borrow_mut().push("lost".into());
        }
    }
    evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        let server_log: Log = Rc::default();
        let server = lp
            .create_datagram_endpoint(Echo(None, server_log.clone()), Some(("127.0.0.1", 0)), None)
            .await
            .unwrap();
        let Some(ExtraInfo::Address(transport::SockAddr::Inet(addr))) =
            server.get_extra_info("sockname")
        else {
            panic!("bound")
        };
        let client_log: Log = Rc::default();
        let client = lp
            .create_datagram_endpoint(
                Echo(None, client_log.clone()),
                None,
                Some(("127.0.0.1", addr.port())),
            )
            .await
            .unwrap();
        client.sendto(b"ping", None).unwrap();
        assert_eq!(
            client
                .sendto(b"x", Some("127.0.0.1:1".parse().unwrap()))
                .unwrap_err()
                .to_string(),
            format!("Invalid address: must be None or {addr}")
        );
        let cl = client_log.clone();
        until(move || has(&cl, "ping")).await;
        assert_eq!(server_log.borrow()[..], ["ping"]);
        // Nothing listens any more: the connected client gets ECONNREFUSED via ICMP.
        server.close();
        let sl = server_log.clone();
        until(move || has(&sl, "lost")).await;
        client.sendto(b"anyone?", None).unwrap();
        let cl = client_log.clone();
        until(move || cl.borrow().iter().any(|e| e.starts_with("error"))).await;
        assert!(
            has(&client_log, "error connection refused"),
            "{:?}",
            client_log.borrow()
        );
        assert!(!client.is_closing(), "the endpoint goes on");
        client.close();
    })
    .unwrap();
}

#[test]
fn read_and_write_pipes() {
    evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        let (r, w) = std::io::pipe().unwrap();
        let log: Log = Rc::default();
        let reader =
            transport::connect_read_pipe(&lp, r.into(), Box::new(Recorder::new(&log, false)))
                .unwrap();
        assert_eq!(
            reader.write(b"x"),
            Err(TransportError::Unsupported("write"))
        );
        struct Quiet;
        impl Protocol for Quiet {
            fn data_received(&mut self, _: &[u8]) {}
        }
        let writer = transport::connect_write_pipe(&lp, w.into(), Box::new(Quiet)).unwrap();
        writer.write(b"through").unwrap();
        writer.write_eof().unwrap();
        let l = log.clone();
        until(move || has(&l, "lost")).await;
        assert_eq!(log.borrow()[..], ["made", "data through", "eof", "lost"]);
        assert!(writer.is_closing());

        // A file is not a pipe.
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let error = transport::connect_read_pipe(&lp, file.into(), Box::new(Quiet)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Pipe transport is for pipes/sockets only."
        );

        // A write pipe whose reader goes away ends quietly.
        let (r, w) = std::io::pipe().unwrap();
        let log: Log = Rc::default();
        let writer =
            transport::connect_write_pipe(&lp, w.into(), Box::new(Recorder::new(&log, false)))
                .unwrap();
        drop(r);
        let l = log.clone();
        until(move || l.borrow().iter().any(|e| e.starts_with("lost"))).await;
        assert!(writer.is_closing());
    })
    .unwrap();
}

#[test]
fn sock_coroutines_on_nonblocking_std_sockets() {
    evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(
            lp.sock_accept(&listener).await.unwrap_err().to_string(),
            "the socket must be non-blocking"
        );
        listener.set_nonblocking(true).unwrap();
        let l = lp.clone();
        let client = evloop::create_task(async move {
            use std::os::fd::{FromRawFd, OwnedFd};
            // SAFETY: a fresh socket, owned by the OwnedFd from here on.
            let fd = unsafe {
                OwnedFd::from_raw_fd(libc::socket(
                    libc::AF_INET,
                    libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
                    0,
                ))
            };
            l.sock_connect(&fd, addr).await.unwrap();
            let stream = std::net::TcpStream::from(fd);
            l.sock_sendall(&stream, &vec![5u8; 1 << 20]).await.unwrap();
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            stream
        });
        let (conn, peer) = lp.sock_accept(&listener).await.unwrap();
        assert!(peer.ip().is_loopback());
        let mut total = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = lp.sock_recv(&conn, &mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|&b| b == 5));
            total += n;
        }
        assert_eq!(total, 1 << 20);
        drop(client.await.unwrap());
        // A refused connect is the OS error.
        drop(listener);
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: as above.
        let fd = unsafe {
            OwnedFd::from_raw_fd(libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
                0,
            ))
        };
        let error = lp.sock_connect(&fd, addr).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    })
    .unwrap();
}

#[test]
fn unix_transports_and_a_closed_loop_leak_no_fd() {
    if in_child("unix_transports_and_a_closed_loop_leak_no_fd") {
        return;
    }
    let before = open_fds().len();
    let path = std::env::temp_dir().join(format!("evloop-tr-{}.sock", std::process::id()));
    let p = path.clone();
    evloop::run(async move {
        let lp = evloop::get_running_loop().unwrap();
        let log: Log = Rc::default();
        let l = log.clone();
        let server = lp
            .create_unix_server(move || Recorder::new(&l, true), &p, ServeOptions::new())
            .unwrap();
        let client_log: Log = Rc::default();
        let t = lp
            .create_unix_connection(Recorder::new(&client_log, false), &p, ConnectOptions::new())
            .await
            .unwrap();
        t.write(b"unix").unwrap();
        let cl = client_log.clone();
        until(move || has(&cl, "data unix")).await;
        assert_eq!(server.connection_count(), 1);
        // Leave everything open: closing the loop must close it.
    })
    .unwrap();
    assert_eq!(open_fds().len(), before);
    let mut leftover = String::new();
    if let Ok(mut f) = std::fs::File::open(&path) {
        let _ = f.read_to_string(&mut leftover);
    }
    assert!(!path.exists(), "the socket file went with the loop");
}
