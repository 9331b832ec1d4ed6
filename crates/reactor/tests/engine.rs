//! The loop engine's observable contracts (asyncio A, B and F sections).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use evloop_reactor::{EventLoop, ExceptionContext, LoopError};
use evloop_test_support::{child_command, is_child, record_reports};

fn virtual_loop() -> EventLoop {
    EventLoop::builder().virtual_clock(true).build().unwrap()
}

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(log: &Log, what: &str) -> impl FnOnce() + 'static {
    let log = log.clone();
    let what = what.to_owned();
    move || log.borrow_mut().push(what)
}

/// A callback wrapper that stops the loop once `count` wrapped callbacks have run, so a test
/// ends exactly when its last timer fires (a polling callback would keep a virtual clock from
/// ever jumping: time only advances when the loop is idle).
fn stop_after(lp: &EventLoop, count: usize) -> impl Fn(Box<dyn FnOnce()>) -> Box<dyn FnOnce()> {
    let remaining = Rc::new(Cell::new(count));
    let lp = lp.clone();
    move |callback| {
        let remaining = remaining.clone();
        let lp = lp.clone();
        Box::new(move || {
            callback();
            remaining.set(remaining.get() - 1);
            if remaining.get() == 0 {
                lp.stop();
            }
        })
    }
}

#[test]
fn call_soon_runs_in_fifo_order_exactly_once() {
    let lp = EventLoop::new().unwrap();
    let n = 100_000;
    let seen = Rc::new(RefCell::new(Vec::with_capacity(n)));
    for i in 0..n {
        let seen = seen.clone();
        lp.call_soon(move || seen.borrow_mut().push(i)).unwrap();
    }
    lp.stop();
    lp.run_forever().unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), n);
    assert!(seen.iter().copied().eq(0..n));
}

#[test]
fn cancel_before_run_never_runs_and_drops_the_capture() {
    let lp = EventLoop::new().unwrap();
    let capture = Rc::new(());
    let ran = Rc::new(Cell::new(false));
    let handle = lp
        .call_soon({
            let capture = capture.clone();
            let ran = ran.clone();
            move || {
                drop(capture);
                ran.set(true);
            }
        })
        .unwrap();
    handle.cancel();
    assert_eq!(Rc::strong_count(&capture), 1);
    lp.stop();
    lp.run_forever().unwrap();
    assert!(!ran.get());
    assert!(handle.cancelled());
}

#[test]
fn timers_fire_in_deadline_order_never_early() {
    let lp = virtual_loop();
    let t0 = lp.time();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let counted = stop_after(&lp, 5);
    for ms in [30u64, 10, 20, 0, 50] {
        let fired = fired.clone();
        let lp2 = lp.clone();
        lp.call_later(
            Duration::from_millis(ms),
            counted(Box::new(move || {
                fired.borrow_mut().push((ms, lp2.time() - t0));
            })),
        )
        .unwrap();
    }
    lp.run_forever().unwrap();
    let fired = fired.borrow();
    let order: Vec<u64> = fired.iter().map(|(ms, _)| *ms).collect();
    assert_eq!(order, [0, 10, 20, 30, 50]);
    for (ms, at) in fired.iter() {
        // A virtual clock jumps exactly to each deadline: never early, never late.
        assert_eq!(*at, Duration::from_millis(*ms));
    }
}

#[test]
fn real_clock_timers_are_never_early() {
    let lp = EventLoop::new().unwrap();
    let delay = Duration::from_millis(20);
    let scheduled = lp.time();
    let fired_at = Rc::new(Cell::new(None));
    let stopper = lp.clone();
    let slot = fired_at.clone();
    lp.call_later(delay, move || {
        slot.set(Some(Instant::now()));
        stopper.stop();
    })
    .unwrap();
    lp.run_forever().unwrap();
    let fired_at = fired_at.get().expect("the timer fired");
    assert!(fired_at - scheduled >= delay);
}

