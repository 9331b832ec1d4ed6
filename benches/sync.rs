//! evloop's Queue and Lock side by side with tokio's `sync::mpsc` / `sync::Mutex` on its
//! current-thread runtime, async-channel / async-lock running on evloop's loop, and asyncio's
//! `Queue` / `Lock` (benches/sync.py, run by this binary in the same run; uvloop too if it is
//! installed). Issue 14.
//!
//! 1. `queue_ping_pong`: two tasks bounce a number through two queues of capacity 1; ns per
//!    round trip (two puts, two gets, two task switches).
//! 2. `queue_stream`: a producer task puts 1,000,000 numbers into a queue of capacity 128 and
//!    main gets them; ns per item.
//! 3. `lock_contended`: 100 tasks take one lock 1,000 times each and hold it across a yield,
//!    so every acquisition queues behind the others; ns per acquire/release.
//! 4. `lock_uncontended`: one task takes and releases a free lock 1,000,000 times.
//!
//! Every runtime is built once. Each figure is the median of SAMPLES passes, taken round-robin
//! across the implementations so that the machine's noise spreads over all of them; the table
//! gives each implementation's ratio to evloop's. A `harness = false` binary: criterion cannot
//! run asyncio, and one table of ratios is the point.
//!
//! `EVLOOP_SYNC_BENCH_ONE=<workload>:<impl>:<n>` runs one pass of one figure and exits: for
//! instruction counts under `valgrind --tool=callgrind`, where the wall clock is too noisy.

#[path = "queue_stream.rs"]
mod queue_stream;

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::process::Command;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evloop::queue::Queue;
use evloop::sync::Lock;
use evloop::{EventLoop, LoopExt, create_task, yield_now};
use queue_stream::{channel_stream, evloop_stream, tokio_stream};

const SAMPLES: usize = 7;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    QueuePingPong,
    QueueStream,
    LockContended,
    LockUncontended,
}

impl Workload {
    const ALL: [Workload; 4] = [
        Workload::QueuePingPong,
        Workload::QueueStream,
        Workload::LockContended,
        Workload::LockUncontended,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::QueuePingPong => "queue_ping_pong",
            Workload::QueueStream => "queue_stream",
            Workload::LockContended => "lock_contended",
            Workload::LockUncontended => "lock_uncontended",
        }
    }

    /// Operations per pass.
    fn size(self) -> u64 {
        match self {
            Workload::QueuePingPong => 100_000,
            Workload::QueueStream => 1_000_000,
            Workload::LockContended => CONTENDERS * 1_000,
            Workload::LockUncontended => 1_000_000,
        }
    }
}

const CONTENDERS: u64 = 100;

/// The Rust implementations compared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Impl {
    Evloop,
    Tokio,
    /// async-channel (queues) or async-lock (locks), on evloop's loop.
    SmolCrates,
}

impl Impl {
    const ALL: [Impl; 3] = [Impl::Evloop, Impl::Tokio, Impl::SmolCrates];

    fn name(self, workload: Workload) -> &'static str {
        match (self, workload) {
            (Impl::Evloop, _) => "evloop",
            (Impl::Tokio, Workload::QueuePingPong | Workload::QueueStream) => "tokio-mpsc",
            (Impl::Tokio, _) => "tokio-mutex",
            (Impl::SmolCrates, Workload::QueuePingPong | Workload::QueueStream) => {
                "async-channel-on-evloop"
            }
            (Impl::SmolCrates, _) => "async-lock-on-evloop",
        }
    }
}

struct Runtimes {
    evloop: EventLoop,
    tokio: tokio::runtime::Runtime,
}

