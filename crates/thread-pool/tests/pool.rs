//! The executor's behaviour: Python's `ThreadPoolExecutor` contracts (D1-D7 of the contracts
//! document). Tests that count OS threads run in a child process of their own (`isolated`) and
//! count only threads named with their own prefix.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use evloop_test_support::procfs::{cpu_ticks_of_threads_named, thread_count, thread_names};
use evloop_test_support::{block_on, eventually, isolated, threads_named};
use evloop_thread_pool::future::{JobState, as_completed};
use evloop_thread_pool::{BuildError, JobError, ThreadPoolExecutor, default_max_workers};

const LONG: Duration = Duration::from_secs(30);

#[test]
fn default_worker_count_is_pythons_formula() {
    let expected = (evloop_thread_pool::process_cpu_count() + 4).min(32);
    assert_eq!(default_max_workers(), expected);
    assert_eq!(ThreadPoolExecutor::new().max_workers(), expected);
}

#[test]
fn zero_workers_is_rejected_with_pythons_text() {
    let err = ThreadPoolExecutor::builder()
        .max_workers(0)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroWorkers);
    assert_eq!(err.to_string(), "max_workers must be greater than 0");
}

#[test]
fn threads_are_named_prefix_n() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(3)
        .thread_name_prefix("tnm")
        .build()
        .unwrap();
    let barrier = Arc::new(Barrier::new(3));
    let futures: Vec<_> = (0..3)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            pool.submit(move || {
                barrier.wait();
                thread::current().name().unwrap().to_owned()
            })
            .unwrap()
        })
        .collect();
    let names: HashSet<String> = futures.into_iter().map(|f| f.wait().unwrap()).collect();
    let expected: HashSet<String> = ["tnm_0", "tnm_1", "tnm_2"].map(String::from).into();
    assert_eq!(names, expected);
    // The OS sees the same names.
    let os: HashSet<String> = thread_names()
        .into_iter()
        .filter(|n| n.starts_with("tnm_"))
        .collect();
    assert_eq!(os, expected);
}

#[test]
fn default_prefix_counts_pools() {
    let name_of = |pool: &ThreadPoolExecutor| {
        pool.submit(|| thread::current().name().unwrap().to_owned())
            .unwrap()
            .wait()
            .unwrap()
    };
    let a = ThreadPoolExecutor::new();
    let b = ThreadPoolExecutor::new();
    let (na, nb) = (name_of(&a), name_of(&b));
    let number = |name: &str| -> usize {
        let rest = name.strip_prefix("ThreadPoolExecutor-").unwrap();
        let (n, worker) = rest.split_once('_').unwrap();
        assert_eq!(worker, "0");
        n.parse().unwrap()
    };
    assert!(number(&nb) > number(&na), "{na} then {nb}");
}

#[test]
fn lazy_start_and_idle_reuse() {
    isolated("lazy_start_and_idle_reuse", || {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(4)
            .thread_name_prefix("lz")
            .build()
            .unwrap();
        assert_eq!(threads_named("lz_"), 0, "no thread before the first submit");
        assert_eq!(pool.num_threads(), 0);
        for i in 0..50 {
            assert_eq!(pool.submit(move || i).unwrap().wait(), Ok(i));
        }
        assert_eq!(
            pool.num_threads(),
            1,
            "sequential submit-and-wait reuses one thread"
        );
        assert_eq!(threads_named("lz_"), 1);
    });
}

#[test]
fn saturation_starts_exactly_max_workers_threads() {
    isolated("saturation_starts_exactly_max_workers_threads", || {
        let max = 4;
        let pool = ThreadPoolExecutor::builder()
            .max_workers(max)
            .thread_name_prefix("sat")
            .build()
            .unwrap();
        let peak = Arc::new(AtomicUsize::new(0));
        let futures: Vec<_> = (0..15 * max)
            .map(|_| {
                let peak = Arc::clone(&peak);
                pool.submit(move || {
                    peak.fetch_max(threads_named("sat_"), Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(5));
                })
                .unwrap()
            })
            .collect();
        for future in futures {
            future.wait().unwrap();
        }
        assert_eq!(pool.num_threads(), max);
        assert_eq!(threads_named("sat_"), max);
        assert!(peak.load(Ordering::SeqCst) <= max);
    });
}

