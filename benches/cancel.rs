//! A cancel-heavy workload: 10,000 tasks, each suspended on a future that only its cancellation
//! will end, all cancelled, then all joined. evloop's tasks await a `LoopFuture` (so each cancel
//! travels down to the future, as asyncio's does); tokio's and smol's await a oneshot channel and
//! are aborted / cancelled, their nearest analog. The figure is per task: spawn, first poll,
//! cancel, and the join that observes the cancellation.

use std::future::Future;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use evloop::{EventLoop, LoopExt, create_task};

const TASKS: usize = 10_000;

fn evloop_run<F: Future<Output = ()> + 'static>(lp: &EventLoop, main: F) {
    lp.run_until_complete(main).unwrap();
}

fn cancel_heavy(c: &mut Criterion) {
    let mut g = c.benchmark_group("cancel_10k_tasks_awaiting_a_future");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(TASKS as u64));

    let lp = EventLoop::new().unwrap();
    g.bench_function("evloop", |b| {
        b.iter(|| {
            let inner = lp.clone();
            evloop_run(&lp, async move {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| create_task(inner.create_future::<()>()))
                    .collect();
                evloop::sleep(Duration::ZERO).await; // every task is now suspended
                for task in &tasks {
                    task.cancel();
                }
                for task in tasks {
                    assert!(task.await.unwrap_err().is_cancelled());
                }
            })
        })
    });

    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    g.bench_function("tokio", |b| {
        b.iter(|| {
            tokio.block_on(async {
                let mut senders = Vec::with_capacity(TASKS);
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                        senders.push(tx);
                        tokio::spawn(async move {
                            let _ = rx.await;
                        })
                    })
                    .collect();
                tokio::task::yield_now().await;
                for task in &tasks {
                    task.abort();
                }
                for task in tasks {
                    assert!(task.await.unwrap_err().is_cancelled());
                }
                drop(senders);
            })
        })
    });

    let smol = async_executor::LocalExecutor::new();
    g.bench_function("smol", |b| {
        b.iter(|| {
            futures_lite::future::block_on(smol.run(async {
                let mut senders = Vec::with_capacity(TASKS);
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let (tx, rx) = async_channel::bounded::<()>(1);
                        senders.push(tx);
                        smol.spawn(async move {
                            let _ = rx.recv().await;
                        })
                    })
                    .collect();
                futures_lite::future::yield_now().await;
                for task in tasks {
                    assert!(task.cancel().await.is_none());
                }
                drop(senders);
            }))
        })
    });
    g.finish();
}

criterion_group!(benches, cancel_heavy);
criterion_main!(benches);
