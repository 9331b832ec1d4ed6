//! Executors awaited from an event loop: evloop's `run_in_executor` / `to_thread` on its own
//! loop, against tokio's `spawn_blocking` on a current-thread runtime and smol-rs's
//! `blocking::unblock` (awaited on the evloop loop, so only the pool differs).
//!
//! 1. `executor_one_at_a_time`: submit one trivial job and await it before the next (latency,
//!    µs/job). The floor, measured in the same run, is a raw cross-thread ping-pong over std
//!    channels with no pool and no loop: one blocking wake each way
//!    (`floor_thread_ping_pong`), and one blocking wake with the echo thread kept awake by
//!    yielding, as an idle pool worker is for a while (`floor_one_blocking_wake`).
//! 2. `executor_in_flight_1000`: tiny jobs with 1,000 in flight (throughput, jobs/s). Each
//!    sample runs `JOBS` jobs; with 10 samples each peer runs 1,000,000 jobs in all.
//!
//! `cargo bench -p evloop-benches --bench executor`

#[path = "window.rs"]
mod window;

use std::future::Future;
use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use evloop::{EventLoop, ExecutorExt, LoopExt};
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

/// Runs `iters` jobs one at a time on `lp` and returns the time they took.
fn on_loop<F, Fut>(lp: &EventLoop, iters: u64, mut job: F) -> Duration
where
    F: FnMut() -> Fut + 'static,
    Fut: Future,
{
    lp.run_until_complete(async move {
        let started = Instant::now();
        for _ in 0..iters {
            black_box(job().await);
        }
        started.elapsed()
    })
    .expect("the loop runs")
}

fn one_at_a_time(c: &mut Criterion) {
    let mut group = c.benchmark_group("executor_one_at_a_time");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));

    let lp = EventLoop::new().expect("a loop");
    group.bench_function("evloop_run_in_executor", |b| {
        b.iter_custom(|iters| {
            let on = lp.clone();
            on_loop(&lp, iters, move || {
                on.run_in_executor(None, || black_box(1u64)).expect("open")
            })
        })
    });

    group.bench_function("evloop_to_thread", |b| {
        b.iter_custom(|iters| on_loop(&lp, iters, || evloop::to_thread(|| black_box(1u64))))
    });

    group.bench_function("blocking_unblock_on_evloop", |b| {
        b.iter_custom(|iters| on_loop(&lp, iters, || blocking::unblock(|| black_box(1u64))))
    });

    let rt = current_thread();
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

    // The floor: a thread that answers each ping, one blocking wake each way.
    let (ping_tx, ping_rx) = mpsc::channel::<u64>();
    let (pong_tx, pong_rx) = mpsc::channel::<u64>();
    let echo = std::thread::spawn(move || {
        while let Ok(n) = ping_rx.recv() {
            if pong_tx.send(black_box(n)).is_err() {
                break;
            }
        }
    });
    group.bench_function("floor_thread_ping_pong", |b| {
        b.iter(|| {
            ping_tx.send(1).unwrap();
            pong_rx.recv().unwrap()
        })
    });
    drop(ping_tx);
    echo.join().unwrap();

    // The floor with the other side awake, as a pool worker is between jobs (it yields a few
    // rounds before it sleeps): one blocking wake, on the way back.
    let (ping_tx, ping_rx) = mpsc::channel::<u64>();
    let (pong_tx, pong_rx) = mpsc::channel::<u64>();
    let echo = std::thread::spawn(move || {
        loop {
            match ping_rx.try_recv() {
                Ok(n) => {
                    if pong_tx.send(black_box(n)).is_err() {
                        break;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
                Err(mpsc::TryRecvError::Disconnected) => break,
            }
        }
    });
    group.bench_function("floor_one_blocking_wake", |b| {
        b.iter(|| {
            ping_tx.send(1).unwrap();
            pong_rx.recv().unwrap()
        })
    });
    drop(ping_tx);
    echo.join().unwrap();
    group.finish();
    lp.close().unwrap();
}

fn in_flight(c: &mut Criterion) {
    let mut group = c.benchmark_group("executor_in_flight_1000");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(JOBS));

    let lp = EventLoop::new().expect("a loop");
    group.bench_function("evloop_run_in_executor", |b| {
        b.iter(|| {
            let on = lp.clone();
            lp.run_until_complete(window(JOBS, IN_FLIGHT, move || {
                on.run_in_executor(None, || black_box(1u64)).expect("open")
            }))
            .expect("the loop runs")
        })
    });

    group.bench_function("blocking_unblock_on_evloop", |b| {
        b.iter(|| {
            lp.run_until_complete(window(JOBS, IN_FLIGHT, || {
                blocking::unblock(|| black_box(1u64))
            }))
            .expect("the loop runs")
        })
    });

    let rt = current_thread();
    group.bench_function("tokio_spawn_blocking", |b| {
        b.iter(|| {
            rt.block_on(window(JOBS, IN_FLIGHT, || {
                tokio::task::spawn_blocking(|| black_box(1u64))
            }))
        })
    });
    group.finish();
    lp.close().unwrap();
}

criterion_group!(benches, one_at_a_time, in_flight);
criterion_main!(benches);
