//! asyncio's queues: Queue, LifoQueue and PriorityQueue with task_done/join and 3.13's
//! shutdown, their cancellation rules (checked against CPython 3.13 with the same steps), and
//! putting from other threads.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use evloop::queue::{
    GetNowaitError, LifoQueue, PriorityQueue, PutNowaitError, Queue, QueueEmpty, QueueFull,
    QueueShutDown,
};
use evloop::sync::ValueError;
use evloop::{Task, create_task, sleep, timeout, yield_now};
use evloop_test_support::{Rng, ms, record_running_reports, settle, vrun_within};

/// Every test's main gets a virtual day: a deadlock fails the test instead of hanging it.
const DAY: Duration = Duration::from_secs(86_400);

/// Spawns a task that gets one item and logs it under `name`.
fn getter(queue: &Queue<u32>, log: &Log, name: &'static str) -> Task<()> {
    let (queue, log) = (queue.clone(), log.clone());
    create_task(async move {
        let item = queue.get().await;
        log.borrow_mut().push(format!("{name} {item:?}"));
    })
}

type Log = Rc<RefCell<Vec<String>>>;

/// Getters "a" then "b" wait on an empty queue; then one item is put, which wakes a.
async fn a_woken_b_waiting() -> (Queue<u32>, Log, Task<()>, Task<()>) {
    let queue = Queue::new(0);
    let log = Log::default();
    let (a, b) = (getter(&queue, &log, "a"), getter(&queue, &log, "b"));
    settle().await;
    queue.put_nowait(1).unwrap();
    (queue, log, a, b)
}

#[test]
fn the_three_orders_and_the_size_queries() {
    let fifo = Queue::new(0);
    let lifo = LifoQueue::new(0);
    let priority = PriorityQueue::new(0);
    for n in [3, 1, 2] {
        fifo.put_nowait(n).unwrap();
        lifo.put_nowait(n).unwrap();
        priority.put_nowait(n).unwrap();
    }
    let drain = |get: &dyn Fn() -> Result<i32, GetNowaitError>| {
        std::iter::from_fn(|| get().ok()).collect::<Vec<_>>()
    };
    assert_eq!(drain(&|| fifo.get_nowait()), [3, 1, 2]);
    assert_eq!(drain(&|| lifo.get_nowait()), [2, 1, 3]);
    assert_eq!(drain(&|| priority.get_nowait()), [1, 2, 3]);

    let bounded = Queue::new(2);
    assert_eq!(bounded.maxsize(), 2);
    assert!(bounded.empty() && !bounded.full());
    bounded.put_nowait("a").unwrap();
    bounded.put_nowait("b").unwrap();
    assert!(bounded.full());
    assert_eq!(bounded.qsize(), 2);
    assert_eq!(
        bounded.put_nowait("c"),
        Err(PutNowaitError::Full(QueueFull("c")))
    );
    assert_eq!(bounded.put_nowait("c").unwrap_err().into_inner(), "c");
    assert_eq!(bounded.get_nowait(), Ok("a"));
    assert_eq!(bounded.get_nowait(), Ok("b"));
    assert_eq!(bounded.get_nowait(), Err(GetNowaitError::Empty(QueueEmpty)));
    // Unbounded: never full.
    let unbounded = Queue::new(0);
    for n in 0..10_000 {
        unbounded.put_nowait(n).unwrap();
    }
    assert!(!unbounded.full());
}

#[test]
fn error_names_are_asyncios() {
    assert_eq!(QueueEmpty.to_string(), "QueueEmpty");
    assert_eq!(QueueFull(1).to_string(), "QueueFull");
    assert_eq!(QueueShutDown(()).to_string(), "QueueShutDown");
    assert_eq!(
        GetNowaitError::ShutDown(QueueShutDown(())).to_string(),
        "QueueShutDown"
    );
    assert_eq!(PutNowaitError::Full(QueueFull(1)).to_string(), "QueueFull");
}