impl Runtimes {
    fn new() -> Runtimes {
        Runtimes {
            evloop: EventLoop::new().unwrap(),
            tokio: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    fn evloop<F: Future<Output = Duration> + 'static>(&self, main: F) -> Duration {
        self.evloop.run_until_complete(main).unwrap()
    }

    /// One pass of `workload` with `n` operations; the time of the operations alone.
    fn pass(&self, workload: Workload, imp: Impl, n: u64) -> Duration {
        match (workload, imp) {
            (Workload::QueuePingPong, Impl::Evloop) => self.evloop(evloop_ping_pong(n)),
            (Workload::QueuePingPong, Impl::Tokio) => self.tokio.block_on(tokio_ping_pong(n)),
            (Workload::QueuePingPong, Impl::SmolCrates) => self.evloop(channel_ping_pong(n)),
            (Workload::QueueStream, Impl::Evloop) => self.evloop(evloop_stream(n)),
            (Workload::QueueStream, Impl::Tokio) => self.tokio.block_on(tokio_stream(n)),
            (Workload::QueueStream, Impl::SmolCrates) => {
                self.evloop(channel_stream(n, create_task))
            }
            (Workload::LockContended, Impl::Evloop) => self.evloop(evloop_contended(n)),
            (Workload::LockContended, Impl::Tokio) => self.tokio.block_on(tokio_contended(n)),
            (Workload::LockContended, Impl::SmolCrates) => self.evloop(async_lock_contended(n)),
            (Workload::LockUncontended, Impl::Evloop) => self.evloop(evloop_uncontended(n)),
            (Workload::LockUncontended, Impl::Tokio) => self.tokio.block_on(tokio_uncontended(n)),
            (Workload::LockUncontended, Impl::SmolCrates) => self.evloop(async_lock_uncontended(n)),
        }
    }
}

// ---- queue_ping_pong --------------------------------------------------------------------------

async fn evloop_ping_pong(n: u64) -> Duration {
    let (ping, pong) = (Queue::new(1), Queue::new(1));
    let echo = create_task({
        let (ping, pong) = (ping.clone(), pong.clone());
        async move {
            while let Ok(x) = ping.get().await {
                pong.put(x).await.unwrap();
            }
        }
    });
    let start = Instant::now();
    for i in 0..n {
        ping.put(i).await.unwrap();
        black_box(pong.get().await.unwrap());
    }
    let elapsed = start.elapsed();
    ping.shutdown(false);
    echo.await.unwrap();
    elapsed
}

async fn tokio_ping_pong(n: u64) -> Duration {
    let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel(1);
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel(1);
    let echo = tokio::spawn(async move {
        while let Some(x) = ping_rx.recv().await {
            pong_tx.send(x).await.unwrap();
        }
    });
    let start = Instant::now();
    for i in 0..n {
        ping_tx.send(i).await.unwrap();
        black_box(pong_rx.recv().await.unwrap());
    }
    let elapsed = start.elapsed();
    drop(ping_tx);
    echo.await.unwrap();
    elapsed
}

async fn channel_ping_pong(n: u64) -> Duration {
    let (ping_tx, ping_rx) = async_channel::bounded(1);
    let (pong_tx, pong_rx) = async_channel::bounded(1);
    let echo = create_task(async move {
        while let Ok(x) = ping_rx.recv().await {
            pong_tx.send(x).await.unwrap();
        }
    });
    let start = Instant::now();
    for i in 0..n {
        ping_tx.send(i).await.unwrap();
        black_box(pong_rx.recv().await.unwrap());
    }
    let elapsed = start.elapsed();
    drop(ping_tx);
    echo.await.unwrap();
    elapsed
}

// ---- queue_stream ------------------------------------------------------------------------------

// ---- lock_contended ----------------------------------------------------------------------------

async fn evloop_contended(n: u64) -> Duration {
    let lock = Lock::new();
    let count = Rc::new(Cell::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONTENDERS)
        .map(|_| {
            let (lock, count) = (lock.clone(), count.clone());
            create_task(async move {
                for _ in 0..n / CONTENDERS {
                    let _guard = lock.acquire().await;
                    count.set(count.get() + 1);
                    yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(count.get(), n);
    start.elapsed()
}

async fn tokio_contended(n: u64) -> Duration {
    let lock = Arc::new(tokio::sync::Mutex::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONTENDERS)
        .map(|_| {
            let lock = lock.clone();
            tokio::spawn(async move {
                for _ in 0..n / CONTENDERS {
                    let mut count = lock.lock().await;
                    *count += 1;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*lock.lock().await, n);
    start.elapsed()
}

async fn async_lock_contended(n: u64) -> Duration {
    let lock = Rc::new(async_lock::Mutex::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONTENDERS)
        .map(|_| {
            let lock = lock.clone();
            create_task(async move {
                for _ in 0..n / CONTENDERS {
                    let mut count = lock.lock().await;
                    *count += 1;
                    yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*lock.lock().await, n);
    start.elapsed()
}

// ---- lock_uncontended --------------------------------------------------------------------------

async fn evloop_uncontended(n: u64) -> Duration {
    let lock = Lock::new();
    let start = Instant::now();
    for _ in 0..n {
        drop(black_box(lock.acquire().await));
    }
    start.elapsed()
}

async fn tokio_uncontended(n: u64) -> Duration {
    let lock = tokio::sync::Mutex::new(());
    let start = Instant::now();
    for _ in 0..n {
        drop(black_box(lock.lock().await));
    }
    start.elapsed()
}

async fn async_lock_uncontended(n: u64) -> Duration {
    let lock = async_lock::Mutex::new(());
    let start = Instant::now();
    for _ in 0..n {
        drop(black_box(lock.lock().await));
    }
    start.elapsed()
}

// ---- the run ----------------------------------------------------------------------------------

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// asyncio's (and uvloop's) figures from benches/sync.py: (workload, impl, ns per op).
fn python_figures() -> Vec<(String, String, f64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sync.py");
    let mut figures = Vec::new();
    for kind in ["asyncio", "uvloop"] {
        let out = match Command::new("python3")
            .args([script, "--loop", kind])
            .output()
        {
            Ok(out) if out.status.success() => out,
            Ok(out) => {
                eprintln!(
                    "# python3 sync.py --loop {kind} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                );
                continue;
            }
            Err(error) => {
                eprintln!("# python3 not available: {error}");
                break;
            }
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let field = |key: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(key))
                    .map(str::to_owned)
            };
            if let (Some(w), Some(i), Some(v)) =
                (field("workload="), field("impl="), field("value="))
            {
                figures.push((w, i, v.parse().unwrap_or(f64::NAN)));
            }
        }
    }
    figures
}

fn main() {
    let rt = Runtimes::new();
    if let Ok(one) = std::env::var("EVLOOP_SYNC_BENCH_ONE") {
        let parts: Vec<&str> = one.split(':').collect();
        let workload = Workload::ALL
            .into_iter()
            .find(|w| w.name() == parts[0])
            .expect("a workload name");
        let imp = Impl::ALL
            .into_iter()
            .find(|i| i.name(workload) == parts[1])
            .expect("an implementation name");
        let n = parts[2].parse().expect("an operation count");
        black_box(rt.pass(workload, imp, n));
        return;
    }
    println!("# {SAMPLES} samples per figure, round-robin; ns per operation (median)");
    let mut rows = Vec::new();
    for workload in Workload::ALL {
        let n = workload.size();
        for imp in Impl::ALL {
            rt.pass(workload, imp, n); // warm-up
        }
        let mut samples = vec![Vec::new(); Impl::ALL.len()];
        for _ in 0..SAMPLES {
            for (k, imp) in Impl::ALL.into_iter().enumerate() {
                let elapsed = rt.pass(workload, imp, n);
                samples[k].push(elapsed.as_nanos() as f64 / n as f64);
            }
        }
        for (k, imp) in Impl::ALL.into_iter().enumerate() {
            let spread = {
                let (lo, hi) = samples[k]
                    .iter()
                    .fold((f64::MAX, 0f64), |(lo, hi), &s| (lo.min(s), hi.max(s)));
                (lo, hi)
            };
            let ns = median(samples[k].clone());
            println!(
                "workload={} impl={} value={ns:.1} unit=ns_per_op  # min {:.1} max {:.1}",
                workload.name(),
                imp.name(workload),
                spread.0,
                spread.1
            );
            rows.push((
                workload.name().to_owned(),
                imp.name(workload).to_owned(),
                ns,
            ));
        }
    }
    for figure in python_figures() {
        println!(
            "workload={} impl={} value={:.1} unit=ns_per_op",
            figure.0, figure.1, figure.2
        );
        rows.push(figure);
    }
    println!("\n| workload | impl | ns/op (median) | × evloop |\n|---|---|---|---|");
    for workload in Workload::ALL {
        let evloop = rows
            .iter()
            .find(|r| r.0 == workload.name() && r.1 == "evloop")
            .map(|r| r.2)
            .unwrap_or(f64::NAN);
        for row in rows.iter().filter(|r| r.0 == workload.name()) {
            println!(
                "| {} | {} | {:.1} | {:.2} |",
                row.0,
                row.1,
                row.2,
                row.2 / evloop
            );
        }
    }
}
