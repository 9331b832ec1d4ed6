//! Loop faults: a loop dropped unclosed while its callbacks hold it, destructors that panic
//! during `close()`, and a reactor whose every poll fails.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use evloop_reactor::{EventLoop, LoopError};
use evloop_test_support::{DropFlag, in_child, open_fds, record_reports};

/// The messages of every report the loop's exception handler gets.
/// A timer, a ready callback and a signal handler each hold a clone of the loop: a reference
/// cycle. Dropping the loop's owner without `close()` must still free it: its epoll fd, eventfd
/// and signal pipe close, and the callbacks are dropped.
#[test]
fn an_unclosed_loop_whose_callbacks_hold_it_is_freed_when_dropped() {
    if in_child("an_unclosed_loop_whose_callbacks_hold_it_is_freed_when_dropped") {
        return;
    }
    let baseline = open_fds();
    let lp = EventLoop::new().unwrap();
    let (l1, l2, l3) = (lp.clone(), lp.clone(), lp.clone());
    let (dropped, flag) = DropFlag::new();
    lp.call_later(Duration::from_secs(3600), move || {
        let _ = &flag;
        l1.stop();
    })
    .unwrap();
    lp.call_soon(move || l2.stop()).unwrap();
    lp.add_signal_handler(libc::SIGUSR1, move || l3.stop())
        .unwrap();
    assert_ne!(open_fds(), baseline);
    drop(lp);
    assert!(dropped.get(), "the timer's callback was dropped");
    assert_eq!(open_fds(), baseline, "every fd of the loop is closed");
}

#[test]
fn clones_made_before_the_owner_is_dropped_find_the_loop_closed() {
    let lp = EventLoop::new().unwrap();
    let handle = lp.clone();
    drop(handle.clone()); // dropping a clone changes nothing
    assert!(!lp.is_closed());
    drop(lp);
    assert!(handle.is_closed());
    assert_eq!(handle.call_soon(|| ()).unwrap_err(), LoopError::Closed);
}

/// The owner, moved into a callback and dropped there while the loop runs: the loop finishes
/// its run and closes when the run ends.
#[test]
fn an_owner_dropped_while_the_loop_runs_closes_it_after_the_run() {
    let lp = EventLoop::new().unwrap();
    let handle = lp.clone();
    let stopper = lp.clone();
    handle
        .call_soon(move || {
            drop(lp);
            // Still running: scheduling works until the run ends.
            stopper.call_soon(|| ()).expect("open while running");
            stopper.stop();
        })
        .unwrap();
    handle.run_forever().unwrap();
    assert!(handle.is_closed());
}

struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// Destructors that panic while `close()` drops pending callbacks are caught and reported; the
/// close still drops everything else, deregisters every source and runs every hook, and a
/// second close has nothing left to do.
#[test]
fn close_finishes_even_when_destructors_panic() {
    let lp = EventLoop::new().unwrap();
    let reports = record_reports!(lp, evloop_reactor);
    let (a, b) = (PanicOnDrop("ready boom"), PanicOnDrop("timer boom"));
    lp.call_soon(move || drop(a)).unwrap();
    lp.call_later(Duration::from_secs(60), move || drop(b))
        .unwrap();
    let (later, flag) = DropFlag::new();
    lp.call_soon(move || drop(flag)).unwrap();
    let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
    let panicky = PanicOnDrop("reader boom");
    lp.add_reader(std::os::fd::AsRawFd::as_raw_fd(&r), move || {
        let _ = &panicky;
    })
    .unwrap();
    assert!(lp.io_source_count() > 0);
    let hook_ran = Rc::new(Cell::new(false));
    let hook = hook_ran.clone();
    lp.on_close(move || hook.set(true));

    lp.close().unwrap();
    assert!(
        later.get(),
        "the callback after the panicking one was dropped too"
    );
    assert!(hook_ran.get(), "the close hook ran");
    assert_eq!(lp.io_source_count(), 0, "no source left registered");
    let got: Vec<String> = reports.borrow().iter().map(|r| r.message.clone()).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.iter()
            .all(|m| m.starts_with("Exception in the destructor of")),
        "{got:?}"
    );
    lp.close().unwrap();
    assert_eq!(
        reports.borrow().len(),
        3,
        "a second close has nothing to report"
    );
}

/// An epoll fd that stops being one (here: replaced by /dev/null, so every `epoll_wait` fails with
/// EINVAL): each failure is reported, and after a bounded number `run_forever` gives up with
/// the error instead of spinning.
#[test]
fn a_persistently_failing_reactor_stops_run_forever_with_an_error() {
    if in_child("a_persistently_failing_reactor_stops_run_forever_with_an_error") {
        return;
    }
    let is_epoll = |fd: &i32| {
        std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .is_ok_and(|target| target.to_string_lossy() == "anon_inode:[eventpoll]")
    };
    let fds = || open_fds().into_iter().map(|fd| fd.parse::<i32>().unwrap());
    assert_eq!(
        fds().filter(is_epoll).count(),
        0,
        "this test process has no epoll yet"
    );
    let lp = EventLoop::new().unwrap();
    let reports = record_reports!(lp, evloop_reactor);
    let epoll_fd = fds().find(is_epoll).expect("the loop's epoll fd");
    let null = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: dup2 onto an fd this process owns (the loop's epoll fd, which mio keeps using).
    let rc = unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), epoll_fd) };
    assert_eq!(rc, epoll_fd);
    let err = lp.run_forever().unwrap_err();
    assert_eq!(err, LoopError::ReactorFailed(libc::EINVAL));
    assert!(
        err.to_string()
            .starts_with("polling the reactor keeps failing: "),
        "{err}"
    );
    let got: Vec<String> = reports.borrow().iter().map(|r| r.message.clone()).collect();
    assert_eq!(got.len(), 10, "{got:?}");
    assert!(got.iter().all(|m| m == "Error polling the reactor"));
}