#[test]
fn puts_wait_while_full_and_gets_while_empty_in_arrival_order() {
    vrun_within(DAY, async {
        let queue: Queue<u32> = Queue::new(1);
        let log = Rc::new(RefCell::new(Vec::new()));
        queue.put_nowait(0).unwrap();
        let putters: Vec<_> = (1..=3)
            .map(|n| {
                let (queue, log) = (queue.clone(), log.clone());
                create_task(async move {
                    queue.put(n).await.unwrap();
                    log.borrow_mut().push(format!("put {n}"));
                })
            })
            .collect();
        settle().await;
        assert!(log.borrow().is_empty());
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(queue.get().await.unwrap());
        }
        assert_eq!(got, [0, 1, 2, 3]);
        for putter in putters {
            putter.await.unwrap();
        }
        assert_eq!(*log.borrow(), ["put 1", "put 2", "put 3"]);

        let getters: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| getter(&queue, &log, name))
            .collect();
        settle().await;
        queue.put_nowait(10).unwrap();
        // Still full until a has run: put_nowait refuses, put waits for a.
        assert_eq!(queue.put_nowait(11).unwrap_err().into_inner(), 11);
        queue.put(11).await.unwrap();
        for getter in getters {
            getter.await.unwrap();
        }
        assert_eq!(log.borrow()[3..], ["a Ok(10)", "b Ok(11)"]);
    })
    .unwrap();
}

#[test]
fn join_waits_for_a_task_done_per_item() {
    vrun_within(DAY, async {
        let queue = Queue::new(0);
        queue.join().await; // nothing put: at once
        for n in 0..3 {
            queue.put_nowait(n).unwrap();
        }
        let joined = Rc::new(Cell::new(false));
        let joiner = create_task({
            let (queue, joined) = (queue.clone(), joined.clone());
            async move {
                queue.join().await;
                joined.set(true);
            }
        });
        for _ in 0..3 {
            queue.get().await.unwrap();
            settle().await;
            assert!(!joined.get(), "gotten is not done");
        }
        queue.task_done().unwrap();
        queue.task_done().unwrap();
        settle().await;
        assert!(!joined.get());
        queue.task_done().unwrap();
        joiner.await.unwrap();
        assert!(joined.get());
        assert_eq!(queue.task_done(), Err(ValueError::TaskDoneTooManyTimes));
        // A join that times out leaves nothing behind.
        queue.put_nowait(9).unwrap();
        assert!(timeout(ms(5), queue.join()).await.is_err());
        queue.get_nowait().unwrap();
        queue.task_done().unwrap();
        queue.join().await;
    })
    .unwrap();
}

#[test]
fn shutdown_lets_gets_drain_then_fails_every_waiter() {
    vrun_within(DAY, async {
        let queue: Queue<u32> = Queue::new(1);
        queue.put_nowait(1).unwrap();
        let putter = create_task({
            let queue = queue.clone();
            async move { queue.put(2).await }
        });
        settle().await;
        queue.shutdown(false);
        // The waiting putter wakes to QueueShutDown and gets its item back.
        assert_eq!(putter.await.unwrap(), Err(QueueShutDown(2)));
        assert_eq!(
            queue.put_nowait(3),
            Err(PutNowaitError::ShutDown(QueueShutDown(3)))
        );
        assert_eq!(queue.put(4).await, Err(QueueShutDown(4)));
        // Items put before the shutdown still come out; then gets fail.
        assert_eq!(queue.get().await, Ok(1));
        assert_eq!(queue.get().await, Err(QueueShutDown(())));
        assert_eq!(
            queue.get_nowait(),
            Err(GetNowaitError::ShutDown(QueueShutDown(())))
        );

        // Waiting getters wake to the error.
        let empty: Queue<u32> = Queue::new(0);
        let log = Rc::new(RefCell::new(Vec::new()));
        let getters: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| getter(&empty, &log, name))
            .collect();
        settle().await;
        empty.shutdown(false);
        for getter in getters {
            getter.await.unwrap();
        }
        assert_eq!(
            *log.borrow(),
            ["a Err(QueueShutDown(..))", "b Err(QueueShutDown(..))"]
        );
    })
    .unwrap();
}

