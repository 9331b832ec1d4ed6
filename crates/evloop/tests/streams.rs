//! The streams API on 127.0.0.1 and Unix sockets: echo, asyncio's read calls and their
//! errors, flow control, and the fault cases (reset mid-line, a line over the limit,
//! half-close, a slow reader, a server closed with connections open), each failing only its
//! own connection and leaking no fd. Name resolution is here too.

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use evloop::streams::{self, StreamError, StreamReader, StreamWriter};
use evloop::{AddrInfoHints, ConnectOptions, NetExt, ResolveError, ServeOptions};
use evloop_test_support::{in_child, open_fds, reset_on_close, threads_named, until};

async fn echo_lines(reader: StreamReader, writer: StreamWriter) {
    loop {
        match reader.readline().await {
            Ok(line) if line.is_empty() => break,
            Ok(line) => {
                writer.write(&line).unwrap();
                if writer.drain().await.is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    writer.close();
}

#[test]
fn tcp_echo_with_many_clients() {
    evloop::run(async {
        let server = streams::start_server(echo_lines, Some("127.0.0.1"), 0)
            .await
            .unwrap();
        let port = server.tcp_addrs()[0].port();
        let mut clients = Vec::new();
        for i in 0..20 {
            clients.push(evloop::create_task(async move {
                let (reader, writer) = streams::open_connection("127.0.0.1", port).await.unwrap();
                for j in 0..10 {
                    let line = format!("client {i} line {j}\n");
                    writer.write(line.as_bytes()).unwrap();
                    writer.drain().await.unwrap();
                    assert_eq!(reader.readline().await.unwrap(), line.as_bytes());
                }
                writer.write_eof().unwrap();
                assert_eq!(
                    reader.read(10).await.unwrap(),
                    b"",
                    "server closed after EOF"
                );
                assert!(reader.at_eof());
                writer.close();
                writer.wait_closed().await.unwrap();
            }));
        }
        for client in clients {
            client.await.unwrap();
        }
        server.close();
        server.wait_closed().await;
        assert!(!server.is_serving());
    })
    .unwrap();
}

#[test]
fn unix_echo_and_extra_info() {
    let path = std::env::temp_dir().join(format!("evloop-streams-{}.sock", std::process::id()));
    let p = path.clone();
    evloop::run(async move {
        let server = streams::start_unix_server(echo_lines, &p, ServeOptions::new()).unwrap();
        assert_eq!(
            server.sockets(),
            [evloop::transport::SockAddr::Unix(Some(p.clone()))]
        );
        let (reader, writer) = streams::open_unix_connection(&p, ConnectOptions::new())
            .await
            .unwrap();
        writer.writelines([&b"over "[..], b"unix\n"]).unwrap();
        assert_eq!(reader.readline().await.unwrap(), b"over unix\n");
        assert_eq!(
            writer.get_extra_info("peername"),
            Some(evloop::transport::ExtraInfo::Address(
                evloop::transport::SockAddr::Unix(Some(p.clone()))
            ))
        );
        assert!(matches!(
            writer.get_extra_info("socket"),
            Some(evloop::transport::ExtraInfo::Fd(_))
        ));
        writer.close();
        writer.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await;
    })
    .unwrap();
    assert!(!path.exists(), "the server removed its socket file");
}

#[test]
fn tcp_extra_info_names_both_ends() {
    evloop::run(async {
        let server = streams::start_server(echo_lines, Some("127.0.0.1"), 0)
            .await
            .unwrap();
        let addr = server.tcp_addrs()[0];
        let (_reader, writer) = streams::open_connection("127.0.0.1", addr.port())
            .await
            .unwrap();
        let peer = writer.transport().peername().unwrap();
        assert_eq!(peer, evloop::transport::SockAddr::Inet(addr));
        assert!(matches!(
            writer.transport().sockname(),
            Some(evloop::transport::SockAddr::Inet(a)) if a.ip().is_loopback()
        ));
        server.close();
    })
    .unwrap();
}

/// A std server thread that writes `reply` to its first client, then closes.
fn one_shot_server(reply: &'static [u8]) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(reply).unwrap();
    });
    port
}

#[test]
fn readexactly_at_eof_gives_the_partial_bytes() {
    let port = one_shot_server(b"abc");
    evloop::run(async move {
        let (reader, _writer) = streams::open_connection("127.0.0.1", port).await.unwrap();
        match reader.readexactly(5).await {
            Err(StreamError::IncompleteRead(e)) => {
                assert_eq!(e.partial, b"abc");
                assert_eq!(e.expected, Some(5));
                assert_eq!(e.to_string(), "3 bytes read on a total of 5 expected bytes");
            }
            other => panic!("expected IncompleteReadError, got {other:?}"),
        }
        assert!(reader.at_eof());
        let e = reader.readuntil(b"\n").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "0 bytes read on a total of None expected bytes"
        );
    })
    .unwrap();
}

