//! Executors wired to the loop: asyncio's contracts C1-C4, S7 and S9 on the loop side, the
//! process pool awaited on the loop, and that `run()` leaves no executor thread behind.
//!
//! Jobs that must stay queued or running are held by channels, never by sleeps; every blocking
//! receive has a generous limit so that a broken contract fails the test instead of hanging it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use evloop::thread_pool::future::JobState;
use evloop::{
    EventLoop, ExecutorError, ExecutorExt, JobError, LoopError, LoopExt, ProcessPool,
    ThreadPoolExecutor,
};
use evloop_test_support::procfs::thread_names;
use evloop_test_support::{in_child, record_reports, threads_named};

evloop::process_pool::test_worker!();

/// Generous limit for anything that should happen "soon" on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(20);

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_owned()
}

/// A job that blocks its worker until told to go (or until PATIENCE passes), and says when it
/// started.
fn gate() -> (
    mpsc::Sender<()>,
    mpsc::Receiver<()>,
    impl FnOnce() -> bool + Send + 'static,
) {
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let job = move || {
        started_tx.send(()).unwrap();
        go_rx.recv_timeout(PATIENCE).is_ok()
    };
    (go_tx, started_rx, job)
}

#[test]
fn default_executor_is_lazy_and_named_evloop() {
    let names = evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        let mut names = Vec::new();
        for _ in 0..3 {
            names.push(
                lp.run_in_executor(None, thread_name)
                    .unwrap()
                    .await
                    .unwrap(),
            );
        }
        names
    })
    .unwrap();
    // Sequential jobs reuse one thread.
    assert_eq!(names, ["evloop_0", "evloop_0", "evloop_0"]);
}

#[test]
fn explicit_executor_runs_the_job() {
    let pool = ThreadPoolExecutor::builder()
        .thread_name_prefix("mine")
        .build()
        .unwrap();
    let name = evloop::run(async move {
        let lp = evloop::get_running_loop().unwrap();
        lp.run_in_executor(Some(&pool), thread_name).unwrap().await
    })
    .unwrap();
    assert_eq!(name.unwrap(), "mine_0");
}

#[test]
fn a_panicking_job_fails_its_future_only() {
    let outcome = evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        let bad = lp
            .run_in_executor(None, || -> u8 { panic!("job boom") })
            .unwrap();
        let bad = bad.await;
        let good = lp.run_in_executor(None, || 1u8).unwrap().await;
        (bad, good)
    })
    .unwrap();
    assert_eq!(outcome.0, Err(JobError::Panicked("job boom".into())));
    assert_eq!(outcome.1, Ok(1));
}

/// C1: cancelling the loop future cancels a job that has not started.
#[test]
fn c1_cancel_before_start() {
    let pool = Arc::new(ThreadPoolExecutor::with_max_workers(1).unwrap());
    let ran = Arc::new(AtomicBool::new(false));
    let (go, started, blocker) = gate();
    let flag = ran.clone();
    let outcome = evloop::run(async move {
        let lp = evloop::get_running_loop().unwrap();
        let busy = lp.run_in_executor(&pool, blocker).unwrap();
        started.recv_timeout(PATIENCE).unwrap();
        let queued = lp
            .run_in_executor(&pool, move || flag.store(true, Ordering::SeqCst))
            .unwrap();
        assert_eq!(queued.state(), JobState::Pending);
        assert!(queued.cancel());
        assert!(queued.cancelled() && queued.done());
        go.send(()).unwrap();
        assert_eq!(busy.await, Ok(true));
        let cancelled = queued.await;
        pool.shutdown(true, false);
        cancelled
    })
    .unwrap();
    assert_eq!(outcome, Err(JobError::Cancelled));
    assert!(!ran.load(Ordering::SeqCst), "a cancelled job never runs");
}