#[test]
fn hundred_thousand_jobs_from_eight_submitters_complete_exactly_once() {
    const PER_THREAD: usize = 12_500;
    let pool = Arc::new(
        ThreadPoolExecutor::builder()
            .max_workers(4)
            .build()
            .unwrap(),
    );
    let runs: Arc<Vec<AtomicUsize>> =
        Arc::new((0..8 * PER_THREAD).map(|_| AtomicUsize::new(0)).collect());
    let submitters: Vec<_> = (0..8)
        .map(|t| {
            let pool = Arc::clone(&pool);
            let runs = Arc::clone(&runs);
            thread::spawn(move || {
                let futures: Vec<_> = (0..PER_THREAD)
                    .map(|i| {
                        let id = t * PER_THREAD + i;
                        let runs = Arc::clone(&runs);
                        pool.submit(move || {
                            runs[id].fetch_add(1, Ordering::Relaxed);
                            id
                        })
                        .unwrap()
                    })
                    .collect();
                for (i, future) in futures.into_iter().enumerate() {
                    assert_eq!(future.wait(), Ok(t * PER_THREAD + i));
                }
            })
        })
        .collect();
    for submitter in submitters {
        submitter.join().unwrap();
    }
    assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1));
}

/// A pool with one worker held busy until the returned sender is used (or dropped).
fn blocked_pool(
    prefix: &str,
) -> (
    ThreadPoolExecutor,
    mpsc::Sender<()>,
    evloop_thread_pool::JobFuture<()>,
) {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .thread_name_prefix(prefix)
        .build()
        .unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    let blocker = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            let _ = gate.recv();
        })
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    (pool, release, blocker)
}

#[test]
fn cancel_of_a_queued_job_prevents_it_from_running() {
    let (pool, release, blocker) = blocked_pool("cq");
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    let queued = pool
        .submit(move || r.fetch_add(1, Ordering::SeqCst))
        .unwrap();
    assert_eq!(queued.state(), JobState::Pending);
    assert!(!blocker.cancel(), "a running job cannot be cancelled");
    assert!(queued.cancel());
    assert!(queued.cancelled() && queued.done());
    release.send(()).unwrap();
    blocker.wait().unwrap();
    // Another job after the cancelled one proves the worker went past it.
    assert_eq!(pool.submit(|| 1).unwrap().wait(), Ok(1));
    assert_eq!(queued.wait(), Err(JobError::Cancelled));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn shutdown_cancel_futures_matches_pythons_probe() {
    // Python: 1 worker, 4 jobs, cancel_futures=True -> [FINISHED, CANCELLED, CANCELLED, CANCELLED].
    let (pool, release, blocker) = blocked_pool("cf");
    let queued: Vec<_> = (0..3).map(|i| pool.submit(move || i).unwrap()).collect();
    let releaser = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        release.send(()).unwrap();
    });
    pool.shutdown(true, true);
    releaser.join().unwrap();
    assert_eq!(blocker.state(), JobState::Finished);
    for future in &queued {
        assert_eq!(future.state(), JobState::Cancelled);
    }
    for future in queued {
        assert_eq!(future.wait(), Err(JobError::Cancelled));
    }
}

/// A submit that starts a thread returns with its job taken (Python's `Thread.start()` returns
/// once the thread runs), so `shutdown(cancel_futures = true)` straight after the submits cancels
/// none of the jobs that started threads. The jobs hold their threads until after the shutdown,
/// so every submit starts one; many trials, because without the hand-off it is a race the new
/// threads usually lose.
#[test]
fn shutdown_cancel_right_after_submits_keeps_the_jobs_threads_took() {
    for _ in 0..100 {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(4)
            .thread_name_prefix("taken")
            .build()
            .unwrap();
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let jobs: Vec<_> = (0..4)
            .map(|i| {
                let gate = Arc::clone(&gate);
                pool.submit(move || {
                    let (open, cond) = &*gate;
                    let mut open = open.lock().unwrap();
                    while !*open {
                        open = cond.wait(open).unwrap();
                    }
                    i
                })
                .unwrap()
            })
            .collect();
        pool.shutdown(false, true);
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        let got: Vec<_> = jobs.into_iter().map(|f| f.wait()).collect();
        assert_eq!(got, [Ok(0), Ok(1), Ok(2), Ok(3)]);
        pool.shutdown(true, false);
    }
}