#[test]
fn overdue_timers_fire_immediately_in_deadline_order() {
    let lp = virtual_loop();
    let log = log();
    let now = lp.time();
    // asyncio: call_later(-1, 'a'); call_later(-2, 'b') runs ['b', 'a'].
    lp.call_at(now - Duration::from_secs(1), push(&log, "a"))
        .unwrap();
    lp.call_at(now - Duration::from_secs(2), push(&log, "b"))
        .unwrap();
    lp.run_once().unwrap();
    assert_eq!(*log.borrow(), ["b", "a"]);
    assert_eq!(lp.time(), now, "overdue timers need no clock jump");
}

#[test]
fn equal_deadlines_fire_in_scheduling_order() {
    let lp = virtual_loop();
    let when = lp.time() + Duration::from_millis(5);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let counted = stop_after(&lp, 12);
    for i in 0..12 {
        let seen = seen.clone();
        lp.call_at(when, counted(Box::new(move || seen.borrow_mut().push(i))))
            .unwrap();
    }
    lp.run_forever().unwrap();
    assert_eq!(*seen.borrow(), (0..12).collect::<Vec<_>>());
}

#[test]
fn cancelled_timer_churn_keeps_the_heap_small() {
    let lp = virtual_loop();
    let keep = lp.call_later(Duration::from_secs(3600), || ()).unwrap();
    let mut max = 0;
    for i in 0..1_000_000u32 {
        let t = lp
            .call_later(Duration::from_millis(u64::from(i % 1000) + 1), || ())
            .unwrap();
        t.cancel();
        if i % 1000 == 0 {
            lp.stop();
            lp.run_forever().unwrap(); // one iteration: runs the clean-up
        }
        max = max.max(lp.timer_count());
    }
    lp.stop();
    lp.run_forever().unwrap();
    assert!(max <= 2_100, "heap grew to {max}");
    assert!(lp.timer_count() <= 200, "heap ends at {}", lp.timer_count());
    assert!(!keep.cancelled());
}

/// asyncio B2's probe: `a` calls stop() and call_soon(c), with `b` queued after `a`: the batch
/// finishes (`b` runs), `c` waits for the next run.
#[test]
fn stop_in_the_middle_of_a_batch_finishes_the_batch() {
    let lp = EventLoop::new().unwrap();
    let log = log();
    let (lp2, log2) = (lp.clone(), log.clone());
    lp.call_soon(move || {
        log2.borrow_mut().push("a".into());
        lp2.stop();
        lp2.call_soon(push(&log2, "c")).unwrap();
    })
    .unwrap();
    lp.call_soon(push(&log, "b")).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*log.borrow(), ["a", "b"]);
    assert_eq!(lp.ready_len(), 1);
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(*log.borrow(), ["a", "b", "c"]);
}

#[test]
fn stop_before_run_runs_exactly_one_iteration() {
    let lp = EventLoop::new().unwrap();
    let log = log();
    let lp2 = lp.clone();
    let log2 = log.clone();
    lp.call_soon(move || {
        log2.borrow_mut().push("first".into());
        lp2.call_soon(push(&log2, "second")).unwrap();
    })
    .unwrap();
    lp.stop();
    let before = lp.iteration_count();
    lp.run_forever().unwrap();
    assert_eq!(lp.iteration_count() - before, 1);
    assert_eq!(*log.borrow(), ["first"]);
    assert!(!lp.is_running());
}

