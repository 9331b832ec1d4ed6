//! The timer store (evloop-callbacks' `TimerHeap`, a timing wheel) against a plain ordered map,
//! and the loop's timer contracts at the extremes: huge and zero delays, cancellation dropping
//! captures at once, virtual-clock jumps across every level of the wheel (asyncio A5, A6, A8).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::{get_running_loop, sleep};
use evloop_callbacks::{TimerHandle, TimerHeap};
use evloop_test_support::{DropFlag, Rng, vrun};

/// A deadline as the model orders it: nanoseconds from the test's start (negative: overdue).
type Key = (i128, u64);

/// A value below 2^k for a random k below `max_bits`: every scale of delay equally often.
fn scaled(rng: &mut Rng, max_bits: u64) -> u64 {
    let bits = rng.below(max_bits);
    rng.below(1 << bits)
}

struct Harness {
    timers: TimerHeap,
    t0: Instant,
    now: i128,
    next_seq: u64,
    /// Live timers: (deadline, scheduling order) to the timer's id.
    model: BTreeMap<Key, u64>,
    never: BTreeMap<u64, TimerHandle>,
    handles: Vec<(Key, TimerHandle)>,
    fired: Rc<RefCell<Vec<u64>>>,
    /// Where `t0` is in the store's own ticks (nanoseconds from its epoch), to aim at the
    /// power-of-two boundaries its structure splits at.
    t0_ticks: i128,
}

impl Harness {
    fn new() -> Harness {
        let t0 = Instant::now() + Duration::from_secs(3600);
        let timers = TimerHeap::new();
        // `never()` is the epoch plus 2^63 - 1 ns.
        let epoch = timers.never() - Duration::from_nanos(u64::MAX >> 1);
        Harness {
            t0_ticks: (t0 - epoch).as_nanos() as i128,
            timers,
            t0,
            now: 0,
            next_seq: 0,
            model: BTreeMap::new(),
            never: BTreeMap::new(),
            handles: Vec::new(),
            fired: Rc::default(),
        }
    }

    fn instant(&self, nanos: i128) -> Instant {
        let offset = Duration::from_nanos(nanos.unsigned_abs() as u64);
        if nanos >= 0 {
            self.t0 + offset
        } else {
            self.t0 - offset
        }
    }

    /// A time near a power-of-two boundary of the store's ticks (2^10 to 2^46 ns) a few
    /// boundaries after `now`, or one tick either side of it: where a wheel splits.
    fn near_boundary(&self, rng: &mut Rng) -> i128 {
        let unit = 1i128 << (10 + rng.below(37));
        let now = self.t0_ticks + self.now;
        let boundary = (now / unit + 1 + rng.below(3) as i128) * unit;
        boundary - self.t0_ticks + rng.below(3) as i128 - 1
    }

    fn schedule(&mut self, rng: &mut Rng) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let fired = self.fired.clone();
        let callback = move || fired.borrow_mut().push(seq);
        let deadline = match rng.below(12) {
            0 if !self.model.is_empty() => {
                // Exactly the deadline of a timer already there, wherever it was filed.
                let pick = rng.below(self.model.len() as u64) as usize;
                self.model.keys().nth(pick).map_or(self.now, |k| k.0)
            }
            1 => self.now - scaled(rng, 30) as i128,
            2 => self.now,
            4..=6 => self.near_boundary(rng),
            3 => {
                let handle = self.timers.schedule(self.timers.never(), callback);
                self.never.insert(seq, handle);
                return;
            }
            _ => self.now + scaled(rng, 48) as i128,
        };
        let handle = self.timers.schedule(self.instant(deadline), callback);
        assert_eq!(handle.when(), self.instant(deadline));
        self.model.insert((deadline, seq), seq);
        self.handles.push(((deadline, seq), handle));
    }

    fn cancel(&mut self, rng: &mut Rng) {
        if rng.below(8) == 0 && !self.never.is_empty() {
            let seq = *self.never.keys().next().unwrap();
            self.never.remove(&seq).unwrap().cancel();
            return;
        }
        if self.handles.is_empty() {
            return;
        }
        let (key, handle) = self
            .handles
            .swap_remove(rng.below(self.handles.len() as u64) as usize);
        handle.cancel();
        self.model.remove(&key);
    }

    /// One loop iteration at `now`: clean-up, then everything due before `now + 1 ns`, in order.
    fn run_due(&mut self) {
        self.timers.clean_up();
        self.check_head_and_size();
        let end = self.now + 1;
        let mut expected = Vec::new();
        while let Some((&key, &id)) = self.model.first_key_value() {
            if key.0 >= end {
                break;
            }
            self.model.remove(&key);
            expected.push(id);
        }
        while let Some(handle) = self.timers.pop_due(self.instant(end)) {
            assert!(handle.run());
        }
        let fired = std::mem::take(&mut *self.fired.borrow_mut());
        assert_eq!(fired, expected, "at {} ns", self.now);
        self.handles.retain(|(key, _)| key.0 >= end);
    }

    fn check_head_and_size(&self) {
        let head = self.model.keys().next().map(|k| self.instant(k.0));
        assert_eq!(self.timers.next_deadline(), head, "the head is live");
        let len = self.timers.len();
        let live = self.model.len() + self.never.len();
        assert!(len >= live);
        // asyncio's bound after a clean-up: at most half cancelled, or at most 100 timers.
        assert!(
            len <= 100 || 2 * self.timers.cancelled_count() <= len,
            "{len} timers, {} cancelled",
            self.timers.cancelled_count()
        );
        assert_eq!(len - self.timers.cancelled_count(), live);
    }
}

