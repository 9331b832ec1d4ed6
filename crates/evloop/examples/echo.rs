//! A TCP echo server and client on evloop.
//!
//! ```text
//! cargo run --release -p evloop --example echo -- server 127.0.0.1:7000
//! cargo run --release -p evloop --example echo -- client 127.0.0.1:7000 50 100000
//! printf 'hello\n' | nc -q1 127.0.0.1 7000      # or load it with any TCP tool
//! ```
//!
//! The server accepts connections forever, one task per connection, and writes back whatever it
//! reads. The client opens N connections and makes each do request/response round trips of 64
//! bytes, then prints the requests per second.

use std::time::Instant;

use evloop::net::{TcpListener, TcpStream};

async fn serve(addr: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr.as_str())?;
    println!("echo server listening on {}", listener.local_addr()?);
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
    let mode = args.first().map(String::as_str).unwrap_or("server");
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:7000".to_owned());
    let outcome = match mode {
        "server" => evloop::run(serve(addr)),
        "client" => {
            let connections = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
            let requests = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100_000);
            evloop::run(client(addr, connections, requests))
        }
        other => {
            eprintln!("usage: echo server|client [addr] [connections] [requests] (not {other:?})");
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
