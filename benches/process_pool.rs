//! evloop-process-pool: round trip of a trivial job and the CPU-bound job, next to Python's
//! `ProcessPoolExecutor` (benches/process_pool.py, run in the same bench run) and to N plain child
//! processes doing the same CPU work (the machine's physical limit).
//!
//! A `harness = false` binary rather than criterion: the pool re-executes this binary as its
//! workers, so `main` must be ours to call `evloop_process_pool::init()` first. Every figure is the
//! median of several timed rounds.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use evloop_process_pool::ProcessPool;

const CHILD_ENV: &str = "EVLOOP_BENCH_CPU_CHILD";

fn trivial(x: u64) -> u64 {
    x + 1
}

/// The asyncio docs' `cpu_bound`: sum of i*i for i in 0..10^7, opaque to the optimizer.
fn cpu_bound(n: u64) -> u128 {
    (0..black_box(n))
        .map(|i| black_box(u128::from(i) * u128::from(i)))
        .sum()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // A plain child process for the physical-limit measurement.
        black_box(cpu_bound(10_000_000));
        return;
    }
    evloop_process_pool::init();
    // `cargo bench` passes `--bench`; a filter argument other than that is not supported.
    let n = evloop_thread_pool::process_cpu_count().max(2);
    let pool = ProcessPool::builder().max_workers(n).build().unwrap();
    for f in (0..100)
        .map(|i| pool.submit(trivial, i).unwrap())
        .collect::<Vec<_>>()
    {
        f.wait().unwrap(); // warm: every worker started
    }

    let one: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            for i in 0..200 {
                black_box(pool.submit(trivial, i).unwrap().wait().unwrap());
            }
            t.elapsed() / 200
        })
        .collect();
    println!("evloop round_trip_one_at_a_time {:.1}", micros(median(one)));

    let flight: Vec<Duration> = (0..10)
        .map(|_| {
            let t = Instant::now();
            let futures: Vec<_> = (0..1000)
                .map(|i| pool.submit(trivial, i).unwrap())
                .collect();
            for f in futures {
                black_box(f.wait().unwrap());
            }
            t.elapsed() / 1000
        })
        .collect();
    println!(
        "evloop round_trip_1000_in_flight {:.1}",
        micros(median(flight))
    );

    let cpu = |workers: usize| -> Duration {
        median(
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    let fs: Vec<_> = (0..workers)
                        .map(|_| pool.submit(cpu_bound, 10_000_000).unwrap())
                        .collect();
                    for f in fs {
                        black_box(f.wait().unwrap());
                    }
                    t.elapsed()
                })
                .collect(),
        )
    };
    let one_worker = cpu(1);
    let n_workers = cpu(n);
    let exe = std::env::current_exe().unwrap();
    let plain = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                let kids: Vec<_> = (0..n)
                    .map(|_| Command::new(&exe).env(CHILD_ENV, "1").spawn().unwrap())
                    .collect();
                kids.into_iter()
                    .for_each(|mut k| assert!(k.wait().unwrap().success()));
                t.elapsed()
            })
            .collect(),
    );
    let inline = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                black_box(cpu_bound(10_000_000));
                t.elapsed()
            })
            .collect(),
    );
    println!(
        "evloop cpu_bound_in_process_ms {:.1}",
        inline.as_secs_f64() * 1e3
    );
    println!(
        "evloop cpu_bound_1_worker_ms {:.1}",
        one_worker.as_secs_f64() * 1e3
    );
    println!(
        "evloop cpu_bound_{n}_jobs_{n}_workers_ms {:.1}",
        n_workers.as_secs_f64() * 1e3
    );
    println!(
        "plain cpu_bound_{n}_child_processes_ms {:.1}",
        plain.as_secs_f64() * 1e3
    );
    println!(
        "speedup {n} workers vs 1: {:.2}x (plain processes: {:.2}x)",
        (one_worker.as_secs_f64() * n as f64) / n_workers.as_secs_f64(),
        (inline.as_secs_f64() * n as f64) / plain.as_secs_f64()
    );
    drop(pool);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/process_pool.py");
    match Command::new("python3")
        .arg(script)
        .arg(n.to_string())
        .output()
    {
        Ok(out) if out.status.success() => print!("{}", String::from_utf8_lossy(&out.stdout)),
        Ok(out) => eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => eprintln!("python3 not available: {e}"),
    }
}
