//! Shutdown and drop: idempotence and its error text, timeouts, joined threads, a job shutting its own pool down (D4-D6).

use super::*;

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
    isolated("shutdown::no_thread_left_behind_after_shutdown", || {
        let before = thread_count();
        let exited = Arc::new(AtomicUsize::new(0));
        let pool = ThreadPoolExecutor::builder()
            .max_workers(4)
            .thread_name_prefix("lbh")
            .build()
            .unwrap();
        let on_exit = Arc::clone(&exited);
        on_workers_at_once(&pool, 4, move || count_my_thread_exit(&on_exit));
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
