//! hyper 1.x HTTP/1.1 on 127.0.0.1: the same server (`crates/evloop/examples/http.rs`'s
//! `service`, keep-alive, 30 s header-read timeout) on evloop (through `evloop::compat::hyper`)
//! and on tokio's current_thread runtime (through hyper-util), loaded by `wrk` in one run.
//!
//! ```text
//! cargo bench -p evloop-benches --bench http              # 5 rounds of 3 s per server
//! cargo bench -p evloop-benches --bench http -- 9 5       # 9 rounds of 5 s
//! cargo bench -p evloop-benches --bench http -- callgrind # instructions per request instead
//! ```
//!
//! Wall-clock figures swing on a shared machine; `callgrind` runs each server under valgrind
//! (startup measured alone and subtracted) while wrk loads it, and reports instructions per
//! request, which do not.
//!
//! Each server runs in a child process (this binary re-executed with `EVLOOP_HTTP_SERVER`); the
//! rounds alternate between the servers so that noise from other processes hits both alike. Each
//! round reports wrk's requests/s and the server's CPU time per request (from /proc), and the
//! summary gives medians and evloop/tokio ratios. Skipped, with a message, when `wrk` is not
//! installed (`apt-get install wrk`).

#[path = "cpu_time.rs"]
mod cpu_time;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[allow(dead_code)]
#[path = "../crates/evloop/examples/http.rs"]
mod example;

const SERVER_ENV: &str = "EVLOOP_HTTP_SERVER";
const CONNECTIONS: &str = "50";
const PATH: &str = "/json";

fn evloop_server() {
    evloop::run(async {
        let listener = evloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        println!("{}", listener.local_addr().unwrap().port());
        example::serve(listener).await
    })
    .unwrap()
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
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(stream),
                        hyper::service::service_fn(example::service),
                    )
                    .await;
            });
        }
    });
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(kind: &str) -> Server {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(SERVER_ENV, kind)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap();
        Server { child, port }
    }

    /// The server's CPU time (user + system) so far, from /proc.
    fn cpu(&self) -> Duration {
        cpu_time::cpu_time(self.child.id())
    }

    /// One wrk round: (requests/s, server CPU µs per request).
    fn round(&self, seconds: u64) -> (f64, f64) {
        let before = self.cpu();
        let out = Command::new("wrk")
            .args(["-t1", "-c", CONNECTIONS, "-d"])
            .arg(format!("{seconds}s"))
            .arg(format!("http://127.0.0.1:{}{PATH}", self.port))
            .output()
            .expect("wrk runs");
        let used = self.cpu() - before;
        let text = String::from_utf8_lossy(&out.stdout);
        let number_after = |label: &str| -> f64 {
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with(label))
                .unwrap_or_else(|| panic!("no `{label}` in wrk's output:\n{text}"));
            line.split_whitespace()
                .find_map(|w| w.parse().ok())
                .expect("a number")
        };
        assert!(
            !text.contains("Non-2xx") && !text.contains("Socket errors"),
            "wrk saw errors:\n{text}"
        );
        let rps = number_after("Requests/sec:");
        let requests = rps * seconds as f64;
        (rps, used.as_secs_f64() * 1e6 / requests)
    }
}

/// Instructions per request of `kind`'s server, under callgrind: (requests, Ir per request).
fn instructions_per_request(kind: &str, seconds: u64) -> (u64, f64) {
    let run = |load: bool| -> (u64, u64) {
        let out_file =
            std::env::temp_dir().join(format!("evloop-http-{kind}-{}.cg", std::process::id()));
        let mut child = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out_file.display()))
            .arg(std::env::current_exe().unwrap())
            .env(SERVER_ENV, kind)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("valgrind runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().unwrap();
        let mut requests = 0;
        if load {
            let out = Command::new("wrk")
                .args(["-t1", "-c10", "-d"])
                .arg(format!("{seconds}s"))
                .arg(format!("http://127.0.0.1:{port}{PATH}"))
                .output()
                .expect("wrk runs");
            let text = String::from_utf8_lossy(&out.stdout);
            requests = text
                .lines()
                .find(|l| l.contains("requests in"))
                .and_then(|l| l.split_whitespace().next()?.parse().ok())
                .unwrap_or_else(|| panic!("no request count in wrk's output:\n{text}"));
        }
        // SAFETY: kill(2) on our child; callgrind writes its profile when SIGTERM ends it.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
        let profile = std::fs::read_to_string(&out_file).expect("callgrind wrote a profile");
        let _ = std::fs::remove_file(&out_file);
        let total = profile
            .lines()
            .find_map(|l| {
                l.strip_prefix("summary: ")
                    .or_else(|| l.strip_prefix("totals: "))
            })
            .and_then(|v| v.trim().parse().ok())
            .expect("a callgrind summary line");
        (requests, total)
    };
    let (_, startup) = run(false);
    let (requests, total) = run(true);
    (requests, (total - startup) as f64 / requests as f64)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn spread(values: &[f64]) -> f64 {
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    (hi - lo) / median(&mut values.to_vec()) * 100.0
}

fn main() {
    match std::env::var(SERVER_ENV).as_deref() {
        Ok("evloop") => return evloop_server(),
        Ok("tokio") => return tokio_server(),
        _ => {}
    }
    // `cargo bench` passes `--bench`; the optional numbers are rounds and seconds per round.
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rounds = numbers.first().copied().unwrap_or(5);
    let seconds = numbers.get(1).copied().unwrap_or(3);
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("http bench skipped: wrk is not installed (apt-get install wrk)");
        return;
    }
    if std::env::args().any(|a| a == "callgrind") {
        let seconds = 4;
        println!("| server | requests under callgrind | instructions/request |");
        println!("|---|---|---|");
        let mut per = Vec::new();
        for kind in ["evloop", "tokio"] {
            let (requests, ir) = instructions_per_request(kind, seconds);
            println!("| {kind} | {requests} | {ir:.0} |");
            per.push(ir);
        }
        println!("| evloop/tokio | | {:.2}x |", per[0] / per[1]);
        return;
    }
    let servers = [
        ("evloop", Server::start("evloop")),
        ("tokio", Server::start("tokio")),
    ];
    // Warm-up: connections, allocator, page cache.
    for (_, server) in &servers {
        server.round(1);
    }
    let mut results: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); 2];
    for round in 0..rounds {
        for (i, (kind, server)) in servers.iter().enumerate() {
            let (rps, us) = server.round(seconds);
            println!(
                "round {round} {kind:>6}: {rps:>9.0} requests/s, {us:.2} us server CPU/request"
            );
            results[i].0.push(rps);
            results[i].1.push(us);
        }
    }
    println!(
        "\nhyper http1 GET {PATH}, wrk -t1 -c{CONNECTIONS}, {rounds} rounds of {seconds} s (median, spread = (max-min)/median)"
    );
    println!("| server | requests/s | spread | server CPU us/request | spread |");
    println!("|---|---|---|---|---|");
    let mut medians = Vec::new();
    for ((kind, _), (rps, us)) in servers.iter().zip(&mut results) {
        let (rps_spread, us_spread) = (spread(rps), spread(us));
        let (rps, us) = (median(rps), median(us));
        println!("| {kind} | {rps:.0} | {rps_spread:.0}% | {us:.2} | {us_spread:.0}% |");
        medians.push((rps, us));
    }
    println!(
        "| evloop/tokio | {:.2}x | | {:.2}x | |",
        medians[0].0 / medians[1].0,
        medians[0].1 / medians[1].1
    );
}
