//! Jobs: exactly-once under many submitters, cancelling queued jobs, shutdown(cancel_futures), panicking jobs (D5).

use super::*;

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
        "jobs::panicking_job_fails_its_future_and_the_worker_survives",
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
