//! The `Stream`s: `as_completed` and both pools' `map` wait without blocking the loop, a
//! listener's connections and a signal's deliveries arrive as items.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use evloop::net::{TcpListener, TcpStream};
use evloop::thread_pool::future::as_completed;
use evloop::{ProcessPool, SignalStream, ThreadPoolExecutor};
use futures_util::StreamExt;

evloop::process_pool::test_worker!();

/// A task that counts loop iterations while the test awaits: proof the loop was not blocked.
fn ticker() -> (Rc<Cell<u32>>, evloop::Task<()>) {
    let ticks = Rc::new(Cell::new(0));
    let counter = ticks.clone();
    let task = evloop::create_task(async move {
        loop {
            counter.set(counter.get() + 1);
            evloop::sleep(Duration::from_millis(1)).await;
        }
    });
    (ticks, task)
}

#[test]
fn as_completed_yields_in_completion_order_without_blocking_the_loop() {
    let pool = ThreadPoolExecutor::with_max_workers(2).unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let order = evloop::run(async move {
        let (ticks, ticker) = ticker();
        let slow = pool
            .submit(move || {
                gate.recv().unwrap();
                "slow"
            })
            .unwrap();
        let fast = pool.submit(|| "fast").unwrap();
        let mut done = as_completed([slow, fast]).into_stream();
        let first = done.next().await.unwrap().wait().unwrap();
        let before = ticks.get();
        // The loop keeps running while the stream waits for the slow job.
        let waiter = evloop::create_task(async move {
            let second = done.next().await.unwrap().wait().unwrap();
            (second, done.next().await.is_none())
        });
        evloop::sleep(Duration::from_millis(20)).await;
        assert!(
            ticks.get() > before,
            "the ticker ran while the stream waited"
        );
        release.send(()).unwrap();
        let (second, ended) = waiter.await.unwrap();
        ticker.cancel();
        (first, second, ended)
    })
    .unwrap();
    assert_eq!(order, ("fast", "slow", true));
}

#[test]
fn thread_pool_map_streams_results_in_input_order() {
    let pool = ThreadPoolExecutor::with_max_workers(4).unwrap();
    let results: Vec<_> = evloop::run(async move {
        let stream = pool
            .map(
                |ms: u64| {
                    std::thread::sleep(Duration::from_millis(ms));
                    ms
                },
                [30, 1, 10],
            )
            .unwrap()
            .into_stream();
        stream.collect::<Vec<_>>().await
    })
    .unwrap();
    assert_eq!(results, [Ok(30), Ok(1), Ok(10)]);
}

fn cube(x: i64) -> i64 {
    x * x * x
}

fn fail_on_three(x: i64) -> i64 {
    assert_ne!(x, 3, "three");
    x
}

#[test]
fn process_pool_map_streams_results_and_an_error_ends_it() {
    let pool = ProcessPool::builder().max_workers(2).build().unwrap();
    let (cubes, failing) = evloop::run(async move {
        let cubes: Vec<_> = pool
            .map(cube, 1..=5, 2)
            .unwrap()
            .into_stream()
            .collect()
            .await;
        let failing: Vec<_> = pool
            .map(fail_on_three, 1..=6, 1)
            .unwrap()
            .into_stream()
            .collect()
            .await;
        (cubes, failing)
    })
    .unwrap();
    assert_eq!(cubes, [Ok(1), Ok(8), Ok(27), Ok(64), Ok(125)]);
    assert_eq!(failing.len(), 3, "{failing:?}");
    assert_eq!(failing[..2], [Ok(1), Ok(2)]);
    assert!(failing[2].is_err());
}

#[test]
fn a_listeners_incoming_connections_are_a_stream() {
    let peers = evloop::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let clients = evloop::create_task(async move {
            let mut clients = Vec::new();
            for _ in 0..3 {
                clients.push(TcpStream::connect(addr).await.unwrap());
            }
            clients
        });
        let accepted: Vec<_> = listener.incoming().take(3).collect().await;
        let clients = clients.await.unwrap();
        let mut client_addrs: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        let mut peer_addrs: Vec<_> = accepted
            .into_iter()
            .map(|s| s.unwrap().peer_addr().unwrap())
            .collect();
        client_addrs.sort();
        peer_addrs.sort();
        (client_addrs, peer_addrs)
    })
    .unwrap();
    assert_eq!(peers.0, peers.1);
}

#[test]
fn signal_deliveries_are_a_stream_and_dropping_it_restores_the_default() {
    evloop_test_support::isolated(
        "signal_deliveries_are_a_stream_and_dropping_it_restores_the_default",
        || {
            let got = evloop::run(async {
                let lp = evloop::get_running_loop().unwrap();
                let mut usr1 = SignalStream::new(&lp, libc::SIGUSR1).unwrap();
                assert!(!evloop::layers::reactor::has_default_disposition(
                    libc::SIGUSR1
                ));
                let mut got = Vec::new();
                for _ in 0..2 {
                    // SAFETY: raising a signal that now has a handler.
                    unsafe { libc::raise(libc::SIGUSR1) };
                    got.push(usr1.next().await.unwrap());
                }
                drop(usr1);
                assert!(evloop::layers::reactor::has_default_disposition(
                    libc::SIGUSR1
                ));
                got
            })
            .unwrap();
            assert_eq!(got, [libc::SIGUSR1, libc::SIGUSR1]);
        },
    );
}
