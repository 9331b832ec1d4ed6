//! TCP echo on 127.0.0.1: evloop's server against a tokio current_thread server, driven by the
//! same client in the same run.
//!
//! Each server runs in a child process (this binary re-executed with `EVLOOP_ECHO_SERVER`); the
//! client is this process: a tokio current_thread runtime with 50 connections, each doing 64-byte
//! request/response round trips. Criterion reports requests per second; afterwards a fixed run
//! reads the server process's CPU time from /proc and prints the CPU time per request, because
//! the client is usually the bottleneck.

#[path = "cpu_time.rs"]
mod cpu_time;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNECTIONS: usize = 50;
const SERVER_ENV: &str = "EVLOOP_ECHO_SERVER";

fn evloop_server() {
    evloop::run(async {
        let listener = evloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        println!("{}", listener.local_addr().unwrap().port());
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            evloop::create_task(async move {
                stream.set_nodelay(true).unwrap();
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
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
    })
    .unwrap();
}

fn tokio_server() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap().port());
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                stream.set_nodelay(true).unwrap();
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
}

/// A server child process and the client's connections to it.
struct Bench {
    child: Child,
    rt: tokio::runtime::Runtime,
    streams: Vec<Option<tokio::net::TcpStream>>,
}

impl Bench {
    fn start(kind: &str) -> Bench {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(SERVER_ENV, kind)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let streams = rt.block_on(async {
            let mut streams = Vec::new();
            for _ in 0..CONNECTIONS {
                let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                s.set_nodelay(true).unwrap();
                streams.push(Some(s));
            }
            streams
        });
        Bench { child, rt, streams }
    }

    /// `requests` round trips spread over the connections; returns the elapsed time.
    fn run(&mut self, requests: u64) -> Duration {
        let per = requests.div_ceil(CONNECTIONS as u64);
        let started = Instant::now();
        let streams = &mut self.streams;
        self.rt.block_on(async {
            let mut handles = Vec::with_capacity(CONNECTIONS);
            for slot in streams.iter_mut() {
                let mut s = slot.take().unwrap();
                handles.push(tokio::spawn(async move {
                    let req = [7u8; 64];
                    let mut reply = [0u8; 64];
                    for _ in 0..per {
                        s.write_all(&req).await.unwrap();
                        s.read_exact(&mut reply).await.unwrap();
                    }
                    s
                }));
            }
            for (slot, h) in streams.iter_mut().zip(handles) {
                *slot = Some(h.await.unwrap());
            }
        });
        started.elapsed()
    }

    /// The server's CPU time (user + system) so far, from /proc.
    fn server_cpu(&self) -> Duration {
        cpu_time::cpu_time(self.child.id())
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.streams.clear();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() {
    match std::env::var(SERVER_ENV).as_deref() {
        Ok("evloop") => return evloop_server(),
        Ok("tokio") => return tokio_server(),
        _ => {}
    }
    let mut criterion = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    let mut cpu = Vec::new();
    {
        let mut group = criterion.benchmark_group("echo_64B_50conn");
        group.throughput(Throughput::Elements(1));
        for kind in ["evloop", "tokio"] {
            let mut bench = Bench::start(kind);
            group.bench_function(kind, |b| b.iter_custom(|iters| bench.run(iters)));
            // A fixed run for the server's CPU time per request.
            let requests = 300_000;
            let before = bench.server_cpu();
            let wall = bench.run(requests);
            let used = bench.server_cpu() - before;
            cpu.push((
                kind,
                used.as_secs_f64() * 1e6 / requests as f64,
                requests as f64 / wall.as_secs_f64(),
            ));
        }
        group.finish();
    }
    for (kind, us, rps) in &cpu {
        println!("echo server {kind}: {us:.2} us CPU per request, {rps:.0} requests/s (fixed run)");
    }
    if let [(_, e_us, e_rps), (_, t_us, t_rps)] = cpu[..] {
        println!(
            "evloop/tokio: CPU per request {:.2}x, requests/s {:.2}x",
            e_us / t_us,
            e_rps / t_rps
        );
    }
    criterion.final_summary();
}
