//! Worker count, thread names, lazy start and saturation (contracts D1-D3).

use super::*;

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
    let names: HashSet<String> =
        on_workers_at_once(&pool, 3, || thread::current().name().unwrap().to_owned())
            .into_iter()
            .collect();
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
    isolated("config::lazy_start_and_idle_reuse", || {
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
    isolated(
        "config::saturation_starts_exactly_max_workers_threads",
        || {
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
        },
    );
}
