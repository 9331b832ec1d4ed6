//! Races: bursts with idle gaps, shutdown against submitters, submits against keep-alive retirement, idle workers asleep.

use super::*;

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
    isolated("races::idle_workers_sleep_without_burning_cpu", || {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(4)
            .thread_name_prefix("idl")
            .build()
            .unwrap();
        on_workers_at_once(&pool, 4, || ());
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
