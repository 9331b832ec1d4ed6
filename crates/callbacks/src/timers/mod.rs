//! Timers: a min-heap of handles keyed by (deadline, sequence number).
//!
//! The sequence number makes timers with equal deadlines fire in the order they were scheduled
//! (asyncio leaves that order undefined; uvloop and evloop use FIFO). Cancelled timers are not
//! searched for and removed: they stay in the heap and are dropped lazily by the clean-up rule
//! of asyncio's `_run_once`, which bounds the heap's size without making `cancel` O(log n).

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::rc::Rc;
use std::time::Instant;

use crate::Handle;

/// Below this many timers, clean-up only pops cancelled ones off the head (asyncio's
/// `_MIN_SCHEDULED_TIMER_HANDLES`).
pub const MIN_SCHEDULED_FOR_REBUILD: usize = 100;

/// A heap bigger than [`MIN_SCHEDULED_FOR_REBUILD`] is rebuilt once more than this fraction of it
/// is cancelled (asyncio's `_MIN_CANCELLED_TIMER_HANDLES_FRACTION`).
pub const CANCELLED_FRACTION_FOR_REBUILD: f64 = 0.5;

/// A scheduled timer: asyncio's `TimerHandle`, a [`Handle`] plus its deadline.
///
/// ```
/// use evloop_callbacks::TimerHeap;
/// use std::time::{Duration, Instant};
///
/// let mut timers = TimerHeap::new();
/// let when = Instant::now() + Duration::from_secs(1);
/// let t = timers.schedule(when, || println!("tick"));
/// assert_eq!(t.when(), when);
/// t.cancel();
/// assert!(t.cancelled());
/// ```
#[derive(Clone)]
pub struct TimerHandle {
    handle: Handle,
    when: Instant,
    cancelled_in_heap: Rc<Cell<usize>>,
}

impl TimerHandle {
    /// Cancels the timer: it will not fire, and what its callback captured is dropped now.
    /// Idempotent.
    pub fn cancel(&self) {
        if self.handle.cancel_reporting() {
            self.cancelled_in_heap.set(self.cancelled_in_heap.get() + 1);
        }
    }

    /// Whether [`cancel`](TimerHandle::cancel) was called.
    pub fn cancelled(&self) -> bool {
        self.handle.cancelled()
    }

    /// The deadline, in loop time.
    pub fn when(&self) -> Instant {
        self.when
    }

    /// The underlying handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.cancelled() { "cancelled " } else { "" };
        write!(
            f,
            "<TimerHandle {state}when={:?} {} at {}>",
            self.when,
            self.handle.callback_name(),
            self.handle.location()
        )
    }
}

/// A heap entry. The (deadline, sequence number) pair is packed into one integer, deadline in
/// the high half: popping from a heap of many random deadlines is mostly comparisons, and one
/// `u128` comparison is a few branch-free instructions where comparing `(Instant, u64)` tuples
/// is a chain of unpredictable branches (it made `pop` over half of a timer's cost).
struct Entry {
    key: u128,
    handle: Handle,
}

impl Entry {
    /// The deadline part of the key (see [`Epoch::ticks`]).
    fn ticks(&self) -> u64 {
        (self.key >> 64) as u64
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` (a max-heap) yields the earliest deadline first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

/// Converts deadlines to integers and back: nanoseconds from the heap's creation, offset by
/// 2^63 so that deadlines before it (an overdue `call_at`) still order correctly. That covers
/// about 292 years either side; beyond it deadlines saturate, so two timers more than a century
/// away may fire in scheduling order rather than deadline order.
#[derive(Clone, Copy)]
struct Epoch(Instant);

impl Epoch {
    const BIAS: u64 = 1 << 63;

    fn ticks(self, when: Instant) -> u64 {
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        match when.checked_duration_since(self.0) {
            Some(after) => Self::BIAS.saturating_add(nanos(after)),
            None => Self::BIAS.saturating_sub(nanos(self.0 - when)),
        }
    }

    fn instant(self, ticks: u64) -> Instant {
        use std::time::Duration;
        if ticks >= Self::BIAS {
            // Under 300 years from a real instant: this cannot overflow.
            self.0 + Duration::from_nanos(ticks - Self::BIAS)
        } else {
            let before = Duration::from_nanos(Self::BIAS - ticks);
            // Only a saturated deadline could fail here; it is overdue either way.
            self.0.checked_sub(before).unwrap_or(self.0)
        }
    }
}

/// The loop's timers (asyncio's `_scheduled`).
///
/// ```
/// use evloop_callbacks::TimerHeap;
/// use std::time::{Duration, Instant};
///
/// let now = Instant::now();
/// let mut timers = TimerHeap::new();
/// timers.schedule(now + Duration::from_millis(20), || println!("second"));
/// timers.schedule(now + Duration::from_millis(10), || println!("first"));
/// timers.clean_up();
/// assert_eq!(timers.next_deadline(), Some(now + Duration::from_millis(10)));
/// while let Some(handle) = timers.pop_due(now + Duration::from_secs(1)) {
///     handle.run();
/// }
/// assert!(timers.is_empty());
/// ```
pub struct TimerHeap {
    heap: BinaryHeap<Entry>,
    epoch: Epoch,
    next_seq: u64,
    /// How many handles in the heap are cancelled; shared with every `TimerHandle`.
    cancelled: Rc<Cell<usize>>,
}

impl Default for TimerHeap {
    fn default() -> Self {
        TimerHeap::new()
    }
}

impl fmt::Debug for TimerHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHeap")
            .field("len", &self.heap.len())
            .field("cancelled", &self.cancelled.get())
            .finish()
    }
}