/// C1: a cancelled task drops its future, which cancels the queued job.
#[test]
fn c1_dropping_the_future_cancels_a_queued_job() {
    let pool = Arc::new(ThreadPoolExecutor::with_max_workers(1).unwrap());
    let ran = Arc::new(AtomicBool::new(false));
    let (go, started, blocker) = gate();
    let (flag, shared) = (ran.clone(), pool.clone());
    evloop::run(async move {
        let lp = evloop::get_running_loop().unwrap();
        let busy = lp.run_in_executor(&shared, blocker).unwrap();
        started.recv_timeout(PATIENCE).unwrap();
        let waiter = evloop::create_task(async move {
            let lp = evloop::get_running_loop().unwrap();
            let job = lp.run_in_executor(&shared, move || flag.store(true, Ordering::SeqCst));
            job.unwrap().await
        });
        // One step for the waiter: it submits its job, which queues behind the busy one.
        evloop::yield_now().await;
        assert!(waiter.cancel());
        assert!(waiter.await.unwrap_err().is_cancelled());
        go.send(()).unwrap();
        assert_eq!(busy.await, Ok(true));
    })
    .unwrap();
    pool.shutdown(true, false);
    assert!(!ran.load(Ordering::SeqCst), "the queued job was cancelled");
}

/// C1: a running job cannot be cancelled; it runs to the end and its result is discarded.
#[test]
fn c1_a_running_job_is_not_cancelled() {
    let pool = ThreadPoolExecutor::with_max_workers(1).unwrap();
    let (go, started, blocker) = gate();
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let pool = evloop::run(async move {
        let lp = evloop::get_running_loop().unwrap();
        let running = lp
            .run_in_executor(Some(&pool), move || {
                let released = blocker();
                flag.store(released, Ordering::SeqCst);
            })
            .unwrap();
        started.recv_timeout(PATIENCE).unwrap();
        assert!(!running.cancel());
        assert_eq!(running.state(), JobState::Running);
        drop(running);
        go.send(()).unwrap();
        pool
    })
    .unwrap();
    pool.shutdown(true, false);
    assert!(
        finished.load(Ordering::SeqCst),
        "the running job ran to the end"
    );
}

/// C1: a result that arrives after the loop closed is dropped silently.
#[test]
fn c1_result_after_close_is_dropped_silently() {
    let pool = Arc::new(ThreadPoolExecutor::with_max_workers(1).unwrap());
    let lp = EventLoop::new().unwrap();
    let reports = record_reports(&lp);
    let (go, started, blocker) = gate();
    let job = lp.run_in_executor(&pool, blocker).unwrap();
    let waiter = lp.create_task(job).unwrap();
    lp.run_until_complete(async move {
        while started.try_recv().is_err() {
            evloop::sleep(Duration::from_millis(1)).await;
        }
    })
    .unwrap();
    lp.close().unwrap();
    go.send(()).unwrap();
    // Joining the pool means the job completed and its waker (refused by the closed loop) ran.
    pool.shutdown(true, false);
    // close() abandoned the task as cancelled; the late result did not reach it.
    let mut waiter = waiter;
    match waiter.take_result() {
        Some(Err(error)) => assert!(error.is_cancelled(), "{error}"),
        other => panic!("the late result reached the task: {other:?}"),
    }
    drop(waiter);
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

/// C1: run_in_executor on a closed loop fails with "Event loop is closed".
#[test]
fn c1_run_in_executor_on_a_closed_loop() {
    let pool = ThreadPoolExecutor::new();
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    let err = lp.run_in_executor(None, || ()).unwrap_err();
    assert_eq!(err, ExecutorError::Loop(LoopError::Closed));
    assert_eq!(err.to_string(), "Event loop is closed");
    let err = lp.run_in_executor(Some(&pool), || ()).unwrap_err();
    assert_eq!(err.to_string(), "Event loop is closed");
}

/// An explicit pool that was shut down refuses with its own error.
#[test]
fn c1_a_shut_down_explicit_pool_refuses() {
    let pool = ThreadPoolExecutor::new();
    pool.shutdown(true, false);
    let lp = EventLoop::new().unwrap();
    let err = lp.run_in_executor(Some(&pool), || ()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot schedule new futures after shutdown"
    );
    lp.close().unwrap();
}

/// C2: set_default_executor replaces the pool (the old one is returned, not shut down); after
/// shutdown_default_executor even a new default is refused, while explicit pools still work.
#[test]
fn c2_set_default_executor_and_the_shutdown_flag() {
    let outcome = evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        let first = ThreadPoolExecutor::builder()
            .thread_name_prefix("first")
            .build()
            .unwrap();
        assert!(lp.set_default_executor(first).is_none());
        let name = lp
            .run_in_executor(None, thread_name)
            .unwrap()
            .await
            .unwrap();
        assert_eq!(name, "first_0");

        let second = ThreadPoolExecutor::builder()
            .thread_name_prefix("second")
            .build()
            .unwrap();
        let old = lp.set_default_executor(second).expect("the first pool");
        assert_eq!(old.submit(thread_name).unwrap().wait().unwrap(), "first_0");
        let name = lp
            .run_in_executor(None, thread_name)
            .unwrap()
            .await
            .unwrap();
        assert_eq!(name, "second_0");

        lp.shutdown_default_executor(None).await;
        lp.set_default_executor(ThreadPoolExecutor::new());
        let refused = lp.run_in_executor(None, || ()).unwrap_err();
        let explicit = lp.run_in_executor(&old, || 5).unwrap().await;
        (refused, explicit)
    })
    .unwrap();
    assert_eq!(outcome.0, ExecutorError::ExecutorShutdown);
    assert_eq!(outcome.0.to_string(), "Executor shutdown has been called");
    assert_eq!(outcome.1, Ok(5));
}

