//! `evloop::compat::hyper`: a hyper server and client talk over evloop sockets, hyper's timeouts
//! run on `LoopTimer` (its virtual clock included), and a dropped sleep cancels its loop timer
//! from whichever thread drops it.

use std::convert::Infallible;
use std::time::Duration;

use evloop::compat::hyper::{HyperIo, LoopExecutor, LoopTimer};
use evloop::net::{TcpListener, TcpStream};
use evloop::{EventLoop, LoopExt};
use evloop_test_support::block_on;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::rt::{Executor, Timer};
use hyper::{Request, Response};

async fn echo_path(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from(
        request.uri().path().to_owned(),
    ))))
}

#[test]
fn a_hyper_client_and_server_exchange_keep_alive_requests() {
    let bodies = evloop::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = evloop::create_task(async move {
            let (stream, _) = listener.accept().await.unwrap();
            hyper::server::conn::http1::Builder::new()
                .timer(LoopTimer::new().unwrap())
                .serve_connection(HyperIo::new(stream), hyper::service::service_fn(echo_path))
                .await
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(stream))
            .await
            .unwrap();
        LoopExecutor::new().unwrap().execute(conn);
        let mut bodies = Vec::new();
        for path in ["/a", "/bb", "/ccc"] {
            let request = Request::get(path)
                .header("host", "localhost")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            bodies.push(response.into_body().collect().await.unwrap().to_bytes());
        }
        drop(sender);
        server.await.unwrap().unwrap();
        bodies
    })
    .unwrap();
    assert_eq!(bodies, ["/a", "/bb", "/ccc"]);
}

/// hyper's header-read timeout is a `LoopTimer` sleep: on a virtual clock, a client that sends
/// nothing is dropped after 30 s of loop time without 30 s passing.
#[test]
fn hyper_header_read_timeout_fires_on_the_loop_clock() {
    let lp = EventLoop::builder().virtual_clock(true).build().unwrap();
    let start = lp.time();
    let outcome = lp
        .run_until_complete(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let served = hyper::server::conn::http1::Builder::new()
                .timer(LoopTimer::new().unwrap())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(HyperIo::new(stream), hyper::service::service_fn(echo_path))
                .await;
            drop(client);
            served
        })
        .unwrap();
    let elapsed = lp.time() - start;
    assert!(outcome.unwrap_err().is_timeout());
    // hyper's deadline is `now + 30 s` taken a moment before the sleep is made.
    assert!(elapsed >= Duration::from_secs(29), "{elapsed:?}");
    assert!(elapsed <= Duration::from_secs(31), "{elapsed:?}");
    lp.close().unwrap();
}

#[test]
fn dropping_a_sleep_on_the_loop_thread_cancels_its_timer() {
    let lp = EventLoop::builder().virtual_clock(true).build().unwrap();
    lp.run_until_complete(async {
        let lp = evloop::get_running_loop().unwrap();
        let timer = LoopTimer::new().unwrap();
        let sleep = timer.sleep(Duration::from_secs(3600));
        assert_eq!(lp.timer_count(), 1);
        drop(sleep);
        evloop::yield_now().await;
        assert_eq!(lp.timer_count(), 0);
    })
    .unwrap();
    lp.close().unwrap();
}

/// Loop iterations until `lp.timer_count()` is `n` (the remote queue delivers another thread's
/// scheduling or cancellation within a few); `None` if it never gets there.
async fn iterations_until_timers(lp: &EventLoop, n: usize) -> Option<u32> {
    for i in 0..10_000 {
        if lp.timer_count() == n {
            return Some(i);
        }
        evloop::yield_now().await;
    }
    None
}

/// The timer is `Send + Sync`: another thread makes a sleep, which becomes a loop timer, drops
/// it, which cancels the timer on the loop, and awaits a short one to the end.
#[test]
fn a_sleep_made_and_dropped_on_another_thread_runs_on_the_loop() {
    let lp = EventLoop::new().unwrap();
    let timer = LoopTimer::for_loop(&lp);
    lp.run_until_complete(async move {
        let lp = evloop::get_running_loop().unwrap();
        let (made_tx, made_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let long = timer.sleep(Duration::from_secs(3600));
            made_tx.send("made").unwrap();
            go_rx.recv().unwrap();
            drop(long);
            made_tx.send("dropped").unwrap();
            block_on(timer.sleep(Duration::from_millis(5)));
        });
        let made_rx = std::sync::Arc::new(std::sync::Mutex::new(made_rx));
        let next = || {
            let rx = made_rx.clone();
            evloop::to_thread(move || rx.lock().unwrap().recv().unwrap())
        };
        assert_eq!(next().await.unwrap(), "made");
        assert!(
            iterations_until_timers(&lp, 1).await.is_some(),
            "the sleep is a loop timer"
        );
        go_tx.send(()).unwrap();
        assert_eq!(next().await.unwrap(), "dropped");
        assert!(
            iterations_until_timers(&lp, 0).await.is_some(),
            "the dropped sleep's timer was cancelled on the loop"
        );
        evloop::to_thread(move || thread.join().unwrap())
            .await
            .unwrap();
    })
    .unwrap();
    lp.close().unwrap();
}

#[test]
fn a_sleep_pending_when_its_loop_closes_completes() {
    let lp = EventLoop::new().unwrap();
    let timer = LoopTimer::for_loop(&lp);
    // Made while the loop is not running: scheduled through the remote queue.
    let sleep = timer.sleep(Duration::from_secs(3600));
    lp.run_until_complete(evloop::yield_now()).unwrap();
    assert_eq!(lp.timer_count(), 1);
    lp.close().unwrap();
    block_on(sleep);
}

/// A client that resets the connection leaves nothing to shut down: `poll_shutdown` succeeds
/// (as on tokio's sockets) instead of hyper reporting "error shutting down connection".
#[test]
fn shutdown_after_the_peer_reset_the_connection_succeeds() {
    evloop::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        evloop_test_support::reset_on_close(&client);
        let (stream, _) = listener.accept().await.unwrap();
        drop(client); // linger 0: an RST, not a FIN
        let mut buf = [0u8; 16];
        let reset = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(reset.kind(), std::io::ErrorKind::ConnectionReset);
        // The kernel says ENOTCONN; the socket (and so the adapter) says done.
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut io = HyperIo::new(stream);
        std::future::poll_fn(|cx| hyper::rt::Write::poll_shutdown(std::pin::Pin::new(&mut io), cx))
            .await
            .unwrap();
    })
    .unwrap();
}

async fn body_length(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let sum: u64 = body.iter().map(|b| u64::from(*b)).sum();
    Ok(Response::new(Full::new(Bytes::from(format!(
        "{} {sum}",
        body.len()
    )))))
}

/// A body many times the adapter's read size arrives whole.
#[test]
fn a_large_request_body_arrives_whole() {
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let expected = format!(
        "{} {}",
        body.len(),
        body.iter().map(|b| u64::from(*b)).sum::<u64>()
    );
    let answer = evloop::run(async move {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = evloop::create_task(async move {
            let (stream, _) = listener.accept().await.unwrap();
            hyper::server::conn::http1::Builder::new()
                .serve_connection(
                    HyperIo::new(stream),
                    hyper::service::service_fn(body_length),
                )
                .await
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(stream))
            .await
            .unwrap();
        LoopExecutor::new().unwrap().execute(conn);
        let request = Request::post("/")
            .header("host", "localhost")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let answer = response.into_body().collect().await.unwrap().to_bytes();
        drop(sender);
        server.await.unwrap().unwrap();
        answer
    })
    .unwrap();
    assert_eq!(answer, expected);
}