/// Counts its drops: shows which items a queue dropped.
struct Counted(Rc<Cell<u32>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn an_immediate_shutdown_drops_the_items_marks_them_done_and_fails_gets_at_once() {
    vrun_within(DAY, async {
        let dropped = Rc::new(Cell::new(0));
        let queue = Queue::new(0);
        for _ in 0..3 {
            queue.put_nowait(Counted(dropped.clone())).unwrap();
        }
        let taken = queue.get_nowait().unwrap(); // taken, not done: join still waits for it
        let joiner = create_task({
            let queue = queue.clone();
            async move { queue.join().await }
        });
        settle().await;
        queue.shutdown(true);
        assert_eq!(dropped.get(), 2, "the two items left were dropped");
        assert!(queue.empty());
        assert!(queue.get().await.is_err());
        settle().await;
        assert!(!joiner.done(), "the taken item is not done yet");
        drop(taken);
        queue.task_done().unwrap();
        joiner.await.unwrap();
        assert_eq!(queue.task_done(), Err(ValueError::TaskDoneTooManyTimes));
    })
    .unwrap();
}

#[test]
fn a_getter_cancelled_after_it_was_woken_loses_no_item_and_passes_the_wake_up_on() {
    vrun_within(DAY, async {
        let (queue, log, a, b) = a_woken_b_waiting().await;
        a.cancel(); // cancelled before it runs
        assert!(a.await.unwrap_err().is_cancelled());
        b.await.unwrap();
        assert_eq!(*log.borrow(), ["b Ok(1)"]);
        assert_eq!(queue.qsize(), 0);
    })
    .unwrap();
}

#[test]
fn a_get_that_times_out_takes_nothing() {
    vrun_within(DAY, async {
        let queue = Queue::new(0);
        assert!(timeout(ms(10), queue.get()).await.is_err());
        queue.put_nowait(7).unwrap();
        assert_eq!(queue.qsize(), 1);
        assert_eq!(
            format!("{queue:?}"),
            "Queue { maxsize: 0, qsize: 1, getters: 0, putters: 0, unfinished_tasks: 1, \
             shut_down: false }"
        );
        assert_eq!(timeout(ms(10), queue.get()).await, Ok(Ok(7)));
    })
    .unwrap();
}

#[test]
fn a_cancelled_put_inserts_nothing_and_a_woken_one_passes_the_slot_on() {
    vrun_within(DAY, async {
        let queue = Queue::new(1);
        queue.put_nowait(0).unwrap();
        // Cancelled (timed out) while waiting: nothing inserted.
        assert!(timeout(ms(10), queue.put(99)).await.is_err());
        assert_eq!(queue.qsize(), 1);
        let putter = |n: u32| {
            let queue = queue.clone();
            create_task(async move { queue.put(n).await.unwrap() })
        };
        let (a, b) = (putter(1), putter(2));
        settle().await;
        assert_eq!(queue.get_nowait(), Ok(0)); // a slot frees: wakes a ...
        a.cancel(); // ... which is cancelled before it runs: b gets the slot
        assert!(a.await.unwrap_err().is_cancelled());
        b.await.unwrap();
        assert_eq!(queue.get_nowait(), Ok(2));
        assert!(queue.empty());
    })
    .unwrap();
}

#[test]
fn a_woken_getter_that_lost_the_item_waits_again_at_the_back() {
    // CPython 3.13: the getter re-appends itself, so the next item goes to the other getter.
    vrun_within(DAY, async {
        let (queue, log, a, b) = a_woken_b_waiting().await;
        assert_eq!(queue.get_nowait(), Ok(1)); // we take the item before a runs
        settle().await;
        queue.put_nowait(2).unwrap();
        b.await.unwrap();
        assert_eq!(*log.borrow(), ["b Ok(2)"]);
        assert!(!a.done());
        a.abort();
    })
    .unwrap();
}

/// A consumer for the million-item test: marks each item it gets, until the queue shuts down.
fn consumer(
    queue: &Queue<usize>,
    seen: &Rc<RefCell<Vec<u8>>>,
    abandoned: &Rc<Cell<u64>>,
    seed: u64,
) -> Task<()> {
    let (queue, seen, abandoned) = (queue.clone(), seen.clone(), abandoned.clone());
    let mut rng = Rng::new(seed);
    create_task(async move {
        loop {
            let got = if rng.below(8) == 0 {
                // A get abandoned if nothing is there: it must take no item with it.
                match timeout(Duration::ZERO, queue.get()).await {
                    Ok(got) => got,
                    Err(_) => {
                        abandoned.set(abandoned.get() + 1);
                        continue;
                    }
                }
            } else {
                queue.get().await
            };
            let Ok(item) = got else { return };
            seen.borrow_mut()[item] += 1;
            queue.task_done().unwrap();
            if rng.below(4) == 0 {
                yield_now().await;
            }
        }
    })
}

#[test]
fn a_million_items_through_a_bounded_queue_with_random_cancellation_lose_and_duplicate_nothing() {
    const ITEMS: usize = 1_000_000;
    const PRODUCERS: usize = 4;
    const CONSUMERS: usize = 4;
    let (seen, gets_abandoned, puts_abandoned, consumers_cancelled) = vrun_within(DAY, async {
        let queue = Queue::new(64);
        let seen = Rc::new(RefCell::new(vec![0u8; ITEMS]));
        let (gets_abandoned, puts_abandoned) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let consumers_cancelled = Rc::new(Cell::new(0));
        let mut rng = Rng::new(42);
        // Every consumer ever started (to await at the end); the first CONSUMERS are live.
        let consumers: Rc<RefCell<Vec<Task<()>>>> = Rc::new(RefCell::new(
            (0..CONSUMERS)
                .map(|_| consumer(&queue, &seen, &gets_abandoned, rng.next_u64()))
                .collect(),
        ));
        let live: Rc<RefCell<Vec<usize>>> = Rc::new(RefCell::new((0..CONSUMERS).collect()));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (queue, seen, puts_abandoned) =
                    (queue.clone(), seen.clone(), puts_abandoned.clone());
                let (gets_abandoned, consumers_cancelled) =
                    (gets_abandoned.clone(), consumers_cancelled.clone());
                let (consumers, live) = (consumers.clone(), live.clone());
                let mut rng = Rng::new(rng.next_u64());
                create_task(async move {
                    for item in (p..ITEMS).step_by(PRODUCERS) {
                        match rng.below(64) {
                            // Abandoned at once if the queue is full, then put for good: a
                            // cancelled put must insert nothing, or the item arrives twice.
                            0 => {
                                if timeout(Duration::ZERO, queue.put(item)).await.is_err() {
                                    puts_abandoned.set(puts_abandoned.get() + 1);
                                    queue.put(item).await.unwrap();
                                }
                            }
                            // Wait for room with a deadline, retrying after each timeout.
                            1..=7 => loop {
                                match timeout(ms(1), queue.put(item)).await {
                                    Ok(result) => break result.unwrap(),
                                    Err(_) => puts_abandoned.set(puts_abandoned.get() + 1),
                                }
                            },
                            _ => queue.put(item).await.unwrap(),
                        }
                        // Phases: producers that flood the queue (it fills; puts wait), then
                        // producers that trickle (it empties; gets wait).
                        if (item / 50_000) % 2 == 1 {
                            yield_now().await;
                        }
                        if rng.below(256) == 0 {
                            // The put may just have woken this consumer: cancel it before it
                            // runs (its wake-up must pass on, the item stay), and replace it.
                            let slot = rng.below(CONSUMERS as u64) as usize;
                            let index = live.borrow()[slot];
                            if consumers.borrow()[index].cancel() {
                                consumers_cancelled.set(consumers_cancelled.get() + 1);
                            }
                            let fresh = consumer(&queue, &seen, &gets_abandoned, rng.next_u64());
                            let mut all = consumers.borrow_mut();
                            live.borrow_mut()[slot] = all.len();
                            all.push(fresh);
                        }
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.await.unwrap();
        }
        queue.join().await;
        queue.shutdown(false);
        let consumers = consumers.take();
        for task in consumers {
            match task.await {
                Ok(()) => {}
                Err(error) => assert!(error.is_cancelled(), "a consumer failed: {error}"),
            }
        }
        (
            seen.take(),
            gets_abandoned.get(),
            puts_abandoned.get(),
            consumers_cancelled.get(),
        )
    })
    .unwrap();
    let wrong: Vec<_> = seen
        .iter()
        .enumerate()
        .filter(|(_, count)| **count != 1)
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "items not seen exactly once: {wrong:?}");
    assert!(gets_abandoned > 10_000, "{gets_abandoned} gets abandoned");
    assert!(puts_abandoned > 1000, "{puts_abandoned} puts abandoned");
    assert!(
        consumers_cancelled > 1000,
        "{consumers_cancelled} consumers cancelled"
    );
}

#[test]
fn other_threads_put_in_order_and_the_bound_holds() {
    const THREADS: u32 = 4;
    const EACH: u32 = 5_000;
    // The real clock: a virtual one could jump ahead while the threads are still putting.
    let outcome = evloop::run(async {
        let queue = Queue::new(8);
        let remote = queue.remote();
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let remote = remote.clone();
                std::thread::spawn(move || {
                    for n in 0..EACH {
                        remote.put((t, n)).unwrap();
                    }
                })
            })
            .collect();
        drop(remote);
        let mut next = vec![0; THREADS as usize];
        for _ in 0..THREADS * EACH {
            assert!(queue.qsize() <= 8);
            let (t, n) = queue.get().await.unwrap();
            assert_eq!(n, next[t as usize], "thread {t}'s items arrive in order");
            next[t as usize] += 1;
        }
        for thread in threads {
            thread.join().unwrap();
        }
        // Every handle is gone: the forwarding task has ended.
        settle().await;
        let forwarders = evloop::all_tasks()
            .iter()
            .filter(|task| task.name() == "RemoteQueue forwarder")
            .count();
        (next, forwarders)
    });
    let (next, forwarders) = outcome.unwrap();
    assert_eq!(next, vec![EACH; THREADS as usize]);
    assert_eq!(forwarders, 0);
}

