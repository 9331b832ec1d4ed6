//! Fairness: however much callback work floods the loop, from its own thread or from others,
//! I/O readiness and due timers are still served (asyncio polls once per iteration; evloop may
//! skip a poll, on a loop that watches no I/O source, when only other threads' work is waiting or
//! right after another thread woke it, but never for long). The skip does what it is for (a
//! cross-thread round trip polls once) and nothing else: every run polls first, and a loop that
//! watches a socket keeps asyncio's order.

use std::cell::Cell;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use evloop_reactor::{EventLoop, RemoteHandle, get_running_loop};

/// A flood runs this many callbacks at most; a starved reader or timer fails the test there.
/// Each callback takes well over 100 ns, so the cap is far beyond any poll window.
const CAP: u64 = 2_000_000;

struct Flood {
    count: AtomicU64,
    done: AtomicBool,
}

/// One callback per iteration, each queuing the next through the thread-safe queue: at every
/// poll the ready queue is empty and only "other threads'" work is waiting.
fn threadsafe_flood(remote: RemoteHandle, flood: Arc<Flood>) {
    if flood.count.fetch_add(1, Ordering::Relaxed) < CAP && !flood.done.load(Ordering::Relaxed) {
        let again = remote.clone();
        remote
            .call_soon_threadsafe(move || threadsafe_flood(again, flood))
            .unwrap();
    }
}

fn call_soon_flood(lp: EventLoop, flood: Arc<Flood>) {
    if flood.count.fetch_add(1, Ordering::Relaxed) < CAP && !flood.done.load(Ordering::Relaxed) {
        let again = lp.clone();
        lp.call_soon(move || call_soon_flood(again, flood)).unwrap();
    }
}

/// Starts `start_flood`, then waits for a readable socket's callback and a 1 ms timer; returns
/// how many flood callbacks ran before each was served.
fn served_under(start_flood: impl FnOnce(&EventLoop, Arc<Flood>)) -> (u64, u64) {
    let lp = EventLoop::new().unwrap();
    let flood = Arc::new(Flood {
        count: AtomicU64::new(0),
        done: AtomicBool::new(false),
    });
    let (reader, mut writer) = UnixStream::pair().unwrap();
    let io_at = Rc::new(Cell::new(None));
    let timer_at = Rc::new(Cell::new(None));
    let finish = {
        let (lp, flood, io_at, timer_at) =
            (lp.clone(), flood.clone(), io_at.clone(), timer_at.clone());
        move || {
            if io_at.get().is_some() && timer_at.get().is_some() {
                flood.done.store(true, Ordering::Relaxed);
                lp.stop();
            }
        }
    };
    start_flood(&lp, flood.clone());
    // Let the flood get going before the I/O and the timer exist.
    for _ in 0..10 {
        lp.run_once().unwrap();
    }
    let fd = reader.as_raw_fd();
    lp.add_reader(fd, {
        let (lp, flood, io_at, finish) = (lp.clone(), flood.clone(), io_at.clone(), finish.clone());
        move || {
            io_at.set(Some(flood.count.load(Ordering::Relaxed)));
            assert!(lp.remove_reader(fd));
            finish();
        }
    })
    .unwrap();
    writer.write_all(b"ping").unwrap();
    lp.call_later(Duration::from_millis(1), {
        let (flood, timer_at) = (flood.clone(), timer_at.clone());
        move || {
            timer_at.set(Some(flood.count.load(Ordering::Relaxed)));
            finish();
        }
    })
    .unwrap();
    let stopper = lp.clone();
    let watchdog = flood.clone();
    // Should the flood reach its cap unserved, it ends and the loop would idle: stop it then.
    lp.call_later(Duration::from_secs(30), move || {
        watchdog.done.store(true, Ordering::Relaxed);
        stopper.stop();
    })
    .unwrap();
    lp.run_forever().unwrap();
    let served = (
        io_at.get().expect("the reader was starved"),
        timer_at.get().expect("the timer was starved"),
    );
    lp.close().unwrap();
    served
}

#[test]
fn io_and_timers_are_served_under_a_flood_of_threadsafe_work() {
    let (io_at, timer_at) = served_under(|lp, flood| threadsafe_flood(lp.remote(), flood));
    assert!(
        io_at < CAP && timer_at < CAP,
        "io at {io_at}, timer at {timer_at}"
    );
}

#[test]
fn io_and_timers_are_served_under_a_flood_of_call_soon_work() {
    let (io_at, timer_at) = served_under(|lp, flood| call_soon_flood(lp.clone(), flood));
    assert!(
        io_at < CAP && timer_at < CAP,
        "io at {io_at}, timer at {timer_at}"
    );
}