/// C3: the flag is set even when there is no default executor.
#[test]
fn c3_shutdown_without_a_default_executor() {
    let refused = evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        lp.shutdown_default_executor(None).await;
        lp.run_in_executor(None, || ()).unwrap_err()
    })
    .unwrap();
    assert_eq!(refused.to_string(), "Executor shutdown has been called");
}

/// C3: the join happens off the loop thread: a job that needs the loop to release it finishes
/// while shutdown_default_executor waits (a join on the loop thread would deadlock).
#[test]
fn c3_the_loop_keeps_running_while_joining() {
    let released = evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        let (go, started, blocker) = gate();
        let job = lp.run_in_executor(None, blocker).unwrap();
        while started.try_recv().is_err() {
            evloop::sleep(Duration::from_millis(1)).await;
        }
        lp.call_later(Duration::from_millis(10), move || go.send(()).unwrap())
            .unwrap();
        lp.shutdown_default_executor(None).await;
        assert!(job.done(), "joined: the job is over");
        job.await.unwrap()
    })
    .unwrap();
    assert!(
        released,
        "the loop released the job while the join was waiting"
    );
}

/// C3 and S9: with a limit that passes first, the warning goes to the exception handler, the
/// call returns without joining, and the default executor is refused afterwards.
#[test]
fn c3_timeout_warning_through_the_exception_handler() {
    let (go, started, blocker) = gate();
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let outcome = evloop::run(async move {
        let lp = evloop::get_running_loop().unwrap();
        let reports = record_reports(&lp);
        let _job = lp
            .run_in_executor(None, move || flag.store(blocker(), Ordering::SeqCst))
            .unwrap();
        while started.try_recv().is_err() {
            evloop::sleep(Duration::from_millis(1)).await;
        }
        let begin = Instant::now();
        lp.shutdown_default_executor(Some(Duration::from_millis(50)))
            .await;
        let waited = begin.elapsed();
        let refused = lp.run_in_executor(None, || ()).unwrap_err();
        // Release the job: run()'s own shutdown (300 s limit) then joins it.
        go.send(()).unwrap();
        let reports: Vec<String> = reports.borrow().iter().map(|r| r.message.clone()).collect();
        (reports, waited, refused)
    })
    .unwrap();
    assert_eq!(
        outcome.0,
        ["The executor did not finish joining its threads within 0.05 seconds."]
    );
    assert!(outcome.1 >= Duration::from_millis(50), "{:?}", outcome.1);
    assert!(outcome.1 < PATIENCE, "{:?}", outcome.1);
    assert_eq!(outcome.2, ExecutorError::ExecutorShutdown);
    assert!(
        finished.load(Ordering::SeqCst),
        "run() joined the job that the timed-out shutdown left running"
    );
}

