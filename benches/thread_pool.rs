//! Thread pools side by side: evloop's `ThreadPoolExecutor` against tokio's `spawn_blocking`,
//! smol-rs's `blocking::unblock` and rayon's `spawn` + channel.
//!
//! 1. `one_at_a_time`: submit one trivial job and await it before the next (latency, µs/job).
//!    The floor is one cross-thread wake each way.
//! 2. `in_flight_1000`: tiny jobs with 1,000 in flight (throughput, jobs/s). Each sample runs
//!    `JOBS` jobs; with 10 samples each pool runs 1,000,000 jobs in all.
//!
//! Async peers are awaited from a tokio current-thread runtime, which is what a single-threaded
//! event loop looks like; evloop is measured both that way and with its blocking `wait()`.

#[path = "window.rs"]
mod window;

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use evloop_thread_pool::ThreadPoolExecutor;
use window::window;

/// Jobs per throughput sample.
const JOBS: u64 = 100_000;
/// Jobs kept in flight in the throughput benchmark.
const IN_FLIGHT: usize = 1_000;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
}

fn one_at_a_time(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_at_a_time");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));

    let pool = ThreadPoolExecutor::new();
    group.bench_function("evloop_wait", |b| {
        b.iter(|| pool.submit(|| black_box(1u64)).unwrap().wait().unwrap())
    });

    let rt = current_thread();
    group.bench_function("evloop_tokio_block_on", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(pool.submit(|| black_box(1u64)).unwrap().await.unwrap());
                }
                started.elapsed()
            })
        })
    });

    group.bench_function("tokio_spawn_blocking", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(
                        tokio::task::spawn_blocking(|| black_box(1u64))
                            .await
                            .unwrap(),
                    );
                }
                started.elapsed()
            })
        })
    });

    group.bench_function("blocking_unblock", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(blocking::unblock(|| black_box(1u64)).await);
                }
                started.elapsed()
            })
        })
    });

    let (tx, rx) = mpsc::channel();
    group.bench_function("rayon_spawn_channel", |b| {
        b.iter(|| {
            let tx = tx.clone();
            rayon::spawn(move || tx.send(black_box(1u64)).unwrap());
            rx.recv().unwrap()
        })
    });
    group.finish();
}

fn in_flight(c: &mut Criterion) {
    let mut group = c.benchmark_group("in_flight_1000");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(JOBS));

    let pool = ThreadPoolExecutor::new();
    group.bench_function("evloop_wait", |b| {
        b.iter(|| {
            let mut window = VecDeque::with_capacity(IN_FLIGHT);
            let mut submitted = 0;
            while submitted < JOBS && window.len() < IN_FLIGHT {
                window.push_back(pool.submit(|| black_box(1u64)).unwrap());
                submitted += 1;
            }
            while let Some(oldest) = window.pop_front() {
                black_box(oldest.wait().unwrap());
                if submitted < JOBS {
                    window.push_back(pool.submit(|| black_box(1u64)).unwrap());
                    submitted += 1;
                }
            }
        })
    });

    let rt = current_thread();
    group.bench_function("evloop_tokio_block_on", |b| {
        b.iter(|| {
            rt.block_on(window(JOBS, IN_FLIGHT, || {
                pool.submit(|| black_box(1u64)).unwrap()
            }))
        })
    });

    group.bench_function("tokio_spawn_blocking", |b| {
        b.iter(|| {
            rt.block_on(window(JOBS, IN_FLIGHT, || {
                tokio::task::spawn_blocking(|| black_box(1u64))
            }))
        })
    });

    group.bench_function("blocking_unblock", |b| {
        b.iter(|| {
            rt.block_on(window(JOBS, IN_FLIGHT, || {
                blocking::unblock(|| black_box(1u64))
            }))
        })
    });

    group.bench_function("rayon_spawn_channel", |b| {
        b.iter(|| {
            let (tx, rx) = mpsc::channel();
            let mut submitted = 0;
            while submitted < JOBS && submitted < IN_FLIGHT as u64 {
                let tx = tx.clone();
                rayon::spawn(move || tx.send(black_box(1u64)).unwrap());
                submitted += 1;
            }
            for _ in 0..JOBS {
                black_box(rx.recv().unwrap());
                if submitted < JOBS {
                    let tx = tx.clone();
                    rayon::spawn(move || tx.send(black_box(1u64)).unwrap());
                    submitted += 1;
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, one_at_a_time, in_flight);
criterion_main!(benches);