#[test]
fn a_remote_put_after_shutdown_hands_the_item_back() {
    evloop::run(async {
        let reports = record_running_reports();
        let queue: Queue<u32> = Queue::new(1);
        let remote = queue.remote();
        // Fill the queue, then one more waits in the inbox when the queue is shut down.
        let sender = remote.clone();
        std::thread::spawn(move || {
            sender.put(1).unwrap();
            sender.put(2).unwrap();
        })
        .join()
        .unwrap();
        while queue.qsize() == 0 {
            yield_now().await;
        }
        settle().await;
        queue.shutdown(true);
        while remote.put(3).is_ok() {
            yield_now().await;
        }
        assert_eq!(remote.put(4), Err(QueueShutDown(4)));
        assert_eq!(reports.borrow().len(), 1);
        let report = reports.borrow()[0].clone();
        assert!(
            report
                .message
                .starts_with("RemoteQueue: the queue was shut down"),
            "{report:?}"
        );
        assert_eq!(report.exception.as_deref(), Some("QueueShutDown"));
    })
    .unwrap();
}

/// Leaks on purpose (a run that fails makes `vrun_within` forget its runner), so `cargo xtask
/// asan` excludes it by name from the LeakSanitizer run.
#[test]
fn a_queue_is_bound_to_the_loop_it_was_first_waited_on() {
    let queue: Queue<u32> = Queue::new(0);
    let first = queue.clone();
    vrun_within(DAY, async move {
        timeout(ms(1), first.get()).await.unwrap_err()
    })
    .unwrap();
    let outcome = vrun_within(DAY, async move {
        timeout(ms(1), queue.get()).await.unwrap_err()
    });
    let error = outcome.unwrap_err().to_string();
    assert!(
        error.contains("Queue is bound to a different event loop"),
        "{error}"
    );
}

#[test]
fn sleeping_consumers_see_every_item_once() {
    // The docs' worker pattern with sleeps on the virtual clock: get, sleep, task_done.
    vrun_within(DAY, async {
        let queue = Queue::new(0);
        for n in 0..30u64 {
            queue.put_nowait(n).unwrap();
        }
        let done = Rc::new(RefCell::new(Vec::new()));
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let (queue, done) = (queue.clone(), done.clone());
                create_task(async move {
                    while let Ok(n) = queue.get().await {
                        sleep(ms(n % 7)).await;
                        done.borrow_mut().push(n);
                        queue.task_done().unwrap();
                    }
                })
            })
            .collect();
        queue.join().await;
        for worker in workers {
            worker.abort();
        }
        let mut done = done.take();
        done.sort();
        assert_eq!(done, (0..30).collect::<Vec<_>>());
    })
    .unwrap();
}
