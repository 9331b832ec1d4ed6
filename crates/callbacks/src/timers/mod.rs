//! Timers: asyncio's `_scheduled`, ordered by (deadline, sequence number).
//!
//! The sequence number makes timers with equal deadlines fire in the order they were scheduled
//! (asyncio leaves that order undefined; uvloop and evloop use FIFO). Cancelled timers are not
//! searched for and removed: they stay in the store and are dropped lazily by the clean-up rule
//! of asyncio's `_run_once`, which bounds its size without making `cancel` a search. The store
//! itself is a timing wheel that sorts only what is about to fire ([`wheel`]), whose cost per
//! timer does not grow with the number of timers the way one big heap's does.

mod wheel;

use std::cell::Cell;
use std::cmp::Ordering;
use std::fmt;
use std::rc::Rc;
use std::time::Instant;

use crate::Handle;
use wheel::Wheel;

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

/// As asyncio's `TimerHandle.__eq__`: the same deadline and the same callback (here: the same
/// scheduled handle, as closures cannot be compared).
///
/// ```
/// use evloop_callbacks::TimerHeap;
/// use std::time::Instant;
///
/// let mut timers = TimerHeap::new();
/// let when = Instant::now();
/// let a = timers.schedule(when, || ());
/// let b = timers.schedule(when, || ());
/// assert_eq!(a, a.clone());
/// assert_ne!(a, b, "same deadline, another callback");
/// ```
impl PartialEq for TimerHandle {
    fn eq(&self, other: &Self) -> bool {
        self.when == other.when && self.handle.ptr_eq(&other.handle)
    }
}

/// As asyncio's `TimerHandle.__lt__`/`__le__`: ordered by deadline only, so two different timers
/// with the same deadline are neither less, greater nor equal.
///
/// ```
/// use evloop_callbacks::TimerHeap;
/// use std::time::{Duration, Instant};
///
/// let mut timers = TimerHeap::new();
/// let now = Instant::now();
/// let early = timers.schedule(now, || ());
/// let late = timers.schedule(now + Duration::from_secs(1), || ());
/// let tie = timers.schedule(now, || ());
/// assert!(early < late && late > early && early <= early.clone());
/// assert_eq!(early.partial_cmp(&tie), None);
/// ```
impl PartialOrd for TimerHandle {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.when.cmp(&other.when) {
            Ordering::Equal if !self.handle.ptr_eq(&other.handle) => None,
            order => Some(order),
        }
    }
}

/// As asyncio's `TimerHandle.__hash__`: the deadline's hash.
impl std::hash::Hash for TimerHandle {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.when.hash(state);
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

/// A stored timer, ordered by (deadline, sequence number). The pair is compared as one `u128`,
/// deadline in the high half: ordering many random deadlines is mostly comparisons, and one
/// `u128` comparison is a few branch-free instructions where comparing `(Instant, u64)` tuples
/// is a chain of unpredictable branches. The halves are stored as two `u64`s so that an entry is
/// 24 bytes rather than the 32 a 16-byte-aligned `u128` would make it: the wheel moves entries
/// between its levels, and that is memory traffic.
struct Entry {
    /// The deadline (see [`Epoch::ticks`]).
    ticks: u64,
    seq: u64,
    handle: Handle,
}

impl Entry {
    /// The deadline part of the key.
    fn ticks(&self) -> u64 {
        self.ticks
    }

    /// The whole ordering key.
    #[inline]
    fn key(&self) -> u128 {
        (u128::from(self.ticks) << 64) | u128::from(self.seq)
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
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
        other.key().cmp(&self.key())
    }
}

/// Converts deadlines to integers and back: nanoseconds from the store's creation, offset by
/// 2^63 so that deadlines before it (an overdue `call_at`) still order correctly. That covers
/// about 292 years either side; a deadline beyond it saturates to `u64::MAX`, which the store
/// reads as "never".
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
    wheel: Wheel,
    epoch: Epoch,
    /// The last `end` given to `pop_due` and its ticks: the loop pops every due timer with the
    /// same `end`, and converting an `Instant` costs more than the wheel's own work.
    last_end: (Instant, u64),
    next_seq: u64,
    /// How many handles in the store are cancelled; shared with every `TimerHandle`.
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
            .field("len", &self.wheel.len())
            .field("cancelled", &self.cancelled.get())
            .finish()
    }
}

impl TimerHeap {
    /// An empty store.
    pub fn new() -> TimerHeap {
        let epoch = Epoch(Instant::now());
        TimerHeap {
            wheel: Wheel::new(Epoch::BIAS),
            epoch,
            last_end: (epoch.0, Epoch::BIAS),
            next_seq: 0,
            cancelled: Rc::new(Cell::new(0)),
        }
    }