/// Work from a real foreign thread, as fast as it can send it, does not starve the loop's I/O.
#[test]
fn io_is_served_while_another_thread_floods_the_loop() {
    let stop = Arc::new(AtomicBool::new(false));
    let (io_at, timer_at) = served_under(|lp, flood| {
        let remote = lp.remote();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) && !flood.done.load(Ordering::Relaxed) {
                // A continuous stream, but a bounded backlog: the loop is never idle, and an
                // iteration's batch stays small.
                if sent - flood.count.load(Ordering::Relaxed) > 1_000 {
                    std::thread::yield_now();
                    continue;
                }
                sent += 1;
                let flood = flood.clone();
                if remote
                    .call_soon_threadsafe(move || {
                        flood.count.fetch_add(1, Ordering::Relaxed);
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
    });
    stop.store(true, Ordering::Relaxed);
    assert!(io_at < u64::MAX && timer_at < u64::MAX);
}

/// A wake-up from another thread whose callback starts an endless `call_soon` chain: the
/// iterations right after the wake-up may skip their polls, but I/O and timers are still served.
#[test]
fn io_and_timers_are_served_under_a_call_soon_flood_started_by_another_thread() {
    let (io_at, timer_at) = served_under(|lp, flood| {
        let remote = lp.remote();
        std::thread::spawn(move || {
            remote
                .call_soon_threadsafe(move || {
                    let lp = get_running_loop().expect("on the loop");
                    call_soon_flood(lp, flood);
                })
                .unwrap();
        });
    });
    assert!(
        io_at < CAP && timer_at < CAP,
        "io at {io_at}, timer at {timer_at}"
    );
}

/// The asyncio shape of a round trip: the loop asks a thread, the thread answers with
/// `call_soon_threadsafe`, and the answer schedules the next question with `call_soon`. The
/// iteration that runs the `call_soon` follows the wake-up at once, so it skips its poll and the
/// trip costs the one blocking poll. (The bound is generous: a trip preempted for longer than the
/// window polls twice.)
#[test]
fn a_cross_thread_round_trip_polls_once() {
    const TRIPS: u64 = 300;
    let lp = EventLoop::new().unwrap();
    let (ask, questions) = mpsc::channel::<u64>();
    let remote = lp.remote();
    let answerer = std::thread::spawn(move || {
        for trip in questions {
            remote
                .call_soon_threadsafe(move || {
                    let lp = get_running_loop().expect("on the loop");
                    lp.call_soon(move || next_question(trip + 1)).unwrap();
                })
                .unwrap();
        }
    });
    thread_local! {
        static ASK: std::cell::RefCell<Option<mpsc::Sender<u64>>> = const { std::cell::RefCell::new(None) };
    }
    fn next_question(trip: u64) {
        if trip == TRIPS {
            ASK.with(|ask| ask.borrow_mut().take());
            get_running_loop().unwrap().stop();
        } else {
            ASK.with(|ask| ask.borrow().as_ref().unwrap().send(trip).unwrap());
        }
    }
    ASK.with(|slot| *slot.borrow_mut() = Some(ask));
    lp.call_soon(|| next_question(0)).unwrap();
    lp.run_forever().unwrap();
    answerer.join().unwrap();
    let polls = lp.poll_count();
    assert!(
        polls < TRIPS * 3 / 2,
        "{polls} polls for {TRIPS} round trips (asyncio's order would poll twice per trip)"
    );
    lp.close().unwrap();
}

/// Sends `callback` from another thread once the loop thread (this one) blocks in epoll_wait
/// (syscall 232 on x86_64), so that the loop's poll ends with the wake-up alone.
#[cfg(target_arch = "x86_64")]
fn send_once_blocked(
    remote: RemoteHandle,
    callback: impl FnOnce() + Send + 'static,
) -> std::thread::JoinHandle<()> {
    // SAFETY: gettid has no preconditions.
    let loop_thread = unsafe { libc::gettid() };
    std::thread::spawn(move || {
        let syscall = format!("/proc/self/task/{loop_thread}/syscall");
        evloop_test_support::eventually("the loop blocks in epoll_wait", || {
            std::fs::read_to_string(&syscall).is_ok_and(|s| s.starts_with("232 "))
        });
        remote.call_soon_threadsafe(callback).unwrap();
    })
}

/// After another thread's wake-up the next run still polls before it runs ready work, as
/// asyncio's `run_once` does, even on a loop that watches nothing. (Were a run to skip its poll
/// inside the window, this fails when the two runs follow each other within it, which they do
/// in an optimized build; an unoptimized one may be too slow to show it.)
#[cfg(target_arch = "x86_64")]
#[test]
fn a_run_right_after_a_wake_up_still_polls_first() {
    let lp = EventLoop::new().unwrap();
    let waker = send_once_blocked(lp.remote(), || {
        get_running_loop().unwrap().call_soon(|| ()).unwrap();
    });
    // The blocking poll ends with the wake-up alone; its callback leaves work ready.
    lp.run_once().unwrap();
    assert_eq!(lp.ready_len(), 1);
    let polls = lp.poll_count();
    lp.run_once().unwrap();
    assert_eq!(lp.poll_count(), polls + 1, "the second run polled first");
    waker.join().unwrap();
    lp.close().unwrap();
}

/// The same with only other threads' items waiting at the second run: it polls first too.
#[test]
fn a_run_with_only_threadsafe_work_waiting_still_polls_first() {
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    remote.call_soon_threadsafe(|| ()).unwrap();
    lp.run_once().unwrap();
    remote.call_soon_threadsafe(|| ()).unwrap();
    lp.run_once().unwrap();
    assert_eq!(lp.poll_count(), 2, "each run polled first");
    lp.close().unwrap();
}

thread_local! {
    /// The steps the order tests noted, and the steps after which their loop stops.
    static ORDER: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
    static UNTIL: Cell<&'static [&'static str]> = const { Cell::new(&[]) };
}

/// Notes a step; stops the running loop once every step of `UNTIL` has been noted.
fn note(step: &'static str) {
    let done = ORDER.with(|order| {
        let mut order = order.borrow_mut();
        order.push(step);
        UNTIL.get().iter().all(|step| order.contains(step))
    });
    if done {
        get_running_loop().unwrap().stop();
    }
}

/// A loop watching the reading end of a socket pair with a reader that notes "R", and that
/// stops once `until` has been noted; returns the writing end and the watched fd.
fn loop_noting_reads(until: &'static [&'static str]) -> (EventLoop, UnixStream, i32) {
    UNTIL.set(until);
    let lp = EventLoop::new().unwrap();
    let (reader, writer) = UnixStream::pair().unwrap();
    let fd = reader.as_raw_fd();
    lp.add_reader(fd, move || {
        let mut byte = [0u8; 1];
        let _ = std::io::Read::read(&mut &reader, &mut byte);
        note("R");
    })
    .unwrap();
    (lp, writer, fd)
}