/// S7: a task awaiting to_thread is cancelled when main returns, and run() waits for the thread.
#[test]
fn s7_run_waits_for_a_running_to_thread_job() {
    let (go, started, blocker) = gate();
    let finished = Arc::new(AtomicBool::new(false));
    let resumed = Arc::new(AtomicBool::new(false));
    let (flag, after) = (finished.clone(), resumed.clone());
    evloop::run(async move {
        evloop::create_task(async move {
            let _ = evloop::to_thread(move || flag.store(blocker(), Ordering::SeqCst)).await;
            after.store(true, Ordering::SeqCst);
        })
        .detach();
        while started.try_recv().is_err() {
            evloop::sleep(Duration::from_millis(1)).await;
        }
        // Released only after main returned, while run() shuts down.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            go.send(()).unwrap();
        });
    })
    .unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "run() returned only after the thread"
    );
    assert!(
        !resumed.load(Ordering::SeqCst),
        "the awaiting task was cancelled"
    );
}

/// C4: to_thread needs a running loop.
#[test]
fn c4_to_thread_outside_a_loop() {
    let mut future = std::pin::pin!(evloop::to_thread(|| 1));
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Err(error)) => {
            assert_eq!(error, ExecutorError::Loop(LoopError::NoRunningLoop));
            assert_eq!(error.to_string(), "no running event loop");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

/// C4: to_thread uses the default executor and reports the job's panic.
#[test]
fn c4_to_thread_runs_on_the_default_executor() {
    let outcome = evloop::run(async {
        let name = evloop::to_thread(thread_name).await;
        let panicked = evloop::to_thread(|| -> u8 { panic!("to_thread boom") }).await;
        let lp = evloop::get_running_loop().unwrap();
        lp.shutdown_default_executor(None).await;
        let refused = evloop::to_thread(|| 1).await;
        (name, panicked, refused)
    })
    .unwrap();
    assert_eq!(outcome.0.unwrap(), "evloop_0");
    assert_eq!(
        outcome.1.unwrap_err().to_string(),
        "job panicked: to_thread boom"
    );
    assert_eq!(outcome.2, Err(ExecutorError::ExecutorShutdown));
}

/// A loop with a virtual clock waits for a job in flight instead of jumping to the deadline.
#[test]
fn a_virtual_clock_waits_for_a_job_in_flight() {
    let lp = EventLoop::builder().virtual_clock(true).build().unwrap();
    let outcome = lp
        .run_until_complete(async {
            let lp = evloop::get_running_loop().unwrap();
            let job = lp
                .run_in_executor(None, || {
                    std::thread::sleep(Duration::from_millis(30));
                    7
                })
                .unwrap();
            evloop::timeout(Duration::from_millis(1), job).await
        })
        .unwrap();
    assert_eq!(outcome, Ok(Ok(7)));
    lp.close().unwrap();
}

/// With a virtual clock, run()'s 300 s limit for the join is not reached by a jump of the
/// clock: the join holds it, so a running job is waited for and nothing is reported.
#[test]
fn a_virtual_clock_runner_still_joins_the_default_executor() {
    let (go, started, blocker) = gate();
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let mut runner = evloop::Runner::with_builder(EventLoop::builder().virtual_clock(true));
    let reports = runner
        .run(async move {
            let lp = evloop::get_running_loop().unwrap();
            let reports = record_reports(&lp);
            evloop::create_task(evloop::to_thread(move || {
                flag.store(blocker(), Ordering::SeqCst)
            }))
            .detach();
            while started.try_recv().is_err() {
                evloop::yield_now().await;
            }
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                go.send(()).unwrap();
            });
            reports
        })
        .unwrap();
    runner.close().unwrap();
    assert!(done.load(Ordering::SeqCst), "close() waited for the job");
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

