//! Signal handlers on the loop. Each test that changes a disposition runs in its own process.

use std::cell::Cell;
use std::rc::Rc;

use evloop_reactor::{EventLoop, SignalError};
use evloop_test_support::in_child;

fn disposition(signal: i32) -> libc::sighandler_t {
    // SAFETY: a zeroed sigaction is valid storage for the query.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: querying (null new action) into valid storage.
    let rc = unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0);
    old.sa_sigaction
}

#[test]
fn a_signal_handler_runs_on_the_loop_thread() {
    if in_child("a_signal_handler_runs_on_the_loop_thread") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let loop_thread = std::thread::current().id();
    let hits = Rc::new(Cell::new(0));
    let (h, l) = (hits.clone(), lp.clone());
    lp.add_signal_handler(libc::SIGUSR1, move || {
        assert_eq!(std::thread::current().id(), loop_thread);
        h.set(h.get() + 1);
        l.stop();
    })
    .unwrap();
    // Sent from another thread, to the whole process, while the loop blocks in the reactor.
    let sender = std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        // SAFETY: kill(2) on our own pid.
        unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
    });
    lp.run_forever().unwrap();
    sender.join().unwrap();
    assert_eq!(hits.get(), 1);
}

#[test]
fn remove_signal_handler_restores_the_default() {
    if in_child("remove_signal_handler_restores_the_default") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    assert_eq!(disposition(libc::SIGTERM), libc::SIG_DFL);
    lp.add_signal_handler(libc::SIGTERM, || ()).unwrap();
    assert_ne!(disposition(libc::SIGTERM), libc::SIG_DFL);
    // Replacing keeps it installed.
    lp.add_signal_handler(libc::SIGTERM, || ()).unwrap();
    assert!(lp.remove_signal_handler(libc::SIGTERM));
    assert_eq!(disposition(libc::SIGTERM), libc::SIG_DFL);
    assert!(!lp.remove_signal_handler(libc::SIGTERM));
}

#[test]
fn close_removes_the_signal_handlers() {
    if in_child("close_removes_the_signal_handlers") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    lp.add_signal_handler(libc::SIGHUP, || ()).unwrap();
    lp.close().unwrap();
    assert_eq!(disposition(libc::SIGHUP), libc::SIG_DFL);
    assert!(matches!(
        lp.add_signal_handler(libc::SIGHUP, || ()),
        Err(SignalError::Closed)
    ));
    assert!(!lp.remove_signal_handler(libc::SIGHUP));
}

#[test]
fn bad_signals_get_asyncios_errors() {
    // Nothing is installed by these calls, so no child process is needed.
    let lp = EventLoop::new().unwrap();
    let err = lp.add_signal_handler(libc::SIGKILL, || ()).unwrap_err();
    assert_eq!(err.to_string(), "sig 9 cannot be caught");
    let err = lp.add_signal_handler(libc::SIGSTOP, || ()).unwrap_err();
    assert_eq!(err.to_string(), "sig 19 cannot be caught");
    assert_eq!(
        lp.add_signal_handler(0, || ()).unwrap_err().to_string(),
        "invalid signal number 0"
    );
    assert_eq!(
        lp.add_signal_handler(1000, || ()).unwrap_err().to_string(),
        "invalid signal number 1000"
    );
    assert!(!lp.remove_signal_handler(1000));
    assert!(!lp.remove_signal_handler(libc::SIGKILL));
}

#[test]
fn dropping_an_unclosed_loop_restores_the_default() {
    if in_child("dropping_an_unclosed_loop_restores_the_default") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    lp.add_signal_handler(libc::SIGUSR2, || ()).unwrap();
    drop(lp);
    assert_eq!(disposition(libc::SIGUSR2), libc::SIG_DFL);
}