/// The noted order begins with `expected`. (The writer is dropped with the callback that wrote,
/// so the reader may run once more, for the end of file.)
fn assert_order_starts(expected: &[&str]) {
    let order = ORDER.with(|order| order.borrow().clone());
    assert_eq!(order[..expected.len()], *expected, "{order:?}");
}

/// A callback writes to a socket the loop watches and, within the window, another thread's item
/// arrives that schedules G: asyncio's poll before that item's batch sees the readiness, so the
/// reader runs before G. (The item is sent from the loop thread itself, after the write, so
/// that it is surely waiting when the batch ends.)
#[cfg(target_arch = "x86_64")]
#[test]
fn io_caused_before_another_threads_item_runs_before_what_the_item_schedules() {
    let (lp, writer, fd) = loop_noting_reads(&["R", "G"]);
    let remote = lp.remote();
    let waker = send_once_blocked(lp.remote(), move || {
        (&writer).write_all(b"x").unwrap();
        note("F");
        remote
            .call_soon_threadsafe(|| {
                note("I");
                get_running_loop().unwrap().call_soon(|| note("G")).unwrap();
            })
            .unwrap();
    });
    lp.run_forever().unwrap();
    waker.join().unwrap();
    assert_order_starts(&["F", "I", "R", "G"]);
    assert!(lp.remove_reader(fd));
    lp.close().unwrap();
}

/// A callback from another thread that writes to a socket the loop watches, then schedules G,
/// which schedules H: asyncio's poll before G's batch sees the readiness, so the reader runs
/// between G and H. Skipping polls after the wake-up must not change that.
#[cfg(target_arch = "x86_64")]
#[test]
fn io_caused_by_another_threads_callback_keeps_asyncios_order() {
    let (lp, writer, fd) = loop_noting_reads(&["R", "H"]);
    let waker = send_once_blocked(lp.remote(), move || {
        (&writer).write_all(b"x").unwrap();
        note("F");
        get_running_loop()
            .unwrap()
            .call_soon(|| {
                note("G");
                get_running_loop().unwrap().call_soon(|| note("H")).unwrap();
            })
            .unwrap();
    });
    lp.run_forever().unwrap();
    waker.join().unwrap();
    assert_order_starts(&["F", "G", "R", "H"]);
    assert!(lp.remove_reader(fd));
    lp.close().unwrap();
}