#[test]
fn close_while_running_is_an_error() {
    let lp = EventLoop::new().unwrap();
    let result = Rc::new(Cell::new(None));
    let (lp2, slot) = (lp.clone(), result.clone());
    lp.call_soon(move || {
        slot.set(Some(lp2.close()));
        lp2.stop();
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(result.get(), Some(Err(LoopError::CloseRunning)));
    assert_eq!(
        LoopError::CloseRunning.to_string(),
        "Cannot close a running event loop"
    );
    assert!(!lp.is_closed());
    lp.close().unwrap();
}

#[test]
fn every_call_on_a_closed_loop_is_an_error() {
    let lp = EventLoop::new().unwrap();
    let capture = Rc::new(());
    let pending = capture.clone();
    lp.call_soon(move || drop(pending)).unwrap();
    let timer_capture = capture.clone();
    let timer = lp
        .call_later(Duration::from_secs(1), move || drop(timer_capture))
        .unwrap();
    let remote = lp.remote();
    lp.close().unwrap();
    assert_eq!(Rc::strong_count(&capture), 1, "pending callbacks dropped");
    assert!(!timer.cancelled());
    lp.close().unwrap(); // idempotent
    assert!(lp.is_closed());
    assert_eq!(lp.call_soon(|| ()).unwrap_err(), LoopError::Closed);
    assert_eq!(
        lp.call_later(Duration::ZERO, || ()).unwrap_err(),
        LoopError::Closed
    );
    assert_eq!(lp.call_at(lp.time(), || ()).unwrap_err(), LoopError::Closed);
    assert_eq!(lp.run_forever().unwrap_err(), LoopError::Closed);
    assert_eq!(lp.run_once().unwrap_err(), LoopError::Closed);
    assert_eq!(
        remote.call_soon_threadsafe(|| ()).unwrap_err(),
        LoopError::Closed
    );
    assert_eq!(remote.stop().unwrap_err(), LoopError::Closed);
    assert!(remote.is_closed());
    assert_eq!(LoopError::Closed.to_string(), "Event loop is closed");
}

#[test]
fn dropping_the_last_loop_handle_closes_the_remote_side() {
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    drop(lp);
    assert_eq!(
        remote.call_soon_threadsafe(|| ()).unwrap_err(),
        LoopError::Closed
    );
}

#[test]
fn threadsafe_calls_from_8_threads_all_run_exactly_once() {
    let lp = EventLoop::new().unwrap();
    let threads = 8;
    let per_thread = 10_000;
    let counts: Arc<Vec<AtomicUsize>> = Arc::new(
        (0..threads * per_thread)
            .map(|_| AtomicUsize::new(0))
            .collect(),
    );
    let done = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..threads)
        .map(|t| {
            let remote = lp.remote();
            let counts = counts.clone();
            let done = done.clone();
            thread::spawn(move || {
                for i in 0..per_thread {
                    let counts = counts.clone();
                    let done = done.clone();
                    remote
                        .call_soon_threadsafe(move || {
                            counts[t * per_thread + i].fetch_add(1, Ordering::Relaxed);
                            done.fetch_add(1, Ordering::Relaxed);
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    let probe = done.clone();
    let total = threads * per_thread;
    // The loop blocks in the reactor between bursts; every wake-up it needs must arrive.
    let stopper = lp.clone();
    let check = Rc::new(RefCell::new(None::<Box<dyn Fn()>>));
    let check2 = check.clone();
    *check.borrow_mut() = Some(Box::new(move || {
        if probe.load(Ordering::Relaxed) == total {
            stopper.stop();
        } else {
            let again = check2.clone();
            stopper
                .call_later(Duration::from_millis(1), move || {
                    (again.borrow().as_ref().unwrap())()
                })
                .unwrap();
        }
    }));
    let first = check.clone();
    lp.call_soon(move || (first.borrow().as_ref().unwrap())())
        .unwrap();
    lp.run_forever().unwrap();
    check.borrow_mut().take();
    for p in producers {
        p.join().unwrap();
    }
    assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
}

#[test]
fn a_blocked_loop_wakes_promptly_for_a_threadsafe_call() {
    let lp = EventLoop::new().unwrap();
    // Nothing to do for an hour: the loop blocks in epoll.
    lp.call_later(Duration::from_secs(3600), || ()).unwrap();
    let remote = lp.remote();
    let sent = Arc::new(std::sync::Mutex::new(None));
    let sent2 = sent.clone();
    let producer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        *sent2.lock().unwrap() = Some(Instant::now());
        let stopper = remote.clone();
        remote
            .call_soon_threadsafe(move || stopper.stop().unwrap())
            .unwrap();
    });
    lp.run_forever().unwrap();
    let woke = Instant::now();
    producer.join().unwrap();
    let sent = sent.lock().unwrap().expect("sent");
    // Generous: a wake-up takes microseconds; this only proves the loop did not sleep on.
    assert!(woke - sent < Duration::from_secs(5));
}

#[test]
fn remote_stop_stops_a_blocked_loop() {
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    let stopper = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        remote.stop().unwrap();
    });
    lp.run_forever().unwrap();
    stopper.join().unwrap();
    assert!(!lp.is_running());
}

#[test]
fn a_panicking_callback_reaches_the_handler_and_the_loop_continues() {
    let lp = EventLoop::new().unwrap();
    let reports = record_reports!(lp, evloop_reactor);
    let log = log();
    lp.call_soon(|| panic!("nope")).unwrap();
    lp.call_soon(push(&log, "after")).unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(*log.borrow(), ["after"]);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1);
    let message = &reports[0].message;
    assert!(message.starts_with("Exception in callback "), "{message}");
    assert!(message.contains("engine.rs"), "{message}");
    assert_eq!(reports[0].exception.as_deref(), Some("panic: nope"));
    assert!(reports[0].handle);
}

#[test]
fn exception_handler_can_be_read_back_and_removed() {
    let lp = EventLoop::new().unwrap();
    assert!(lp.exception_handler().is_none());
    lp.set_exception_handler(Some(Rc::new(|_: &EventLoop, _: &ExceptionContext| {})));
    assert!(lp.exception_handler().is_some());
    lp.set_exception_handler(None);
    assert!(lp.exception_handler().is_none());
}

/// Runs one test of this binary in a child process (so it can own stderr) and returns its
/// stderr.
fn child_stderr(test: &str) -> String {
    let out = child_command(test).output().unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn child_panicking_handler() {
    if !is_child() {
        return;
    }
    let lp = EventLoop::new().unwrap();
    lp.set_exception_handler(Some(Rc::new(|_: &EventLoop, _: &ExceptionContext| {
        panic!("handler broke")
    })));
    lp.call_soon(|| panic!("original failure")).unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    eprintln!("LOOP SURVIVED");
}

#[test]
fn a_panicking_handler_falls_back_to_the_default_handler() {
    let stderr = child_stderr("child_panicking_handler");
    let report = stderr
        .split_once("Unhandled error in exception handler")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no fallback report in:\n{stderr}"));
    assert!(report.contains("panic: handler broke"), "{stderr}");
    assert!(report.contains("Exception in callback"), "{stderr}");
    assert!(report.contains("panic: original failure"), "{stderr}");
    assert!(stderr.contains("LOOP SURVIVED"), "{stderr}");
}

#[test]
fn child_default_handler() {
    if !is_child() {
        return;
    }
    let lp = EventLoop::new().unwrap();
    lp.call_soon(|| panic!("zero division")).unwrap();
    lp.stop();
    lp.run_forever().unwrap();
}

#[test]
fn the_default_handler_writes_one_readable_report() {
    let stderr = child_stderr("child_default_handler");
    let start = stderr
        .find("Exception in callback ")
        .unwrap_or_else(|| panic!("no report in:\n{stderr}"));
    let report: Vec<&str> = stderr[start..].lines().take(3).collect();
    assert!(report[0].contains("engine.rs"), "{report:?}");
    assert!(report[1].starts_with("handle: <Handle "), "{report:?}");
    assert_eq!(report[2], "panic: zero division");
}

#[test]
fn two_loops_on_one_thread_cannot_nest() {
    let outer = EventLoop::new().unwrap();
    let inner = EventLoop::new().unwrap();
    let results = Rc::new(RefCell::new(Vec::new()));
    let (o, i, r) = (outer.clone(), inner.clone(), results.clone());
    outer
        .call_soon(move || {
            r.borrow_mut().push(i.run_forever());
            r.borrow_mut().push(i.run_once());
            r.borrow_mut().push(o.run_forever());
            o.stop();
        })
        .unwrap();
    outer.run_forever().unwrap();
    assert_eq!(
        *results.borrow(),
        [
            Err(LoopError::AnotherLoopRunning),
            Err(LoopError::AnotherLoopRunning),
            Err(LoopError::AlreadyRunning),
        ]
    );
    assert_eq!(
        LoopError::AnotherLoopRunning.to_string(),
        "Cannot run the event loop while another loop is running"
    );
    assert_eq!(
        LoopError::AlreadyRunning.to_string(),
        "This event loop is already running"
    );
    // Sequential use is fine.
    inner.stop();
    inner.run_forever().unwrap();
}

#[test]
fn running_loop_is_visible_only_while_running() {
    let lp = EventLoop::new().unwrap();
    assert!(evloop_reactor::get_running_loop().ok().is_none());
    assert_eq!(EventLoop::running_id(), 0);
    let seen = Rc::new(Cell::new(false));
    let (lp2, seen2) = (lp.clone(), seen.clone());
    lp.call_soon(move || {
        let running = evloop_reactor::get_running_loop().ok().unwrap();
        seen2.set(running.ptr_eq(&lp2) && EventLoop::running_id() == lp2.id());
        assert!(lp2.is_running());
    })
    .unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert!(seen.get());
    assert!(evloop_reactor::get_running_loop().ok().is_none());
    assert!(!lp.is_running());
}

#[test]
fn debug_mode_reports_slow_callbacks() {
    let lp = EventLoop::new().unwrap();
    lp.set_debug(true);
    lp.set_slow_callback_duration(Duration::from_millis(20));
    let reports = record_reports!(lp, evloop_reactor);
    lp.call_soon(|| thread::sleep(Duration::from_millis(30)))
        .unwrap();
    lp.call_soon(|| ()).unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    let reports: Vec<String> = reports.borrow().iter().map(|r| r.message.clone()).collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].starts_with("Executing <Handle "),
        "{}",
        reports[0]
    );
    assert!(reports[0].ends_with(" seconds"), "{}", reports[0]);
    lp.set_debug(false);
    assert!(!lp.get_debug());
}

/// asyncio's test_timeout_rounding: tiny delays must not make the loop spin.
#[test]
fn tiny_timeouts_do_not_spin() {
    let lp = EventLoop::new().unwrap();
    let remaining = Rc::new(Cell::new(5));
    for exp in [2, 4, 6, 8, 10] {
        let remaining = remaining.clone();
        let stopper = lp.clone();
        lp.call_later(Duration::from_secs_f64(10f64.powi(-exp)), move || {
            remaining.set(remaining.get() - 1);
            if remaining.get() == 0 {
                stopper.stop();
            }
        })
        .unwrap();
    }
    let before = lp.iteration_count();
    lp.run_forever().unwrap();
    let iterations = lp.iteration_count() - before;
    assert!(iterations <= 20, "{iterations} iterations");
}

#[test]
fn virtual_clock_jumps_to_the_next_deadline() {
    let lp = virtual_loop();
    let start = lp.time();
    let started = Instant::now();
    let stopper = lp.clone();
    lp.call_later(Duration::from_secs(3600), move || stopper.stop())
        .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(lp.time() - start, Duration::from_secs(3600));
    assert!(started.elapsed() < Duration::from_secs(60), "no real hour");
    lp.advance_clock(Duration::from_secs(1));
    assert_eq!(lp.time() - start, Duration::from_secs(3601));
}

#[test]
fn a_clock_hold_keeps_virtual_time_from_jumping() {
    let lp = virtual_loop();
    let start = lp.time();
    let remote = lp.remote();
    let hold = remote.hold_clock();
    let fired = Rc::new(Cell::new(false));
    let (stopper, fired2) = (lp.clone(), fired.clone());
    lp.call_later(Duration::from_secs(10), move || {
        fired2.set(true);
        stopper.stop();
    })
    .unwrap();
    // Outside work finishes (in real time) before the virtual deadline would have been reached.
    let worker = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        let stopper = remote.clone();
        remote
            .call_soon_threadsafe(move || stopper.stop().unwrap())
            .unwrap();
        drop(hold);
    });
    lp.run_forever().unwrap();
    worker.join().unwrap();
    assert!(!fired.get(), "the held clock did not jump to the timer");
    assert_eq!(lp.time(), start);
    // Released: the clock jumps again.
    lp.run_forever().unwrap();
    assert!(fired.get());
}
