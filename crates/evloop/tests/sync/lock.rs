//! Lock: FIFO hand-over, cancellation before and after the wake-up, timeouts, and a thousand contenders with random cancellation.

use super::*;

/// Spawns a task that takes `lock`, logs `name`, and holds the lock for `hold`.
fn locker(lock: &Lock, log: &Log, name: &'static str, hold: Duration) -> Task<()> {
    let (lock, log) = (lock.clone(), log.clone());
    create_task(async move {
        let _guard = lock.acquire().await;
        log.borrow_mut().push(name.to_owned());
        sleep(hold).await;
    })
}

#[test]
fn lock_waiters_get_it_in_arrival_order_and_no_newcomer_jumps_the_hand_over() {
    vrun_within(DAY, async {
        let lock = Lock::new();
        let log = Log::default();
        let guard = lock.acquire().await;
        let tasks: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|name| locker(&lock, &log, name, ms(1)))
            .collect();
        settle().await;
        assert_eq!(format!("{lock:?}"), "Lock { locked: true, waiters: 3 }");
        drop(guard);
        // asyncio: free while "a" is on its way, yet a newcomer must wait its turn.
        assert!(!lock.locked());
        assert!(timeout(Duration::ZERO, lock.acquire()).await.is_err());
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*log.borrow(), ["a", "b", "c"]);
        assert!(!lock.locked());
    })
    .unwrap();
}

#[test]
fn a_lock_waiter_cancelled_after_it_was_woken_passes_the_lock_on() {
    vrun_within(DAY, async {
        let lock = Lock::new();
        let log = Log::default();
        let guard = lock.acquire().await;
        let (a, b) = a_and_b(|name| locker(&lock, &log, name, Duration::ZERO)).await;
        drop(guard); // wakes a ...
        a.cancel(); // ... which is cancelled before it runs
        assert!(a.await.unwrap_err().is_cancelled());
        b.await.unwrap();
        assert_eq!(*log.borrow(), ["b"]);
        assert!(!lock.locked());
    })
    .unwrap();
}

#[test]
fn a_lock_waiter_cancelled_before_its_turn_leaves_the_queue() {
    vrun_within(DAY, async {
        let lock = Lock::new();
        let log = Log::default();
        let guard = lock.acquire().await;
        let (a, b) = a_and_b(|name| locker(&lock, &log, name, Duration::ZERO)).await;
        a.cancel();
        settle().await;
        assert_eq!(format!("{lock:?}"), "Lock { locked: true, waiters: 1 }");
        drop(guard);
        b.await.unwrap();
        assert!(a.await.unwrap_err().is_cancelled());
        assert_eq!(*log.borrow(), ["b"]);
    })
    .unwrap();
}

#[test]
fn a_lock_acquire_times_out_and_the_lock_still_works() {
    vrun_within(DAY, async {
        let lock = Lock::new();
        let log = Log::default();
        let holder = locker(&lock, &log, "holder", ms(100));
        settle().await;
        assert!(timeout(ms(10), lock.acquire()).await.is_err());
        assert_eq!(format!("{lock:?}"), "Lock { locked: true, waiters: 0 }");
        let _guard = timeout(ms(200), lock.acquire()).await.unwrap();
        holder.await.unwrap();
    })
    .unwrap();
}

/// Counts the tasks inside the critical section; panics if a second one enters.
struct Inside(Rc<Cell<u32>>);

impl Inside {
    fn enter(count: &Rc<Cell<u32>>) -> Inside {
        assert_eq!(count.get(), 0, "the lock is held twice");
        count.set(1);
        Inside(count.clone())
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        self.0.set(0);
    }
}

#[test]
fn a_thousand_tasks_with_random_cancellation_never_deadlock_nor_share_the_lock() {
    const TASKS: usize = 1000;
    let (entries, cancelled, woken_then_cancelled) = vrun_within(DAY, async {
        let lock = Lock::new();
        let inside = Rc::new(Cell::new(0));
        let entries = Rc::new(Cell::new(0u64));
        let woken_then_cancelled = Rc::new(Cell::new(0u64));
        // Who waits for the lock, in arrival order: the front is the waiter a release wakes.
        let queue: Rc<RefCell<std::collections::VecDeque<usize>>> = Rc::default();
        let handles: Rc<RefCell<Vec<AnyTask>>> = Rc::default();
        let mut rng = Rng::new(0x5eed);
        let tasks: Vec<_> = (0..TASKS)
            .map(|me| {
                let (lock, inside, entries) = (lock.clone(), inside.clone(), entries.clone());
                let (queue, handles) = (queue.clone(), handles.clone());
                let woken_then_cancelled = woken_then_cancelled.clone();
                let mut rng = Rng::new(rng.next_u64());
                create_task(async move {
                    for _ in 0..5 {
                        queue.borrow_mut().push_back(me);
                        let _leave = Leave(queue.clone(), me);
                        // Three ways to wait: plain (cancelled by dropping the task), with a
                        // timeout, and inside catch_cancel (the task refuses the cancel).
                        let guard = match rng.below(3) {
                            0 => lock.acquire().await,
                            1 => match timeout(ms(rng.below(40)), lock.acquire()).await {
                                Ok(guard) => guard,
                                Err(_) => continue,
                            },
                            _ => match catch_cancel(lock.acquire()).await {
                                Ok(guard) => guard,
                                Err(_) => continue,
                            },
                        };
                        drop(_leave);
                        // Dropped before the guard: a cancelled holder leaves, then releases.
                        let _inside = Inside::enter(&inside);
                        entries.set(entries.get() + 1);
                        sleep(ms(rng.below(3))).await;
                        drop(_inside);
                        drop(guard); // wakes the front waiter ...
                        if rng.below(2) == 0 {
                            // ... which is cancelled before it runs, half of the time.
                            let next = queue.borrow().front().copied();
                            if let Some(next) = next {
                                if handles.borrow()[next].cancel() {
                                    woken_then_cancelled.set(woken_then_cancelled.get() + 1);
                                }
                            }
                        }
                        sleep(ms(rng.below(4))).await;
                    }
                })
            })
            .collect();
        handles
            .borrow_mut()
            .extend(tasks.iter().map(|task| task.any()));
        // And cancel tasks at random points: waiting, holding, or between turns.
        for _ in 0..1500 {
            match rng.below(4) {
                0 => yield_now().await,
                n => sleep(ms(n)).await,
            }
            tasks[rng.below(TASKS as u64) as usize].cancel();
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await);
        }
        assert!(!lock.locked());
        assert_eq!(format!("{lock:?}"), "Lock { locked: false, waiters: 0 }");
        let mut cancelled = 0;
        for outcome in outcomes {
            match outcome {
                Ok(()) => {}
                Err(error) if error.is_cancelled() => cancelled += 1,
                Err(error) => panic!("a task failed: {error}"),
            }
        }
        (entries.get(), cancelled, woken_then_cancelled.get())
    })
    .unwrap();
    assert!(entries > 1000, "{entries} entries");
    assert!(cancelled > 100, "{cancelled} tasks cancelled");
    assert!(
        woken_then_cancelled > 50,
        "{woken_then_cancelled} woken, then cancelled"
    );
}

/// Takes a task off the list of lock waiters when it stops waiting, however that happens.
struct Leave(Rc<RefCell<std::collections::VecDeque<usize>>>, usize);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.borrow_mut().retain(|&n| n != self.1);
    }
}