#[test]
fn shutdown_without_wait_returns_at_once_and_queued_jobs_still_run() {
    let (pool, release, blocker) = blocked_pool("nw");
    let queued: Vec<_> = (0..5)
        .map(|i| pool.submit(move || i * 2).unwrap())
        .collect();
    let started = Instant::now();
    pool.shutdown(false, false);
    assert!(started.elapsed() < LONG);
    assert_eq!(
        blocker.state(),
        JobState::Running,
        "did not wait for the job"
    );
    assert_eq!(pool.submit(|| 0).unwrap_err(), JobError::Shutdown);
    release.send(()).unwrap();
    for (i, future) in queued.into_iter().enumerate() {
        assert_eq!(future.wait(), Ok(i * 2));
    }
    blocker.wait().unwrap();
}

#[test]
fn panicking_job_fails_its_future_and_the_worker_survives() {
    isolated(
        "panicking_job_fails_its_future_and_the_worker_survives",
        || {
            let pool = ThreadPoolExecutor::builder()
                .max_workers(1)
                .thread_name_prefix("pan")
                .build()
                .unwrap();
            let first = pool
                .submit(|| thread::current().id())
                .unwrap()
                .wait()
                .unwrap();
            let err = pool
                .submit(|| -> u8 { panic!("job exploded: {}", 42) })
                .unwrap()
                .wait()
                .unwrap_err();
            assert_eq!(err, JobError::Panicked("job exploded: 42".into()));
            assert!(err.to_string().contains("job exploded: 42"));
            let static_msg = pool.submit(|| -> u8 { panic!("static") }).unwrap().wait();
            assert_eq!(static_msg, Err(JobError::Panicked("static".into())));
            let after = pool
                .submit(|| thread::current().id())
                .unwrap()
                .wait()
                .unwrap();
            assert_eq!(first, after, "the same worker thread survived");
            assert_eq!(threads_named("pan_"), 1);
        },
    );
}

#[test]
fn failing_initializer_breaks_the_pool() {
    let inits = Arc::new(AtomicUsize::new(0));
    let i = Arc::clone(&inits);
    let (go_tx, go) = mpsc::channel::<()>();
    let go = Mutex::new(go);
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .thread_name_prefix("brk")
        .initializer(move || {
            i.fetch_add(1, Ordering::SeqCst);
            // Hold the failure until the test has queued its jobs.
            let _ = go.lock().unwrap().recv();
            Err::<(), _>("cannot connect")
        })
        .build()
        .unwrap();
    let queued: Vec<_> = (0..5).map(|i| pool.submit(move || i).unwrap()).collect();
    drop(go_tx);
    for future in queued {
        let err = future.wait().unwrap_err();
        assert_eq!(err, JobError::BrokenPool);
        assert_eq!(
            err.to_string(),
            "A thread initializer failed, the thread pool is not usable anymore"
        );
    }
    let err = pool.submit(|| 1).unwrap_err();
    assert_eq!(err, JobError::BrokenPool);
    assert!(inits.load(Ordering::SeqCst) >= 1);
    assert!(pool.shutdown_timeout(LONG).is_ok());
}

#[test]
fn panicking_initializer_breaks_the_pool_too() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .initializer(|| -> Result<(), String> { panic!("init panic") })
        .build()
        .unwrap();
    assert_eq!(pool.submit(|| 1).unwrap().wait(), Err(JobError::BrokenPool));
    eventually("the pool refuses jobs", || pool.submit(|| 1).is_err());
    assert_eq!(pool.submit(|| 1).unwrap_err(), JobError::BrokenPool);
}

#[test]
fn initializer_runs_once_per_worker_thread() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let pool = ThreadPoolExecutor::builder()
        .max_workers(3)
        .thread_name_prefix("ini")
        .initializer(move || {
            s.lock()
                .unwrap()
                .push(thread::current().name().unwrap().to_owned());
            Ok::<(), String>(())
        })
        .build()
        .unwrap();
    let barrier = Arc::new(Barrier::new(3));
    let futures: Vec<_> = (0..3)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            pool.submit(move || {
                barrier.wait();
            })
            .unwrap()
        })
        .collect();
    for future in futures {
        future.wait().unwrap();
    }
    for _ in 0..20 {
        pool.submit(|| ()).unwrap().wait().unwrap();
    }
    let mut names = seen.lock().unwrap().clone();
    names.sort();
    assert_eq!(names, ["ini_0", "ini_1", "ini_2"]);
}

