//! A TCP echo server and client on evloop, at each of its three levels.
//!
//! ```text
//! cargo run --release -p evloop --example echo -- server 127.0.0.1:7000             # sockets
//! cargo run --release -p evloop --example echo -- server 127.0.0.1:7000 --protocol  # transports
//! cargo run --release -p evloop --example echo -- server 127.0.0.1:7000 --streams   # streams
//! cargo run --release -p evloop --example echo -- client 127.0.0.1:7000 50 100000
//! printf 'hello\n' | nc -q1 127.0.0.1 7000      # or load it with any TCP tool
//! ```
//!
//! The server runs until killed and writes back whatever it reads, with TCP_NODELAY on:
//! - by default, one task per connection on the async sockets (`read`, then `write_all`);
//! - with `--protocol`, asyncio's `Protocol` whose `data_received` calls `transport.write`
//!   (no task at all: the callback runs from the reactor's readiness);
//! - with `--streams`, asyncio's `start_server` with `read(16384)`, `write`, `drain`.
//!
//! These are the peers' workload-7 servers (see /work/shared/peers/README.md); a trailing
//! bare port number (`server --protocol 7000`) is accepted as the address, as the peers'
//! harness passes it. The client opens N connections and makes each do request/response
//! round trips of 64 bytes, then prints the requests per second.

use std::time::Instant;

use evloop::net::{TcpListener, TcpStream};
use evloop::streams::{self, StreamReader, StreamWriter};
use evloop::transport::{Protocol, Transport};
use evloop::{NetExt, ServeOptions};

async fn serve_sockets(addr: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr.as_str())?;
    println!(
        "echo server (sockets) listening on {}",
        listener.local_addr()?
    );
    loop {
        let (stream, _peer) = listener.accept().await?;
        evloop::create_task(async move {
            let _ = stream.set_nodelay(true);
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break, // EOF, or a reset of this connection only
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        })
        .detach();
    }
}

/// asyncio's echo protocol: `data_received` writes the data back.
#[derive(Default)]
struct Echo {
    transport: Option<Transport>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(transport) = &self.transport {
            let _ = transport.write(data);
        }
    }
}

fn split(addr: &str) -> (String, u16) {
    let (host, port) = addr.rsplit_once(':').unwrap_or(("127.0.0.1", addr));
    (host.to_owned(), port.parse().expect("a port number"))
}

async fn serve_protocol(addr: String) -> std::io::Result<()> {
    let (host, port) = split(&addr);
    let lp = evloop::get_running_loop().map_err(std::io::Error::other)?;
    let options = ServeOptions::new().backlog(1024);
    let server = lp
        .create_server(Echo::default, Some(&host), port, options)
        .await?;
    println!("echo server (protocol) listening on {:?}", server.sockets());
    server.serve_forever().await.map_err(std::io::Error::other)
}

async fn echo_stream(reader: StreamReader, writer: StreamWriter) {
    while let Ok(data) = reader.read(16 * 1024).await {
        if data.is_empty() || writer.write(&data).is_err() || writer.drain().await.is_err() {
            break;
        }
    }
    writer.close();
}

async fn serve_streams(addr: String) -> std::io::Result<()> {
    let (host, port) = split(&addr);
    let options = ServeOptions::new().backlog(1024);
    let server = streams::start_server_with(echo_stream, Some(&host), port, options).await?;
    println!("echo server (streams) listening on {:?}", server.sockets());
    server.serve_forever().await.map_err(std::io::Error::other)
}

async fn client(addr: String, connections: usize, requests: usize) -> std::io::Result<()> {
    let per_connection = requests / connections.max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let addr = addr.clone();
        tasks.push(evloop::create_task(async move {
            let stream = TcpStream::connect(addr.as_str()).await?;
            stream.set_nodelay(true)?;
            let request = [7u8; 64];
            let mut reply = [0u8; 64];
            for _ in 0..per_connection {
                stream.write_all(&request).await?;
                stream.read_exact(&mut reply).await?;
            }
            Ok::<_, std::io::Error>(())
        }));
    }
    for task in tasks {
        task.await.expect("client task")?;
    }
    let elapsed = started.elapsed();
    let total = per_connection * connections;
    println!(
        "{total} requests over {connections} connections in {:.2?}: {:.0} requests/s",
        elapsed,
        total as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("--"))
        .collect();
    let plain: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mode = plain.first().copied().unwrap_or("server");
    let addr = plain
        .get(1)
        .map(|a| {
            if a.contains(':') {
                (*a).to_owned()
            } else {
                format!("127.0.0.1:{a}")
            }
        })
        .unwrap_or_else(|| "127.0.0.1:7000".to_owned());
    let outcome = match (mode, flags.as_slice()) {
        ("server", []) => evloop::run(serve_sockets(addr)),
        ("server", ["--protocol"]) => evloop::run(serve_protocol(addr)),
        ("server", ["--streams"]) => evloop::run(serve_streams(addr)),
        ("client", []) => {
            let connections = plain.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
            let requests = plain.get(3).and_then(|s| s.parse().ok()).unwrap_or(100_000);
            evloop::run(client(addr, connections, requests))
        }
        _ => {
            eprintln!(
                "usage: echo server [addr|port] [--protocol|--streams]\n       \
                 echo client [addr] [connections] [requests]"
            );
            std::process::exit(2);
        }
    };
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            eprintln!("echo: {error}");
            std::process::exit(1);
        }
        Err(error) => {
            eprintln!("echo: {error}");
            std::process::exit(1);
        }
    }
}
