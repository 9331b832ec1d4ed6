//! Tasks side by side: evloop's tasks against tokio's current-thread runtime and smol-rs's
//! `LocalExecutor` (issue 3). Each sample creates 100,000 (or 1,000,000) of something; the
//! figures are per task (or per hop).
//!
//! 1. `spawn_join_100k`: spawn, run and join trivial tasks, in batches of 1,000 (spawn a batch,
//!    then await each) and with all 100,000 outstanding at once.
//! 2. `yield_once_100k`: tasks that each yield once before finishing, all outstanding.
//! 3. `sleep_zero_chain_1m`: one task awaiting `sleep(ZERO)` 1,000,000 times: each hop is one
//!    loop iteration. tokio's `sleep(ZERO)` is not measured: it goes through the timer wheel
//!    and waits for its next 1 ms tick (a million hops would take over a quarter of an hour), so
//!    tokio's `yield_now`, the one-iteration hop, is its analog here.
//!
//! Every runtime is built once and reused across samples, so the figures exclude start-up.

use std::future::Future;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use evloop::{EventLoop, LoopExt};

const TASKS: usize = 100_000;
const BATCH: usize = 1_000;
const HOPS: usize = 1_000_000;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The three runtimes, each able to run a `!Send` future to completion on this thread.
struct Runtimes {
    evloop: EventLoop,
    tokio: tokio::runtime::Runtime,
    smol: async_executor::LocalExecutor<'static>,
}

impl Runtimes {
    fn new() -> Runtimes {
        Runtimes {
            evloop: EventLoop::new().unwrap(),
            tokio: current_thread(),
            smol: async_executor::LocalExecutor::new(),
        }
    }

    fn evloop<F: Future<Output = ()> + 'static>(&self, main: F) {
        self.evloop.run_until_complete(main).unwrap();
    }

    fn tokio<F: Future<Output = ()>>(&self, main: F) {
        self.tokio.block_on(main);
    }

    fn smol<F: Future<Output = ()>>(&self, main: F) {
        futures_lite::future::block_on(self.smol.run(main));
    }
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
    elements: usize,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(elements as u64));
    group
}

fn spawn_join(c: &mut Criterion) {
    let rt = Runtimes::new();
    let smol = &rt.smol;

    let mut g = group(c, "spawn_join_100k_batches_of_1000", TASKS);
    g.bench_function("evloop", |b| {
        b.iter(|| {
            rt.evloop(async {
                let mut batch = Vec::with_capacity(BATCH);
                for _ in 0..TASKS / BATCH {
                    batch.extend((0..BATCH).map(|i| evloop::create_task(async move { i })));
                    for task in batch.drain(..) {
                        black_box(task.await.unwrap());
                    }
                }
            })
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            rt.tokio(async {
                let mut batch = Vec::with_capacity(BATCH);
                for _ in 0..TASKS / BATCH {
                    batch.extend((0..BATCH).map(|i| tokio::spawn(async move { i })));
                    for task in batch.drain(..) {
                        black_box(task.await.unwrap());
                    }
                }
            })
        })
    });
    g.bench_function("smol", |b| {
        b.iter(|| {
            rt.smol(async {
                let mut batch = Vec::with_capacity(BATCH);
                for _ in 0..TASKS / BATCH {
                    batch.extend((0..BATCH).map(|i| smol.spawn(async move { i })));
                    for task in batch.drain(..) {
                        black_box(task.await);
                    }
                }
            })
        })
    });
    g.finish();

    let mut g = group(c, "spawn_join_100k_all_outstanding", TASKS);
    g.bench_function("evloop", |b| {
        b.iter(|| {
            rt.evloop(async {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|i| evloop::create_task(async move { i }))
                    .collect();
                for task in tasks {
                    black_box(task.await.unwrap());
                }
            })
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            rt.tokio(async {
                let tasks: Vec<_> = (0..TASKS).map(|i| tokio::spawn(async move { i })).collect();
                for task in tasks {
                    black_box(task.await.unwrap());
                }
            })
        })
    });
    g.bench_function("smol", |b| {
        b.iter(|| {
            rt.smol(async {
                let tasks: Vec<_> = (0..TASKS).map(|i| smol.spawn(async move { i })).collect();
                for task in tasks {
                    black_box(task.await);
                }
            })
        })
    });
    g.finish();
}

fn yield_once(c: &mut Criterion) {
    let rt = Runtimes::new();
    let smol = &rt.smol;

    let mut g = group(c, "yield_once_100k", TASKS);
    g.bench_function("evloop", |b| {
        b.iter(|| {
            rt.evloop(async {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|i| {
                        evloop::create_task(async move {
                            evloop::yield_now().await;
                            i
                        })
                    })
                    .collect();
                for task in tasks {
                    black_box(task.await.unwrap());
                }
            })
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            rt.tokio(async {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|i| {
                        tokio::spawn(async move {
                            tokio::task::yield_now().await;
                            i
                        })
                    })
                    .collect();
                for task in tasks {
                    black_box(task.await.unwrap());
                }
            })
        })
    });
    g.bench_function("smol", |b| {
        b.iter(|| {
            rt.smol(async {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|i| {
                        smol.spawn(async move {
                            futures_lite::future::yield_now().await;
                            i
                        })
                    })
                    .collect();
                for task in tasks {
                    black_box(task.await);
                }
            })
        })
    });
    g.finish();
}

fn sleep_zero_chain(c: &mut Criterion) {
    let rt = Runtimes::new();

    let mut g = group(c, "sleep_zero_chain_1m", HOPS);
    g.bench_function("evloop_sleep_zero", |b| {
        b.iter(|| {
            rt.evloop(async {
                for _ in 0..HOPS {
                    evloop::sleep(Duration::ZERO).await;
                }
            })
        })
    });
    g.bench_function("evloop_yield_now", |b| {
        b.iter(|| {
            rt.evloop(async {
                for _ in 0..HOPS {
                    evloop::yield_now().await;
                }
            })
        })
    });
    g.bench_function("tokio_yield_now", |b| {
        b.iter(|| {
            rt.tokio(async {
                for _ in 0..HOPS {
                    tokio::task::yield_now().await;
                }
            })
        })
    });
    g.bench_function("smol_yield_now", |b| {
        b.iter(|| {
            rt.smol(async {
                for _ in 0..HOPS {
                    futures_lite::future::yield_now().await;
                }
            })
        })
    });
    g.finish();
}

criterion_group!(benches, spawn_join, yield_once, sleep_zero_chain);
criterion_main!(benches);
