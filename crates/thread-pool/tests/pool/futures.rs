//! Job futures: awaited from any block_on, map in input order, done callbacks, as_completed, keep-alive retirement.

use super::*;

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
        "futures::keep_alive_retires_idle_threads_and_new_ones_start_on_demand",
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
