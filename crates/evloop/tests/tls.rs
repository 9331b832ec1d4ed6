//! TLS on rustls with a certificate made at test time (rcgen): streams and protocols round
//! trips, `start_tls` on an open connection, a certificate the client does not trust, and a
//! handshake that never comes.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use evloop::streams::{self, StreamReader, StreamWriter};
use evloop::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use evloop::tls::{ClientTls, ServerTls, TlsRole};
use evloop::transport::{ExtraInfo, Protocol, Transport};
use evloop::{ConnectOptions, NetExt, ServeOptions};

/// A self-signed certificate for "localhost" and 127.0.0.1, and the TLS settings of both sides.
fn tls_pair() -> (ServerTls, ClientTls, CertificateDer<'static>) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let der = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let server = ServerTls::with_single_cert(vec![der.clone()], key).unwrap();
    let client = ClientTls::with_roots([der.clone()]).unwrap();
    (server, client, der)
}

async fn echo_lines(reader: StreamReader, writer: StreamWriter) {
    while let Ok(line) = reader.readline().await {
        if line.is_empty() || writer.write(&line).is_err() || writer.drain().await.is_err() {
            break;
        }
    }
    writer.close();
}

#[test]
fn streams_round_trip_over_tls() {
    let (server_tls, client_tls, der) = tls_pair();
    evloop::run(async move {
        let options = ServeOptions::new().tls(server_tls);
        let server = streams::start_server_with(echo_lines, Some("127.0.0.1"), 0, options)
            .await
            .unwrap();
        let port = server.tcp_addrs()[0].port();
        let options = ConnectOptions::new()
            .tls(client_tls)
            .server_hostname("localhost");
        let (reader, writer) = streams::open_connection_with("127.0.0.1", port, options)
            .await
            .unwrap();
        assert_eq!(
            writer.get_extra_info("peercert"),
            Some(ExtraInfo::Bytes(der.as_ref().to_vec()))
        );
        assert_eq!(
            writer.get_extra_info("version"),
            Some(ExtraInfo::Text("TLSv1.3".into()))
        );
        assert!(matches!(writer.get_extra_info("cipher"), Some(ExtraInfo::Text(c)) if c.starts_with("TLS13")));
        assert!(matches!(writer.get_extra_info("peername"), Some(ExtraInfo::Address(_))));
        assert!(!writer.can_write_eof(), "no half-close over TLS");
        // Large enough to span several TLS records.
        let big = vec![b'z'; 60_000];
        for i in 0..3 {
            let text = format!("secret {i}\n");
            writer.write(text.as_bytes()).unwrap();
            writer.drain().await.unwrap();
            assert_eq!(reader.readline().await.unwrap(), text.as_bytes());
        }
        writer.write(&big[..60_000]).unwrap();
        writer.write(b"\n").unwrap();
        writer.drain().await.unwrap();
        assert_eq!(reader.readexactly(60_001).await.unwrap().len(), 60_001);
        writer.close();
        writer.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await;
    })
    .unwrap();
}

#[test]
fn protocols_over_tls_see_plaintext() {
    let (server_tls, client_tls, _) = tls_pair();
    struct Echo(Option<Transport>, Rc<RefCell<Vec<String>>>);
    impl Protocol for Echo {
        fn connection_made(&mut self, t: &Transport) {
            self.1.borrow_mut().push("made".into());
            self.0 = Some(t.clone());
        }
        fn data_received(&mut self, data: &[u8]) {
            self.1
                .borrow_mut()
                .push(String::from_utf8_lossy(data).into_owned());
            self.0.as_ref().unwrap().write(data).unwrap();
        }
        fn connection_lost(&mut self, error: Option<io::Error>) {
            self.1
                .borrow_mut()
                .push(format!("lost {}", error.is_some()));
        }
    }
    evloop::run(async move {
        let lp = evloop::get_running_loop().unwrap();
        let server_log: Rc<RefCell<Vec<String>>> = Rc::default();
        let sl = server_log.clone();
        let server = lp
            .create_server(
                move || Echo(None, sl.clone()),
                Some("127.0.0.1"),
                0,
                ServeOptions::new().tls(server_tls),
            )
            .await
            .unwrap();
        let port = server.tcp_addrs()[0].port();
        let client_log: Rc<RefCell<Vec<String>>> = Rc::default();
        struct Client(Rc<RefCell<Vec<String>>>);
        impl Protocol for Client {
            fn connection_made(&mut self, _: &Transport) {
                self.0.borrow_mut().push("made".into());
            }
            fn data_received(&mut self, data: &[u8]) {
                self.0
                    .borrow_mut()
                    .push(String::from_utf8_lossy(data).into_owned());
            }
        }
        let t = lp
            .create_connection(
                Client(client_log.clone()),
                "127.0.0.1",
                port,
                ConnectOptions::new().tls(client_tls),
            )
            .await
            .unwrap();
        assert_eq!(
            client_log.borrow()[..],
            ["made"],
            "made after the handshake"
        );
        t.write(b"over tls").unwrap();
        for _ in 0..10_000 {
            if client_log.borrow().len() == 2 {
                break;
            }
            evloop::sleep(Duration::from_micros(100)).await;
        }
        assert_eq!(client_log.borrow()[..], ["made", "over tls"]);
        t.close();
        for _ in 0..10_000 {
            if server_log.borrow().len() == 3 {
                break;
            }
            evloop::sleep(Duration::from_micros(100)).await;
        }
        assert_eq!(server_log.borrow()[..], ["made", "over tls", "lost false"]);
        server.close();
    })
    .unwrap();
}