/// A job on a process pool, awaited on the loop.
#[test]
fn a_process_pool_job_awaited_on_the_loop() {
    fn square(x: u64) -> u64 {
        x * x
    }
    let pool = ProcessPool::builder().max_workers(1).build().unwrap();
    let results = evloop::run(async move {
        let lp = evloop::get_running_loop().unwrap();
        let a = lp.run_in_process_pool(&pool, square, 12).unwrap();
        let b = lp
            .run_in_process_pool(&pool, |s: String| s.len(), "four".to_owned())
            .unwrap();
        let out = (a.await, b.await);
        pool.shutdown(true, false);
        let refused = lp.run_in_process_pool(&pool, square, 1).unwrap_err();
        (out, refused)
    })
    .unwrap();
    assert_eq!(results.0, (Ok(144), Ok(4)));
    assert_eq!(
        results.1.to_string(),
        "cannot schedule new futures after shutdown"
    );
}

// ---- tests that count threads run in a child process of their own ----------------------------

/// Waits (bounded) until no thread named `evloop...` is left. A joined thread can still be
/// listed in /proc for a moment after `pthread_join` returned (the kernel clears the tid before
/// it unlists the task), so the count is polled; a pool that was not shut down keeps its idle
/// workers forever and still fails this.
fn no_evloop_thread_left() -> bool {
    let deadline = Instant::now() + PATIENCE;
    while threads_named("evloop") > 0 {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// run() joins the default executor: the jobs of cancelled tasks have finished when it returns
/// and no `evloop` thread is left, also when a shutdown with a limit timed out first.
#[test]
fn run_leaves_no_executor_thread_behind() {
    if in_child("run_leaves_no_executor_thread_behind") {
        return;
    }
    let finished = Arc::new(AtomicUsize::new(0));
    let counter = finished.clone();
    evloop::run(async move {
        let (started_tx, started_rx) = mpsc::channel();
        for _ in 0..2 {
            let (counter, started) = (counter.clone(), started_tx.clone());
            evloop::create_task(evloop::to_thread(move || {
                started.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(50));
                counter.fetch_add(1, Ordering::SeqCst);
            }))
            .detach();
        }
        let mut started = 0;
        while started < 2 {
            match started_rx.try_recv() {
                Ok(()) => started += 1,
                Err(_) => evloop::sleep(Duration::from_millis(1)).await,
            }
        }
        assert!(threads_named("evloop") > 0);
    })
    .unwrap();
    assert_eq!(
        finished.load(Ordering::SeqCst),
        2,
        "run() waited for both jobs"
    );
    assert!(no_evloop_thread_left(), "left: {:?}", thread_names());

    // A timed-out shutdown leaves the job running; run()'s own join still waits for it.
    let (go, started, blocker) = gate();
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    evloop::run(async move {
        evloop::create_task(evloop::to_thread(move || {
            flag.store(blocker(), Ordering::SeqCst)
        }))
        .detach();
        while started.try_recv().is_err() {
            evloop::sleep(Duration::from_millis(1)).await;
        }
        let lp = evloop::get_running_loop().unwrap();
        let reports = record_reports(&lp);
        lp.shutdown_default_executor(Some(Duration::from_millis(1)))
            .await;
        assert_eq!(reports.borrow().len(), 1, "the timeout was reported");
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            go.send(()).unwrap();
        });
    })
    .unwrap();
    assert!(done.load(Ordering::SeqCst), "run() waited for the job");
    assert!(no_evloop_thread_left(), "left: {:?}", thread_names());
}

/// loop.close() shuts the default executor down without waiting for a running job; the job
/// still finishes and its threads go away afterwards.
#[test]
fn close_does_not_wait_for_the_default_executor() {
    if in_child("close_does_not_wait_for_the_default_executor") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let (go, started, blocker) = gate();
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let job = lp
        .run_in_executor(None, move || flag.store(blocker(), Ordering::SeqCst))
        .unwrap();
    started.recv_timeout(PATIENCE).unwrap();
    drop(job);
    // If close() joined the pool this would deadlock until PATIENCE and the job would see no go.
    lp.close().unwrap();
    go.send(()).unwrap();
    assert!(no_evloop_thread_left(), "left: {:?}", thread_names());
    assert!(
        finished.load(Ordering::SeqCst),
        "the job was released after close()"
    );
}
