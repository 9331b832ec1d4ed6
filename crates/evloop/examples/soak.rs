//! A soak run: mixed load on one loop for a while, watching the process for leaks.
//!
//! ```text
//! cargo run --release -p evloop --example soak -- --secs 30     # what `cargo xtask soak` runs
//! ```
//!
//! On one loop, at once: a TCP echo server with 50 client connections doing round trips (each
//! client reconnects every few hundred round trips, so accept and close are exercised too),
//! timers scheduled and some cancelled, executor jobs (`to_thread`), and tasks created and
//! cancelled before they finish. Every few seconds it samples the process's resident memory, open
//! fds and threads. After a warm-up, a count that keeps growing is a leak: the run fails (exit
//! code 1) and says which one grew. Traffic stays on 127.0.0.1 and the run stops by itself.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 50;
const ROUND_TRIPS_PER_CONNECTION: usize = 300;

/// One sample of the process's resources.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: usize,
    threads: usize,
}

fn sample(started: Instant) -> Sample {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let count = |dir: &str| std::fs::read_dir(dir).map_or(0, |d| d.count());
    Sample {
        at: started.elapsed(),
        rss_kib: field("VmRSS:"),
        fds: count("/proc/self/fd"),
        threads: field("Threads:") as usize,
    }
}

/// What the load did, so a run that did nothing cannot pass.
#[derive(Default)]
struct Counters {
    round_trips: Cell<u64>,
    reconnects: Cell<u64>,
    timers_fired: Cell<u64>,
    timers_cancelled: Cell<u64>,
    jobs: Cell<u64>,
    tasks_cancelled: Cell<u64>,
}

fn bump(counter: &Cell<u64>) {
    counter.set(counter.get() + 1);
}