    /// Schedules `callback` to become ready at `when`. Past deadlines are allowed: such a timer
    /// is due at once, and overdue timers still come out in deadline order. A deadline at or
    /// past [`never`](TimerHeap::never) never comes due.
    #[track_caller]
    pub fn schedule(&mut self, when: Instant, callback: impl FnOnce() + 'static) -> TimerHandle {
        self.schedule_handle(when, Handle::new(callback))
    }

    /// Schedules an existing handle (which must not already be in a store).
    pub fn schedule_handle(&mut self, when: Instant, handle: Handle) -> TimerHandle {
        handle.set_in_heap(true);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.wheel.push(Entry {
            ticks: self.epoch.ticks(when),
            seq,
            handle: handle.clone(),
        });
        TimerHandle {
            handle,
            when,
            cancelled_in_heap: self.cancelled.clone(),
        }
    }

    /// The first deadline that means "never": about 292 years after the store was made. A timer
    /// due then or later is kept (it can be cancelled, `close` drops it) but never fires and
    /// never counts as the next deadline; `call_later(Duration::MAX)` schedules at this instant.
    ///
    /// ```
    /// use evloop_callbacks::TimerHeap;
    /// use std::time::{Duration, Instant};
    ///
    /// let mut timers = TimerHeap::new();
    /// let never = timers.never();
    /// assert!(never > Instant::now() + Duration::from_secs(200 * 365 * 24 * 3600));
    /// timers.schedule(never, || unreachable!());
    /// assert_eq!(timers.next_deadline(), None);
    /// assert!(timers.pop_due(never).is_none());
    /// assert_eq!(timers.len(), 1);
    /// ```
    pub fn never(&self) -> Instant {
        self.epoch.instant(wheel::NEVER)
    }

    /// asyncio's clean-up at the start of each iteration: rebuild the store without its cancelled
    /// timers when it holds more than 100 and more than half are cancelled; otherwise pop the
    /// cancelled ones off the head, so that the head is a live timer.
    #[inline]
    pub fn clean_up(&mut self) {
        // Most iterations of a loop without timers end here.
        if self.wheel.len() == 0 && !self.wheel.wants_trim() {
            return;
        }
        self.clean_up_store();
    }

    fn clean_up_store(&mut self) {
        let len = self.wheel.len();
        let cancelled = self.cancelled.get();
        if len > MIN_SCHEDULED_FOR_REBUILD
            && cancelled as f64 / len as f64 > CANCELLED_FRACTION_FOR_REBUILD
        {
            self.wheel.retain(|entry| {
                let live = !entry.handle.cancelled();
                if !live {
                    entry.handle.set_in_heap(false);
                }
                live
            });
            self.cancelled.set(0);
        } else {
            while self.wheel.peek().is_some_and(|e| e.handle.cancelled()) {
                if let Some(entry) = self.wheel.pop() {
                    self.forget_cancelled(&entry);
                }
            }
        }
        self.wheel.trim_if_shrunk();
    }

    fn forget_cancelled(&self, entry: &Entry) {
        entry.handle.set_in_heap(false);
        self.cancelled.set(self.cancelled.get().saturating_sub(1));
    }

    /// The earliest deadline in the store (a cancelled head counts until [`clean_up`] runs;
    /// timers that never come due do not count).
    ///
    /// [`clean_up`]: TimerHeap::clean_up
    #[inline]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.wheel.peek().map(|e| self.epoch.instant(e.ticks()))
    }

    /// Takes the earliest live timer whose deadline is before `end`, skipping cancelled ones.
    ///
    /// The loop passes `now + clock resolution` as `end` (asyncio's rule), so a timer is never
    /// run before its deadline as the clock can tell it.
    pub fn pop_due(&mut self, end: Instant) -> Option<Handle> {
        if self.last_end.0 != end {
            self.last_end = (end, self.epoch.ticks(end).min(wheel::NEVER - 1));
        }
        let end = self.last_end.1;
        while let Some(entry) = self.wheel.pop_before(end) {
            if entry.handle.cancelled() {
                self.forget_cancelled(&entry);
                continue;
            }
            entry.handle.set_in_heap(false);
            return Some(entry.handle);
        }
        None
    }

    /// How many timers the store holds, cancelled ones included.
    pub fn len(&self) -> usize {
        self.wheel.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.wheel.len() == 0
    }

    /// How many of the timers in the store are cancelled.
    pub fn cancelled_count(&self) -> usize {
        self.cancelled.get()
    }

    /// Removes every timer without running it (what `close()` does) and returns the handles, for
    /// the caller to [`discard`](Handle::discard) once it holds no borrow a callback's destructor
    /// could need.
    pub fn take_all(&mut self) -> Vec<Handle> {
        self.cancelled.set(0);
        let handles: Vec<Handle> = self.wheel.drain().into_iter().map(|e| e.handle).collect();
        for handle in &handles {
            handle.set_in_heap(false);
        }
        handles
    }
}

#[cfg(test)]
mod tests;
