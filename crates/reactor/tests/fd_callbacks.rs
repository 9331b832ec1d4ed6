//! asyncio's fd callbacks: add_reader / add_writer on pipes and socketpairs.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use evloop_reactor::EventLoop;

#[test]
fn add_reader_on_a_pipe_is_level_triggered() {
    let lp = EventLoop::new().unwrap();
    let (reader, mut writer) = std::io::pipe().unwrap();
    let fd = reader.as_raw_fd();
    writer.write_all(b"0123456789").unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let (g, l) = (got.clone(), lp.clone());
    let mut reader = reader;
    // One byte per call: the callback must be called again while data remains (asyncio's
    // selectors are level-triggered; mio alone would report the edge once).
    lp.add_reader(fd, move || {
        let mut byte = [0u8; 1];
        assert_eq!(reader.read(&mut byte).unwrap(), 1);
        g.borrow_mut().push(byte[0]);
        if g.borrow().len() == 10 {
            assert!(l.remove_reader(fd));
            l.stop();
        }
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(&*got.borrow(), b"0123456789");
    assert_eq!(lp.io_source_count(), 0, "the registration is gone");
}

#[test]
fn add_writer_on_a_socketpair_keeps_firing_while_writable() {
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let fd = a.as_raw_fd();
    let calls = Rc::new(Cell::new(0));
    let (c, l) = (calls.clone(), lp.clone());
    lp.add_writer(fd, move || {
        c.set(c.get() + 1);
        (&a).write_all(b"x").unwrap();
        if c.get() == 5 {
            assert!(l.remove_writer(fd));
            l.stop();
        }
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(calls.get(), 5);
    let mut buf = [0u8; 5];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"xxxxx");
}

#[test]
fn reader_and_writer_on_one_socketpair() {
    let lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let fd = a.as_raw_fd();
    let log = Rc::new(RefCell::new(Vec::new()));
    let (lw, l) = (log.clone(), lp.clone());
    lp.add_writer(fd, move || {
        lw.borrow_mut().push("w");
        assert!(l.remove_writer(fd));
        (&b).write_all(b"ping").unwrap();
    })
    .unwrap();
    let (lr, l) = (log.clone(), lp.clone());
    let a2 = a.try_clone().unwrap();
    lp.add_reader(fd, move || {
        let mut buf = [0u8; 4];
        (&a2).read_exact(&mut buf).unwrap();
        lr.borrow_mut().push("r");
        assert!(l.remove_reader(fd));
        l.stop();
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*log.borrow(), ["w", "r"]);
    assert!(!lp.remove_reader(fd));
    assert_eq!(lp.io_source_count(), 0);
}

#[test]
fn a_second_add_reader_replaces_the_callback() {
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let fd = a.as_raw_fd();
    lp.add_reader(fd, || panic!("replaced before it could run"))
        .unwrap();
    let (l, a2) = (lp.clone(), a.try_clone().unwrap());
    let hits = Rc::new(Cell::new(0));
    let h = hits.clone();
    lp.add_reader(fd, move || {
        let mut buf = [0u8; 8];
        let _ = (&a2).read(&mut buf);
        h.set(h.get() + 1);
        l.remove_reader(fd);
        l.stop();
    })
    .unwrap();
    b.write_all(b"go").unwrap();
    lp.run_forever().unwrap();
    assert_eq!(hits.get(), 1);
    assert_eq!(lp.io_source_count(), 0);
}

#[test]
fn removing_a_reader_during_dispatch_cancels_its_queued_call() {
    let lp = EventLoop::new().unwrap();
    let (a, mut a_peer) = UnixStream::pair().unwrap();
    let (b, mut b_peer) = UnixStream::pair().unwrap();
    let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
    a_peer.write_all(b"1").unwrap();
    b_peer.write_all(b"1").unwrap();
    let ran = Rc::new(RefCell::new(Vec::new()));
    // Both fds are ready in the same poll; whichever callback runs first removes the other.
    let (r, l) = (ran.clone(), lp.clone());
    lp.add_reader(fa, move || {
        r.borrow_mut().push("a");
        l.remove_reader(fa);
        l.remove_reader(fb);
    })
    .unwrap();
    let (r, l) = (ran.clone(), lp.clone());
    lp.add_reader(fb, move || {
        r.borrow_mut().push("b");
        l.remove_reader(fa);
        l.remove_reader(fb);
    })
    .unwrap();
    let l = lp.clone();
    lp.call_later(Duration::from_millis(200), move || l.stop())
        .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(
        ran.borrow().len(),
        1,
        "only the first ran: {:?}",
        ran.borrow()
    );
    drop((a, b));
}

#[test]
fn a_panicking_reader_is_reported_and_stays_registered() {
    let lp = EventLoop::new().unwrap();
    let reports = Rc::new(Cell::new(0));
    let r = reports.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_lp: &EventLoop, _ctx: &evloop_reactor::ExceptionContext| r.set(r.get() + 1),
    )));
    let (a, mut b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    b.write_all(b"x").unwrap();
    let calls = Rc::new(Cell::new(0));
    let (c, l) = (calls.clone(), lp.clone());
    lp.add_reader(fd, move || {
        c.set(c.get() + 1);
        if c.get() == 3 {
            l.remove_reader(fd);
            l.stop();
        }
        panic!("reader failed");
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(calls.get(), 3);
    assert_eq!(reports.get(), 3);
    drop(a);
}

#[test]
fn closed_loop_refuses_fd_callbacks() {
    let lp = EventLoop::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    lp.add_reader(fd, || ()).unwrap();
    lp.close().unwrap();
    assert_eq!(lp.io_source_count(), 0, "close drops every registration");
    let err = lp.add_reader(fd, || ()).unwrap_err();
    assert_eq!(err.to_string(), "Event loop is closed");
    assert_eq!(
        lp.add_writer(fd, || ()).unwrap_err().to_string(),
        "Event loop is closed"
    );
    assert!(!lp.remove_reader(fd));
    assert!(!lp.remove_writer(fd));
}

#[test]
fn a_regular_file_cannot_be_watched() {
    let lp = EventLoop::new().unwrap();
    let file = std::fs::File::open("/proc/self/exe").unwrap();
    let err = lp.add_reader(file.as_raw_fd(), || ()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    assert!(!lp.remove_reader(file.as_raw_fd()));
    assert_eq!(lp.io_source_count(), 0);
}
