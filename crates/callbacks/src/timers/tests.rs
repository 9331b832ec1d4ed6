//! The store's contracts through its public face: asyncio's ordering, never early, lazy
//! cancellation and its size bound.

use super::*;
use std::cell::RefCell;
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type Log = Rc<RefCell<Vec<u32>>>;

fn recorder() -> (Log, impl Fn(u32) -> Box<dyn FnOnce()>) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let make = {
        let log = log.clone();
        move |i: u32| {
            let log = log.clone();
            Box::new(move || log.borrow_mut().push(i)) as Box<dyn FnOnce()>
        }
    };
    (log, make)
}

fn run_due(timers: &mut TimerHeap, end: Instant) {
    timers.clean_up();
    while let Some(h) = timers.pop_due(end) {
        h.run();
    }
}

#[test]
fn fire_in_deadline_order_and_equal_deadlines_in_scheduling_order() {
    let t0 = Instant::now();
    let (log, make) = recorder();
    let mut timers = TimerHeap::new();
    for (i, delay) in [30u64, 10, 20, 10, 0, 20].into_iter().enumerate() {
        timers.schedule(t0 + ms(delay), make(i as u32));
    }
    run_due(&mut timers, t0 + ms(100));
    assert_eq!(*log.borrow(), vec![4, 1, 3, 2, 5, 0]);
}

#[test]
fn deadlines_before_the_heap_existed_keep_their_order_and_exact_value() {
    let first = Instant::now();
    let second = first + Duration::from_nanos(1);
    let third = second + ms(1);
    // The heap's epoch is taken now, after all three deadlines.
    let mut timers = TimerHeap::new();
    let (log, make) = recorder();
    timers.schedule(third, make(3));
    timers.schedule(second, make(2));
    timers.schedule(first, make(1));
    assert_eq!(timers.next_deadline(), Some(first), "to the nanosecond");
    run_due(&mut timers, first + Duration::from_nanos(1));
    assert_eq!(
        *log.borrow(),
        [1],
        "end is exclusive, even a nanosecond apart"
    );
    run_due(&mut timers, Instant::now() + ms(2));
    assert_eq!(*log.borrow(), [1, 2, 3]);
    let far = Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600);
    timers.schedule(far, make(4));
    assert_eq!(timers.next_deadline(), Some(far));
}

#[test]
fn never_early() {
    let t0 = Instant::now();
    let (log, make) = recorder();
    let mut timers = TimerHeap::new();
    timers.schedule(t0 + ms(10), make(1));
    run_due(&mut timers, t0 + ms(10));
    assert!(log.borrow().is_empty(), "end is exclusive: not due yet");
    run_due(&mut timers, t0 + ms(10) + Duration::from_nanos(1));
    assert_eq!(*log.borrow(), vec![1]);
}

#[test]
fn overdue_timers_fire_at_once_in_deadline_order() {
    let t0 = Instant::now() + ms(1000);
    let (log, make) = recorder();
    let mut timers = TimerHeap::new();
    timers.schedule(t0 - ms(1), make(1)); // asyncio's call_later(-1, 'a')
    timers.schedule(t0 - ms(2), make(2)); // call_later(-2, 'b') runs first
    run_due(&mut timers, t0);
    assert_eq!(*log.borrow(), vec![2, 1]);
}

#[test]
fn cancelled_timers_never_fire() {
    let t0 = Instant::now();
    let (log, make) = recorder();
    let mut timers = TimerHeap::new();
    let a = timers.schedule(t0, make(1));
    timers.schedule(t0, make(2));
    a.cancel();
    a.cancel();
    assert_eq!(timers.cancelled_count(), 1);
    run_due(&mut timers, t0 + ms(1));
    assert_eq!(*log.borrow(), vec![2]);
    assert_eq!(timers.cancelled_count(), 0);
}

#[test]
fn cancelling_a_fired_timer_is_not_counted() {
    let t0 = Instant::now();
    let mut timers = TimerHeap::new();
    let a = timers.schedule(t0, || ());
    run_due(&mut timers, t0 + ms(1));
    a.cancel();
    assert_eq!(timers.cancelled_count(), 0);
}

/// asyncio's probe: 200 timers, 101 cancelled: one iteration leaves 99 and a zero count.
#[test]
fn rebuilds_when_more_than_half_of_over_100_are_cancelled() {
    let t0 = Instant::now();
    let mut timers = TimerHeap::new();
    let handles: Vec<_> = (0..200)
        .map(|i| timers.schedule(t0 + ms(i), || ()))
        .collect();
    // Cancel from the far end so that head-popping alone could not remove them.
    for h in handles.iter().rev().take(101) {
        h.cancel();
    }
    timers.clean_up();
    assert_eq!(timers.len(), 99);
    assert_eq!(timers.cancelled_count(), 0);
}

#[test]
fn pops_only_the_head_below_the_rebuild_threshold() {
    let t0 = Instant::now();
    let mut timers = TimerHeap::new();
    let handles: Vec<_> = (0..50)
        .map(|i| timers.schedule(t0 + ms(i), || ()))
        .collect();
    handles[0].cancel();
    handles[1].cancel();
    handles[40].cancel();
    timers.clean_up();
    assert_eq!(
        timers.len(),
        48,
        "the two at the head went, the one inside stays"
    );
    assert_eq!(timers.cancelled_count(), 1);
    assert_eq!(timers.next_deadline(), Some(t0 + ms(2)));
}

#[test]
fn clean_up_bounds_memory_under_schedule_and_cancel_churn() {
    let n = if cfg!(miri) { 5_000 } else { 1_000_000 };
    let t0 = Instant::now();
    let mut timers = TimerHeap::new();
    // A far-future live timer keeps head-popping from doing the work: only the rebuild rule
    // can bound the heap.
    let _anchor = timers.schedule(t0, || ());
    let mut max_len = 0;
    for i in 0..n {
        let t = timers.schedule(t0 + ms(1 + i % 1000), || ());
        t.cancel();
        if i % 64 == 0 {
            timers.clean_up();
        }
        max_len = max_len.max(timers.len());
    }
    timers.clean_up();
    assert!(max_len <= 400, "heap grew to {max_len}");
    assert!(timers.len() <= 200, "heap ends with {}", timers.len());
}

#[test]
fn take_all_and_discard_drops_callbacks_and_resets_counts() {
    let t0 = Instant::now();
    let capture = Rc::new(());
    let mut timers = TimerHeap::new();
    let keep = capture.clone();
    let t = timers.schedule(t0, move || drop(keep));
    timers.schedule(t0, || ()).cancel();
    timers.take_all().iter().for_each(Handle::discard);
    assert!(timers.is_empty());
    assert_eq!(
        Rc::strong_count(&capture),
        1,
        "dropped though a TimerHandle is held"
    );
    assert!(!t.handle().run());
    assert_eq!(timers.cancelled_count(), 0);
}