impl TimerHeap {
    /// An empty heap.
    pub fn new() -> TimerHeap {
        TimerHeap {
            heap: BinaryHeap::new(),
            epoch: Epoch(Instant::now()),
            next_seq: 0,
            cancelled: Rc::new(Cell::new(0)),
        }
    }

    /// Schedules `callback` to become ready at `when`. Past deadlines are allowed: such a timer
    /// is due at once, and overdue timers still come out in deadline order.
    #[track_caller]
    pub fn schedule(&mut self, when: Instant, callback: impl FnOnce() + 'static) -> TimerHandle {
        self.schedule_handle(when, Handle::new(callback))
    }

    /// Schedules an existing handle (which must not already be in a heap).
    pub fn schedule_handle(&mut self, when: Instant, handle: Handle) -> TimerHandle {
        handle.set_in_heap(true);
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = (u128::from(self.epoch.ticks(when)) << 64) | u128::from(seq);
        self.heap.push(Entry {
            key,
            handle: handle.clone(),
        });
        TimerHandle {
            handle,
            when,
            cancelled_in_heap: self.cancelled.clone(),
        }
    }

    /// asyncio's clean-up at the start of each iteration: rebuild the heap without its cancelled
    /// timers when it holds more than 100 and more than half are cancelled; otherwise pop the
    /// cancelled ones off the head, so that the head is a live timer.
    pub fn clean_up(&mut self) {
        let len = self.heap.len();
        let cancelled = self.cancelled.get();
        if len > MIN_SCHEDULED_FOR_REBUILD
            && cancelled as f64 / len as f64 > CANCELLED_FRACTION_FOR_REBUILD
        {
            self.heap.retain(|entry| {
                let live = !entry.handle.cancelled();
                if !live {
                    entry.handle.set_in_heap(false);
                }
                live
            });
            self.cancelled.set(0);
            if self.heap.capacity() > 4 * self.heap.len().max(MIN_SCHEDULED_FOR_REBUILD) {
                self.heap.shrink_to_fit();
            }
        } else {
            while self.heap.peek().is_some_and(|e| e.handle.cancelled()) {
                self.pop_cancelled_head();
            }
        }
    }

    fn pop_cancelled_head(&mut self) {
        if let Some(entry) = self.heap.pop() {
            entry.handle.set_in_heap(false);
            self.cancelled.set(self.cancelled.get().saturating_sub(1));
        }
    }

    /// The earliest deadline in the heap (a cancelled head counts until [`clean_up`] runs).
    ///
    /// [`clean_up`]: TimerHeap::clean_up
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|e| self.epoch.instant(e.ticks()))
    }

    /// Takes the earliest live timer whose deadline is before `end`, skipping cancelled ones.
    ///
    /// The loop passes `now + clock resolution` as `end` (asyncio's rule), so a timer is never
    /// run before its deadline as the clock can tell it.
    pub fn pop_due(&mut self, end: Instant) -> Option<Handle> {
        let end = self.epoch.ticks(end);
        while let Some(head) = self.heap.peek() {
            if head.ticks() >= end {
                return None;
            }
            if head.handle.cancelled() {
                self.pop_cancelled_head();
                continue;
            }
            let entry = self.heap.pop()?;
            entry.handle.set_in_heap(false);
            return Some(entry.handle);
        }
        None
    }

    /// How many timers the heap holds, cancelled ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the heap is empty.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// How many of the timers in the heap are cancelled.
    pub fn cancelled_count(&self) -> usize {
        self.cancelled.get()
    }

    /// Removes every timer without running it (what `close()` does) and returns the handles, for
    /// the caller to [`discard`](Handle::discard) once it holds no borrow a callback's destructor
    /// could need.
    pub fn take_all(&mut self) -> Vec<Handle> {
        self.cancelled.set(0);
        let handles: Vec<Handle> = self.heap.drain().map(|entry| entry.handle).collect();
        for handle in &handles {
            handle.set_in_heap(false);
        }
        handles
    }
}

#[cfg(test)]
mod tests {
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
}