#[test]
fn the_wheel_pops_exactly_what_an_ordered_map_would() {
    for seed in 1..=if cfg!(miri) { 2 } else { 40 } {
        let mut rng = Rng::new(seed);
        let mut h = Harness::new();
        for _ in 0..if cfg!(miri) { 300 } else { 4_000 } {
            match rng.below(20) {
                0..=8 => h.schedule(&mut rng),
                9..=12 => h.cancel(&mut rng),
                13 => h.run_due(),
                14..=16 => {
                    h.now = h.now.max(h.near_boundary(&mut rng));
                    h.run_due();
                }
                _ => {
                    // Small steps mostly, now and then a jump of up to a day or so.
                    h.now += scaled(&mut rng, 47) as i128;
                    h.run_due();
                }
            }
        }
        h.now += 1 << 50;
        h.run_due();
        assert!(h.model.is_empty());
        assert_eq!(h.timers.len(), h.never.len() + h.timers.cancelled_count());
    }
}

#[test]
fn cancelling_drops_the_capture_at_once_at_any_distance() {
    let mut timers = TimerHeap::new();
    let now = Instant::now();
    let delays = [0, 1, 1 << 20, 1 << 40, u64::MAX].map(Duration::from_nanos);
    for delay in delays {
        let (dropped, guard) = DropFlag::new();
        let when = now.checked_add(delay).unwrap_or(timers.never());
        let timer = timers.schedule(when, move || drop(guard));
        timer.cancel();
        assert!(
            dropped.get(),
            "{delay:?}: dropped by cancel, not by a later clean-up"
        );
    }
    timers.clean_up();
    assert!(timers.pop_due(now + Duration::from_secs(1 << 40)).is_none());
}

#[test]
fn a_huge_delay_means_never_and_a_zero_delay_means_now() {
    vrun(async {
        let lp = get_running_loop().unwrap();
        let (dropped, guard) = DropFlag::new();
        let never = lp.call_later(Duration::MAX, move || drop(guard)).unwrap();
        let far_fired = Rc::new(Cell::new(false));
        let far = lp
            .call_at(lp.time() + Duration::from_secs(400 * 365 * 86_400), {
                let far_fired = far_fired.clone();
                move || far_fired.set(true)
            })
            .unwrap();
        let zero = Rc::new(Cell::new(false));
        lp.call_later(Duration::ZERO, {
            let zero = zero.clone();
            move || zero.set(true)
        })
        .unwrap();
        sleep(Duration::ZERO).await;
        sleep(Duration::ZERO).await;
        assert!(zero.get(), "a zero delay is due on the next iteration");
        // A long (virtual) wait: the never-timers are nobody's next deadline and do not fire.
        sleep(Duration::from_secs(100 * 365 * 86_400)).await;
        assert!(!dropped.get() && !never.cancelled() && !far_fired.get());
        never.cancel();
        far.cancel();
        assert!(
            dropped.get(),
            "cancel drops a never-timer's capture at once"
        );
    })
    .unwrap();
}

#[test]
fn the_virtual_clock_jumps_exactly_to_deadlines_across_every_level() {
    vrun(async {
        let lp = get_running_loop().unwrap();
        let start = lp.time();
        let fired = Rc::new(RefCell::new(Vec::new()));
        // From a nanosecond to a century: every level of the wheel, scheduled latest first.
        let delays: Vec<Duration> = (0..57)
            .step_by(3)
            .map(|bit| Duration::from_nanos((1u64 << bit) + 1))
            .chain([Duration::from_secs(100 * 365 * 86_400)])
            .collect();
        for (i, &delay) in delays.iter().enumerate().rev() {
            let (fired, lp2) = (fired.clone(), lp.clone());
            lp.call_later(delay, move || fired.borrow_mut().push((i, lp2.time())))
                .unwrap();
        }
        sleep(Duration::from_secs(101 * 365 * 86_400)).await;
        let fired = fired.borrow();
        assert_eq!(fired.len(), delays.len());
        for (&(i, at), (j, &delay)) in fired.iter().zip(delays.iter().enumerate()) {
            assert_eq!(i, j, "deadline order");
            assert_eq!(
                at,
                start + delay,
                "the clock lands on the deadline: never early"
            );
        }
    })
    .unwrap();
}
