//! The initializer: once per worker thread, and a failing or panicking one breaks the pool (D7).

use super::*;

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
    on_workers_at_once(&pool, 3, || ());
    for _ in 0..20 {
        pool.submit(|| ()).unwrap().wait().unwrap();
    }
    let mut names = seen.lock().unwrap().clone();
    names.sort();
    assert_eq!(names, ["ini_0", "ini_1", "ini_2"]);
}
