//! `queue_stream`: a producer task puts `n` numbers into a queue of capacity 128 and the main
//! task gets them (ns per item), for evloop's `Queue`, tokio's `mpsc` and async-channel. Shared
//! with `#[path]` by the sync bench and the `measure` workloads, so both run the same code.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::time::{Duration, Instant};

use evloop::create_task;
use evloop::queue::Queue;

/// The queue's capacity.
const STREAM_CAPACITY: usize = 128;

/// evloop's `Queue`, the producer a task on the running loop.
pub(crate) async fn evloop_stream(n: u64) -> Duration {
    let queue = Queue::new(STREAM_CAPACITY);
    let start = Instant::now();
    let producer = create_task({
        let queue = queue.clone();
        async move {
            for i in 0..n {
                queue.put(i).await.unwrap();
            }
        }
    });
    for _ in 0..n {
        black_box(queue.get().await.unwrap());
    }
    producer.await.unwrap();
    start.elapsed()
}

/// tokio's bounded `mpsc`, the producer a spawned task.
pub(crate) async fn tokio_stream(n: u64) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::channel(STREAM_CAPACITY);
    let start = Instant::now();
    let producer = tokio::spawn(async move {
        for i in 0..n {
            tx.send(i).await.unwrap();
        }
    });
    for _ in 0..n {
        black_box(rx.recv().await.unwrap());
    }
    producer.await.unwrap();
    start.elapsed()
}

/// async-channel's bounded channel, with the producer spawned by `spawn` (on evloop's loop in
/// the sync bench, on smol's executor in the `measure` workloads).
pub(crate) async fn channel_stream<J: Future>(
    n: u64,
    spawn: impl FnOnce(Pin<Box<dyn Future<Output = ()>>>) -> J,
) -> Duration {
    let (tx, rx) = async_channel::bounded(STREAM_CAPACITY);
    let start = Instant::now();
    let producer = spawn(Box::pin(async move {
        for i in 0..n {
            tx.send(i).await.unwrap();
        }
    }));
    for _ in 0..n {
        black_box(rx.recv().await.unwrap());
    }
    black_box(producer.await);
    start.elapsed()
}