#[test]
fn submit_after_shutdown_fails_with_pythons_text_and_shutdown_is_idempotent() {
    let pool = ThreadPoolExecutor::new();
    pool.submit(|| ()).unwrap().wait().unwrap();
    pool.shutdown(true, false);
    pool.shutdown(true, true);
    pool.shutdown(false, false);
    let err = pool.submit(|| ()).unwrap_err();
    assert_eq!(err, JobError::Shutdown);
    assert_eq!(
        err.to_string(),
        "cannot schedule new futures after shutdown"
    );
    assert!(pool.map(|x: u8| x, [1, 2]).is_err());
    assert!(pool.shutdown_timeout(Duration::ZERO).is_ok());
}

#[test]
fn shutdown_timeout_returns_early_when_work_finishes_early() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .build()
        .unwrap();
    for _ in 0..2 {
        // Not waited on: shutdown_timeout does the waiting.
        drop(pool.submit(|| thread::sleep(Duration::from_millis(50))));
    }
    let started = Instant::now();
    assert!(pool.shutdown_timeout(LONG).is_ok());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(40),
        "it waited for the jobs ({took:?})"
    );
    assert!(
        took < Duration::from_secs(20),
        "it did not wait for the timeout ({took:?})"
    );
    assert_eq!(pool.num_threads(), 0);
}

#[test]
fn shutdown_timeout_gives_up_on_time_when_work_runs_long() {
    let (pool, release, blocker) = blocked_pool("sto");
    let started = Instant::now();
    let timeout = Duration::from_millis(200);
    assert!(pool.shutdown_timeout(timeout).is_err());
    let took = started.elapsed();
    assert!(took >= timeout, "returned before the timeout ({took:?})");
    assert!(
        took < timeout + Duration::from_secs(10),
        "returned far too late ({took:?})"
    );
    assert_eq!(blocker.state(), JobState::Running);
    release.send(()).unwrap();
    assert!(pool.shutdown_timeout(LONG).is_ok());
    assert_eq!(blocker.wait(), Ok(()));
}

/// Set when the thread that registered it finishes: thread-local destructors run before a
/// thread ends and before its join returns, so a set flag right after `shutdown(wait)` proves
/// the thread was joined, not merely told to stop.
struct SetOnThreadExit(Arc<AtomicUsize>);

impl Drop for SetOnThreadExit {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

thread_local! {
    static ON_EXIT: std::cell::RefCell<Option<SetOnThreadExit>> = const { std::cell::RefCell::new(None) };
}

fn count_my_thread_exit(exited: &Arc<AtomicUsize>) {
    let exited = Arc::clone(exited);
    ON_EXIT.with(|slot| *slot.borrow_mut() = Some(SetOnThreadExit(exited)));
}

#[test]
fn no_thread_left_behind_after_shutdown() {
    isolated("no_thread_left_behind_after_shutdown", || {
        let before = thread_count();
        let exited = Arc::new(AtomicUsize::new(0));
        let pool = ThreadPoolExecutor::builder()
            .max_workers(4)
            .thread_name_prefix("lbh")
            .build()
            .unwrap();
        let barrier = Arc::new(Barrier::new(4));
        let futures: Vec<_> = (0..4)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                let exited = Arc::clone(&exited);
                pool.submit(move || {
                    count_my_thread_exit(&exited);
                    barrier.wait();
                })
                .unwrap()
            })
            .collect();
        for future in futures {
            future.wait().unwrap();
        }
        assert_eq!(threads_named("lbh_"), 4);
        pool.shutdown(true, false);
        // Joined, not merely told to stop: every worker has finished when shutdown returns.
        assert_eq!(exited.load(Ordering::SeqCst), 4);
        // The kernel may list a joined thread in /proc for a moment after its join returns
        // (the join wakes on the thread's exit futex, before the task is released).
        eventually("the workers leave /proc", || threads_named("lbh_") == 0);
        eventually("the thread count is back", || thread_count() == before);
        drop(pool);
        // Drop joins too.
        let pool = ThreadPoolExecutor::builder()
            .thread_name_prefix("lbd")
            .build()
            .unwrap();
        let exited_too = Arc::clone(&exited);
        pool.submit(move || count_my_thread_exit(&exited_too))
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(threads_named("lbd_"), 1);
        drop(pool);
        assert_eq!(exited.load(Ordering::SeqCst), 5);
        eventually("the worker leaves /proc", || threads_named("lbd_") == 0);
    });
}