async fn echo_server(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        evloop::create_task(async move {
            let mut buf = [0u8; 4096];
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
}

async fn echo_client(addr: std::net::SocketAddr, until: Instant, counters: Rc<Counters>) {
    let request = [7u8; 64];
    let mut reply = [0u8; 64];
    while Instant::now() < until {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the echo server");
        for _ in 0..ROUND_TRIPS_PER_CONNECTION {
            stream.write_all(&request).await.expect("echo write");
            stream.read_exact(&mut reply).await.expect("echo read");
            bump(&counters.round_trips);
            if Instant::now() >= until {
                return;
            }
        }
        bump(&counters.reconnects);
    }
}

async fn timers(until: Instant, counters: Rc<Counters>) {
    let lp = evloop::get_running_loop().expect("inside run");
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let fired = counters.clone();
        let timer = lp
            .call_later(Duration::from_micros(100 + n % 900), move || {
                bump(&fired.timers_fired)
            })
            .expect("loop open");
        if n % 3 == 0 {
            timer.cancel();
            bump(&counters.timers_cancelled);
        }
        evloop::sleep(Duration::from_micros(200)).await;
    }
}

async fn executor_jobs(until: Instant, counters: Rc<Counters>) {
    while Instant::now() < until {
        let sum = evloop::to_thread(|| (0..1000u64).sum::<u64>())
            .await
            .expect("executor job");
        assert_eq!(sum, 499_500);
        bump(&counters.jobs);
    }
}

async fn cancelled_tasks(until: Instant, counters: Rc<Counters>) {
    while Instant::now() < until {
        let doomed = evloop::create_task(async {
            evloop::sleep(Duration::from_secs(3600)).await;
        });
        let finishes = evloop::create_task(async { 42 });
        evloop::sleep(Duration::from_micros(100)).await;
        assert!(doomed.cancel());
        assert!(doomed.await.is_err());
        assert_eq!(finishes.await.expect("a plain task"), 42);
        bump(&counters.tasks_cancelled);
    }
}

async fn sampler(until: Instant, every: Duration, started: Instant) -> Vec<Sample> {
    let mut samples = Vec::new();
    while Instant::now() < until {
        evloop::sleep(every.min(until.saturating_duration_since(Instant::now()))).await;
        let s = sample(started);
        println!(
            "t={:>5.1}s rss={:>7} KiB fds={:>4} threads={:>3}",
            s.at.as_secs_f64(),
            s.rss_kib,
            s.fds,
            s.threads
        );
        samples.push(s);
    }
    samples
}

/// The leak verdict: after the first third of the samples (warm-up: the executor's threads,
/// buffers and allocator arenas reach their working size), the later samples must not climb above
/// the warm samples by more than noise.
fn trends(samples: &[Sample]) -> Vec<String> {
    let mut problems = Vec::new();
    if samples.len() < 4 {
        problems.push(format!(
            "only {} samples: run longer to judge a trend",
            samples.len()
        ));
        return problems;
    }
    let warm = &samples[samples.len() / 3..];
    let (early, late) = warm.split_at(warm.len() / 2);
    type Measure = fn(&Sample) -> u64;
    let max = |part: &[Sample], f: Measure| part.iter().map(f).max().unwrap_or(0);
    let checks: [(&str, Measure, u64); 3] = [
        ("open fds", |s| s.fds as u64, 8),
        ("threads", |s| s.threads as u64, 2),
        ("resident memory (KiB)", |s| s.rss_kib, 0),
    ];
    for (what, f, slack) in checks {
        let (before, after) = (max(early, f), max(late, f));
        // Memory may wobble with the allocator: a tenth of the warm size, at least 4 MiB.
        let slack = if slack == 0 {
            (before / 10).max(4096)
        } else {
            slack
        };
        if after > before + slack {
            problems.push(format!(
                "{what} keep growing: {before} at most in the first half after warm-up, {after} in the second"
            ));
        }
    }
    problems
}

fn main() {
    let mut secs = 30u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--secs" => {
                secs = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--secs takes a number of seconds")
            }
            other => panic!("unknown argument {other}; usage: soak [--secs N]"),
        }
    }
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let every = Duration::from_secs(if secs >= 30 { 3 } else { 1 });
    let counters = Rc::new(Counters::default());
    let load = counters.clone();
    let samples = evloop::run(async move {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
        let addr = listener.local_addr().expect("local address");
        let server = evloop::create_task(echo_server(listener));
        let mut workers = Vec::new();
        for _ in 0..CONNECTIONS {
            workers.push(evloop::create_task(echo_client(addr, until, load.clone())));
        }
        workers.push(evloop::create_task(timers(until, load.clone())));
        workers.push(evloop::create_task(executor_jobs(until, load.clone())));
        workers.push(evloop::create_task(cancelled_tasks(until, load.clone())));
        let samples = sampler(until, every, started).await;
        for worker in workers {
            worker.await.expect("a load task failed");
        }
        server.cancel();
        samples
    })
    .expect("the soak run");
    let c = &*counters;
    println!(
        "soak: {secs} s, {} round trips over {CONNECTIONS} connections ({} reconnects), {} timers \
         fired and {} cancelled, {} executor jobs, {} tasks cancelled",
        c.round_trips.get(),
        c.reconnects.get(),
        c.timers_fired.get(),
        c.timers_cancelled.get(),
        c.jobs.get(),
        c.tasks_cancelled.get()
    );
    let mut problems = trends(&samples);
    for (what, n) in [
        ("round trips", c.round_trips.get()),
        ("timers fired", c.timers_fired.get()),
        ("executor jobs", c.jobs.get()),
        ("cancelled tasks", c.tasks_cancelled.get()),
    ] {
        if n == 0 {
            problems.push(format!("no {what}: the load did not run"));
        }
    }
    if problems.is_empty() {
        println!("soak: no trend in memory, fds or threads");
    } else {
        for problem in &problems {
            eprintln!("soak: FAILED: {problem}");
        }
        std::process::exit(1);
    }
}