#[test]
fn start_tls_upgrades_an_open_connection() {
    let (server_tls, client_tls, _) = tls_pair();
    evloop::run(async move {
        let server = streams::start_server(
            move |reader: StreamReader, writer: StreamWriter| {
                let tls = server_tls.clone();
                async move {
                    // A plaintext greeting, then STARTTLS, as SMTP or IMAP do.
                    assert_eq!(reader.readline().await.unwrap(), b"STARTTLS\n");
                    writer.write(b"OK\n").unwrap();
                    writer.drain().await.unwrap();
                    writer.start_tls(TlsRole::Server(tls), None).await.unwrap();
                    echo_lines(reader, writer).await;
                }
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let port = server.tcp_addrs()[0].port();
        let (reader, writer) = streams::open_connection("127.0.0.1", port).await.unwrap();
        writer.write(b"STARTTLS\n").unwrap();
        assert_eq!(reader.readline().await.unwrap(), b"OK\n");
        assert_eq!(writer.get_extra_info("peercert"), None);
        writer
            .start_tls(TlsRole::Client(client_tls, "localhost".into()), None)
            .await
            .unwrap();
        assert!(matches!(
            writer.get_extra_info("peercert"),
            Some(ExtraInfo::Bytes(_))
        ));
        writer.write(b"now encrypted\n").unwrap();
        assert_eq!(reader.readline().await.unwrap(), b"now encrypted\n");
        writer.close();
        server.close();
    })
    .unwrap();
}

#[test]
fn an_untrusted_certificate_fails_the_handshake_only() {
    let (server_tls, _, _) = tls_pair();
    let (_, other_client, _) = tls_pair();
    evloop::run(async move {
        let server = streams::start_server_with(
            echo_lines,
            Some("127.0.0.1"),
            0,
            ServeOptions::new().tls(server_tls),
        )
        .await
        .unwrap();
        let port = server.tcp_addrs()[0].port();
        let options = ConnectOptions::new()
            .tls(other_client)
            .server_hostname("localhost");
        let error = streams::open_connection_with("127.0.0.1", port, options)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(
            error.to_string().contains("invalid peer certificate"),
            "{error}"
        );
        // The server goes on, with the failed connection gone.
        let s = server.clone();
        for _ in 0..10_000 {
            if s.connection_count() == 0 {
                break;
            }
            evloop::sleep(Duration::from_micros(100)).await;
        }
        assert_eq!(
            server.connection_count(),
            0,
            "the failed connection is gone"
        );
        assert!(server.is_serving());
        server.close();
    })
    .unwrap();
}

#[test]
fn a_handshake_that_never_comes_times_out() {
    let (_, client_tls, _) = tls_pair();
    evloop::run(async move {
        // A plain TCP server that never answers the client hello.
        let listener = evloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepting = evloop::create_task(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            evloop::sleep(Duration::from_secs(5)).await;
            drop(stream);
        });
        let options = ConnectOptions::new()
            .tls(client_tls)
            .server_hostname("localhost")
            .ssl_handshake_timeout(Duration::from_millis(100));
        let error = streams::open_connection_with("127.0.0.1", port, options)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(
            error.to_string(),
            "SSL handshake is taking longer than 0.1 seconds: aborting the connection"
        );
        accepting.cancel();
    })
    .unwrap();
}