#[test]
fn drop_waits_for_queued_and_running_jobs() {
    let done = Arc::new(AtomicUsize::new(0));
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .build()
        .unwrap();
    for _ in 0..6 {
        let done = Arc::clone(&done);
        // Not waited on: dropping the pool does the waiting.
        drop(pool.submit(move || {
            thread::sleep(Duration::from_millis(10));
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    drop(pool);
    assert_eq!(done.load(Ordering::SeqCst), 6);
}

#[test]
fn a_job_may_shut_its_own_pool_down_without_deadlock() {
    let pool = Arc::new(
        ThreadPoolExecutor::builder()
            .max_workers(2)
            .build()
            .unwrap(),
    );
    let inner = Arc::clone(&pool);
    let future = pool.submit(move || inner.shutdown(true, false)).unwrap();
    assert_eq!(future.wait(), Ok(()));
    assert_eq!(pool.submit(|| ()).unwrap_err(), JobError::Shutdown);
}

#[test]
fn pool_future_awaited_from_hand_written_block_on() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .build()
        .unwrap();
    for i in 0..200u64 {
        assert_eq!(block_on(pool.submit(move || i * 3).unwrap()), Ok(i * 3));
    }
    let slow = pool
        .submit(|| {
            thread::sleep(Duration::from_millis(20));
            "slow"
        })
        .unwrap();
    assert_eq!(block_on(slow), Ok("slow"));
}

#[test]
fn map_yields_in_input_order() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(4)
        .build()
        .unwrap();
    let results: Vec<_> = pool
        .map(
            |i: u64| {
                // Later items finish first.
                thread::sleep(Duration::from_millis(20 - i));
                i
            },
            0..20,
        )
        .unwrap()
        .collect();
    assert_eq!(results, (0..20).map(Ok).collect::<Vec<_>>());
}

#[test]
fn dropping_map_cancels_jobs_not_started() {
    let (pool, release, blocker) = blocked_pool("mdc");
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    let results = pool
        .map(
            move |_: u8| {
                r.fetch_add(1, Ordering::SeqCst);
            },
            0..10,
        )
        .unwrap();
    drop(results);
    release.send(()).unwrap();
    blocker.wait().unwrap();
    pool.shutdown(true, false);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn done_callback_and_as_completed_on_pool_futures() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(3)
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let future = pool.submit(|| 42).unwrap();
    future.add_done_callback(move |result| {
        tx.send(format!("The result is {}", result.as_ref().unwrap()))
            .unwrap();
    });
    assert_eq!(rx.recv_timeout(LONG).unwrap(), "The result is 42");

    let futures: Vec<_> = [60u64, 0, 30]
        .into_iter()
        .map(|ms| {
            pool.submit(move || {
                thread::sleep(Duration::from_millis(ms * 3));
                ms
            })
            .unwrap()
        })
        .collect();
    let order: Vec<u64> = as_completed(futures).map(|f| f.wait().unwrap()).collect();
    assert_eq!(order.len(), 3);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, [0, 30, 60]);
    // 0 ms and 180 ms apart cannot swap even on a loaded machine.
    assert_eq!(order[0], 0, "{order:?}");
}

#[test]
fn keep_alive_retires_idle_threads_and_new_ones_start_on_demand() {
    isolated(
        "keep_alive_retires_idle_threads_and_new_ones_start_on_demand",
        || {
            let pool = ThreadPoolExecutor::builder()
                .max_workers(2)
                .thread_name_prefix("kal")
                .keep_alive(Duration::from_millis(20))
                .build()
                .unwrap();
            assert_eq!(pool.submit(|| 1).unwrap().wait(), Ok(1));
            eventually("no worker thread left", || pool.num_threads() == 0);
            eventually("no kal_ thread left", || threads_named("kal_") == 0);
            for i in 0..50 {
                assert_eq!(pool.submit(move || i).unwrap().wait(), Ok(i));
                if i % 10 == 0 {
                    thread::sleep(Duration::from_millis(30));
                }
            }
            pool.shutdown(true, false);
            assert_eq!(threads_named("kal_"), 0);
        },
    );
}

#[test]
fn futures_do_not_need_the_executor_to_outlive_them() {
    let future = {
        let pool = ThreadPoolExecutor::new();
        pool.submit(|| String::from("kept")).unwrap()
    };
    assert_eq!(future.wait(), Ok(String::from("kept")));
}

#[test]
fn bursts_with_idle_gaps_never_lose_a_wake_up() {
    // Workers go to sleep between bursts; every burst must be picked up. A lost wake-up shows
    // as a wait that times out instead of a hang.
    let pool = ThreadPoolExecutor::builder()
        .max_workers(4)
        .build()
        .unwrap();
    let mut seed = 0x9e37_79b9_u32;
    for round in 0..2_000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let burst = 1 + seed % 8;
        let mut futures: Vec<_> = (0..burst)
            .map(|i| pool.submit(move || round + i).unwrap())
            .collect();
        for (i, future) in futures.iter_mut().enumerate() {
            assert_eq!(future.wait_timeout(LONG), Some(Ok(round + i as u32)));
        }
        if round % 500 == 0 {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Submitters race a shutdown: every accepted job completes (with a value, or cancelled when
/// `cancel_futures`), every refused one gets Python's error, and nothing hangs.
fn shutdown_races_submitters(cancel_futures: bool) {
    let pool = Arc::new(
        ThreadPoolExecutor::builder()
            .max_workers(3)
            .build()
            .unwrap(),
    );
    let submitters: Vec<_> = (0..4)
        .map(|_| {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                let mut accepted = Vec::new();
                loop {
                    if accepted.len() >= 100_000 {
                        // Enough pressure; keep memory bounded until the shutdown lands.
                        thread::sleep(Duration::from_millis(1));
                    }
                    match pool.submit(|| 1u8) {
                        Ok(future) => accepted.push(future),
                        Err(error) => {
                            assert_eq!(error, JobError::Shutdown);
                            return accepted;
                        }
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(20));
    pool.shutdown(true, cancel_futures);
    let mut values = 0;
    let mut cancelled = 0;
    for submitter in submitters {
        for mut future in submitter.join().unwrap() {
            match future.wait_timeout(LONG) {
                Some(Ok(1)) => values += 1,
                Some(Err(JobError::Cancelled)) if cancel_futures => cancelled += 1,
                other => panic!("unexpected outcome {other:?}"),
            }
        }
    }
    assert!(values > 0);
    if !cancel_futures {
        assert_eq!(cancelled, 0);
    }
}

#[test]
fn shutdown_racing_submitters_loses_nothing() {
    shutdown_races_submitters(false);
}

#[test]
fn shutdown_with_cancel_racing_submitters_loses_nothing() {
    shutdown_races_submitters(true);
}

#[test]
fn submits_racing_keep_alive_retirement_are_never_stranded() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .keep_alive(Duration::from_millis(1))
        .build()
        .unwrap();
    for i in 0..300u32 {
        let mut future = pool.submit(move || i).unwrap();
        assert_eq!(future.wait_timeout(LONG), Some(Ok(i)));
        // Land submits before, during and after the moment the worker retires.
        thread::sleep(Duration::from_micros(u64::from(i % 4) * 500));
    }
}

#[test]
fn idle_workers_sleep_without_burning_cpu() {
    isolated("idle_workers_sleep_without_burning_cpu", || {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(4)
            .thread_name_prefix("idl")
            .build()
            .unwrap();
        let barrier = Arc::new(Barrier::new(4));
        let futures: Vec<_> = (0..4)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                pool.submit(move || {
                    barrier.wait();
                })
                .unwrap()
            })
            .collect();
        for future in futures {
            future.wait().unwrap();
        }
        assert_eq!(threads_named("idl_"), 4);
        // Let them finish their few yield rounds and fall asleep.
        thread::sleep(Duration::from_millis(100));
        let before = cpu_ticks_of_threads_named("idl_");
        thread::sleep(Duration::from_millis(500));
        let after = cpu_ticks_of_threads_named("idl_");
        // Four spinning threads would burn ~200 ticks (100 Hz) in that time; sleeping ones 0.
        assert!(
            after - before <= 2,
            "idle workers used {} ticks",
            after - before
        );
        // And they still wake up for work.
        assert_eq!(pool.submit(|| 5).unwrap().wait(), Ok(5));
    });
}