#[test]
fn a_line_over_the_limit_fails_that_read_only() {
    // A separator found past the limit: that line is dropped, the stream goes on.
    let port = one_shot_server(b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nok\n");
    evloop::run(async move {
        let options = ConnectOptions::new().limit(16);
        let (reader, _writer) = streams::open_connection_with("127.0.0.1", port, options)
            .await
            .unwrap();
        // Wait until everything is buffered, so the outcome does not depend on segmenting.
        until(|| reader.buffered_len() == 44).await;
        match reader.readline().await {
            Err(StreamError::Value(text)) => {
                assert_eq!(text, "Separator is found, but chunk is longer than limit")
            }
            other => panic!("expected ValueError, got {other:?}"),
        }
        assert_eq!(
            reader.readline().await.unwrap(),
            b"ok\n",
            "the stream goes on"
        );
    })
    .unwrap();
    // No separator within the limit: the buffer is dropped.
    let port = one_shot_server(b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    evloop::run(async move {
        let options = ConnectOptions::new().limit(16);
        let (reader, _writer) = streams::open_connection_with("127.0.0.1", port, options)
            .await
            .unwrap();
        until(|| reader.buffered_len() == 40).await;
        match reader.readline().await {
            Err(StreamError::Value(text)) => {
                assert_eq!(text, "Separator is not found, and chunk exceed the limit")
            }
            other => panic!("expected ValueError, got {other:?}"),
        }
        assert_eq!(reader.buffered_len(), 0);
        assert_eq!(reader.readline().await.unwrap(), b"", "then EOF");
    })
    .unwrap();
    let port = one_shot_server(b"abcdefgh\n");
    evloop::run(async move {
        let options = ConnectOptions::new().limit(4);
        let (reader, _writer) = streams::open_connection_with("127.0.0.1", port, options)
            .await
            .unwrap();
        until(|| reader.buffered_len() == 9).await;
        match reader.readuntil(b"\n").await {
            Err(StreamError::LimitOverrun(e)) => {
                assert_eq!(
                    e.message,
                    "Separator is found, but chunk is longer than limit"
                );
                assert_eq!(e.consumed, 8);
            }
            other => panic!("expected LimitOverrunError, got {other:?}"),
        }
        // The data stays buffered after a LimitOverrunError, as in asyncio.
        assert_eq!(reader.readexactly(9).await.unwrap(), b"abcdefgh\n");
        assert!(matches!(
            reader.readuntil(b"").await,
            Err(StreamError::Value(t)) if t == "Separator should be at least one-byte string"
        ));
    })
    .unwrap();
}

#[test]
fn a_peer_reset_mid_line_fails_only_its_connection() {
    evloop::run(async {
        let outcomes: Rc<std::cell::RefCell<Vec<String>>> = Rc::default();
        let seen = outcomes.clone();
        let server = streams::start_server(
            move |reader: StreamReader, writer: StreamWriter| {
                let seen = seen.clone();
                async move {
                    loop {
                        match reader.readline().await {
                            Ok(line) if line.is_empty() => break,
                            Ok(line) => {
                                writer.write(&line).unwrap();
                            }
                            Err(error) => {
                                seen.borrow_mut().push(error.to_string());
                                break;
                            }
                        }
                    }
                }
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let port = server.tcp_addrs()[0].port();
        let (good_reader, good_writer) = streams::open_connection("127.0.0.1", port).await.unwrap();
        let rude = evloop::to_thread(move || {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream.write_all(b"half a li").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            reset_on_close(&stream);
        });
        rude.await.unwrap();
        let seen = outcomes.clone();
        until(move || !seen.borrow().is_empty()).await;
        let error = outcomes.borrow()[0].clone();
        assert!(error.contains("reset"), "a connection reset: {error}");
        // The other connection is untouched.
        good_writer.write(b"still here\n").unwrap();
        assert_eq!(good_reader.readline().await.unwrap(), b"still here\n");
        server.close();
    })
    .unwrap();
}

#[test]
fn half_close_lets_the_server_answer_after_eof() {
    evloop::run(async {
        let server = streams::start_server(
            |reader: StreamReader, writer: StreamWriter| async move {
                let all = reader.read_to_end().await.unwrap();
                assert!(reader.at_eof());
                writer
                    .write(format!("got {} bytes", all.len()).as_bytes())
                    .unwrap();
                writer.close();
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let port = server.tcp_addrs()[0].port();
        let (reader, writer) = streams::open_connection("127.0.0.1", port).await.unwrap();
        assert!(writer.can_write_eof());
        writer.write(&[7u8; 100_000]).unwrap();
        writer.write_eof().unwrap();
        assert_eq!(
            writer.write(b"late").unwrap_err().to_string(),
            "Cannot call write() after write_eof()"
        );
        assert_eq!(reader.read_to_end().await.unwrap(), b"got 100000 bytes");
        server.close();
    })
    .unwrap();
}

#[test]
fn a_slow_reader_blocks_drain_and_the_buffer_stays_bounded() {
    evloop::run(async {
        const CHUNK: usize = 64 * 1024;
        // 40 MiB: more than the kernel can hold for one loopback connection (tcp_wmem's 4 MiB
        // plus tcp_rmem's autotuned 32 MiB here), so the writer must stall. 4 MiB did not
        // always: autotuning absorbed all of it in one CI run.
        const CHUNKS: usize = 640;
        let written = Rc::new(Cell::new(0usize));
        let peak = Rc::new(Cell::new(0usize));
        let (w, p) = (written.clone(), peak.clone());
        let server = streams::start_server(
            move |_reader: StreamReader, writer: StreamWriter| {
                let (w, p) = (w.clone(), p.clone());
                async move {
                    let chunk = vec![1u8; CHUNK];
                    for _ in 0..CHUNKS {
                        writer.write(&chunk).unwrap();
                        p.set(p.get().max(writer.transport().get_write_buffer_size()));
                        writer.drain().await.unwrap();
                        w.set(w.get() + 1);
                    }
                    writer.close();
                }
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let port = server.tcp_addrs()[0].port();
        let (reader, _writer) = streams::open_connection("127.0.0.1", port).await.unwrap();
        // Not reading: the kernel buffers fill, then the server's drain blocks.
        let w = written.clone();
        until(move || w.get() > 0).await;
        let mut stalled = 0;
        let mut last = written.get();
        while stalled < 50 {
            evloop::sleep(Duration::from_millis(2)).await;
            if written.get() == last {
                stalled += 1;
            } else {
                stalled = 0;
                last = written.get();
            }
        }
        assert!(written.get() < CHUNKS, "drain held the writer back");
        // The client transport paused reading past twice the reader's limit, so its buffer
        // is bounded too.
        assert!(reader.buffered_len() <= 2 * streams::DEFAULT_LIMIT + 64 * 1024);
        let all = reader.read_to_end().await.unwrap();
        assert_eq!(all.len(), CHUNK * CHUNKS);
        assert_eq!(written.get(), CHUNKS);
        assert!(
            peak.get() <= 64 * 1024 + CHUNK,
            "the server's buffer stayed under high water plus one write: {}",
            peak.get()
        );
        server.close();
    })
    .unwrap();
}

#[test]
fn drain_after_the_connection_is_lost_says_so() {
    evloop::run(async {
        let server = streams::start_server(
            |_reader: StreamReader, writer: StreamWriter| async move { writer.close() },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let port = server.tcp_addrs()[0].port();
        let (reader, writer) = streams::open_connection("127.0.0.1", port).await.unwrap();
        assert_eq!(reader.read(10).await.unwrap(), b"");
        writer.close();
        writer.wait_closed().await.unwrap();
        let error = writer.drain().await.unwrap_err();
        assert_eq!(error.to_string(), "Connection lost");
        server.close();
    })
    .unwrap();
}

#[test]
fn a_server_closed_with_connections_open_leaks_no_fd() {
    if in_child("a_server_closed_with_connections_open_leaks_no_fd") {
        return;
    }
    let before = open_fds().len();
    evloop::run(async {
        let server = streams::start_server(echo_lines, Some("127.0.0.1"), 0)
            .await
            .unwrap();
        let port = server.tcp_addrs()[0].port();
        let mut pairs = Vec::new();
        for _ in 0..5 {
            pairs.push(streams::open_connection("127.0.0.1", port).await.unwrap());
        }
        let s = server.clone();
        until(move || s.connection_count() == 5).await;
        server.close();
        // New connections are refused; the open ones keep working (asyncio 3.12).
        let refused = streams::open_connection("127.0.0.1", port)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
        let (reader, writer) = &pairs[0];
        writer.write(b"after close\n").unwrap();
        assert_eq!(reader.readline().await.unwrap(), b"after close\n");
        // abort_clients ends each connection; each client sees its own end.
        server.abort_clients();
        server.wait_closed().await;
        for (reader, writer) in &pairs {
            match reader.read(10).await {
                Ok(data) => assert!(data.is_empty()),
                Err(error) => assert!(error.to_string().contains("reset"), "{error}"),
            }
            writer.close();
        }
        for (_, writer) in &pairs {
            let _ = writer.wait_closed().await;
        }
    })
    .unwrap();
    assert_eq!(open_fds().len(), before, "every socket was closed");
}

#[test]
fn a_loop_closed_with_connections_open_leaks_no_fd() {
    if in_child("a_loop_closed_with_connections_open_leaks_no_fd") {
        return;
    }
    let before = open_fds().len();
    evloop::run(async {
        let server = streams::start_server(echo_lines, Some("127.0.0.1"), 0)
            .await
            .unwrap();
        let port = server.tcp_addrs()[0].port();
        let (reader, writer) = streams::open_connection("127.0.0.1", port).await.unwrap();
        writer.write(b"ping\n").unwrap();
        assert_eq!(reader.readline().await.unwrap(), b"ping\n");
        // Return with the server, both ends and the handler task still open: each
        // transport is kept alive by its protocol until the loop closes.
        drop((reader, writer));
    })
    .unwrap();
    assert_eq!(
        open_fds().len(),
        before,
        "closing the loop closed every socket"
    );
}

#[test]
fn getaddrinfo_runs_on_the_default_executor() {
    if in_child("getaddrinfo_runs_on_the_default_executor") {
        return;
    }
    evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        // An IP literal needs no resolver and no thread.
        let found = lp
            .getaddrinfo(Some("127.0.0.1"), 8080, AddrInfoHints::stream())
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(found[0].socktype, libc::SOCK_STREAM);
        assert_eq!(threads_named("evloop_"), 0);
        let found = lp
            .getaddrinfo(Some("localhost"), 80, AddrInfoHints::stream())
            .await
            .unwrap();
        assert!(!found.is_empty());
        assert!(found.iter().all(|i| i.addr.ip().is_loopback()));
        assert_eq!(
            threads_named("evloop_"),
            1,
            "resolved on the default executor"
        );
        let (host, service) = lp
            .getnameinfo(
                "127.0.0.1:80".parse().unwrap(),
                libc::NI_NUMERICHOST | libc::NI_NUMERICSERV,
            )
            .await
            .unwrap();
        assert_eq!((host.as_str(), service.as_str()), ("127.0.0.1", "80"));
        match lp
            .getaddrinfo(Some("no-such-host.invalid"), 80, AddrInfoHints::stream())
            .await
        {
            Err(ResolveError::Gai { code, message }) => {
                assert!(code < 0);
                assert!(!message.is_empty());
            }
            other => panic!("expected a gaierror, got {other:?}"),
        }
    })
    .unwrap();
}

#[test]
fn open_connection_by_name_tries_each_address() {
    // "localhost" may resolve to ::1 first; the server listens on 127.0.0.1 only, so a
    // connection proves the next address was tried after the first was refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepter = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 2];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        }
    });
    evloop::run(async move {
        for options in [
            ConnectOptions::new(),
            ConnectOptions::new().happy_eyeballs_delay(Duration::from_millis(10)),
        ] {
            let (reader, writer) = streams::open_connection_with("localhost", port, options)
                .await
                .unwrap();
            writer.write(b"hi").unwrap();
            assert_eq!(reader.readexactly(2).await.unwrap(), b"hi");
        }
    })
    .unwrap();
    accepter.join().unwrap();
}

#[test]
fn two_readers_at_once_is_an_error() {
    evloop::run(async {
        let reader = StreamReader::new();
        let r = reader.clone();
        let first = evloop::create_task(async move { r.readline().await.map(|l| l.len()) });
        evloop::yield_now().await;
        let second = reader.read(1).await.unwrap_err();
        assert_eq!(
            second.to_string(),
            "read() called while another coroutine is already waiting for incoming data"
        );
        reader.feed_data(b"x\n");
        assert_eq!(first.await.unwrap().unwrap(), 2);
    })
    .unwrap();
}
