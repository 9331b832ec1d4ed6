//! The ordered store behind [`TimerHeap`](super::TimerHeap): a hierarchical timing wheel that
//! sorts only what is about to fire, so that ordering stays exact while the cost per timer does
//! not grow with the number of timers.
//!
//! One big binary heap costs a cache miss per level on every pop once it outgrows the cache
//! (20 levels at 10^6 timers). Here a timer is filed by how far its deadline is from the
//! `cursor`: level 0 slots are 2^10 ns wide, each level up 64 times wider, 9 levels cover all of
//! `u64`. A slot is an unsorted vector that remembers where its earliest entry is, so filing a
//! timer is an append. When the earliest slot comes due it is split into the levels below (a
//! sequential pass), until a level-0 slot, holding only the timers of one microsecond, is
//! heapified into `near`, the heap popped from. Each timer is moved at most once per level, so
//! its cost does not grow with the number of timers.
//!
//! Exactness: keys are `(deadline, sequence)` compared as one `u128`; `near` is a min-heap on the
//! whole key and every slot knows its minimum. Two timers with the same deadline always share a
//! slot (their slot depends only on the deadline and the cursor), so equal deadlines keep
//! scheduling order across levels.
//!
//! Invariants (the cursor only moves forward):
//! - entries in `near` have deadlines at or before `cursor`, entries in the levels at or after it
//!   (a tie at the cursor itself is settled by the sequence number: `near`'s were filed first);
//!   so `near` comes first, and new timers before the cursor go to `near`;
//! - an entry at level `l`, slot `s` agrees with `cursor` on every bit above level `l` and has
//!   digit `s` at level `l`, at least the cursor's;
//! - the cursor is before the start of every occupied slot except level-0 slots (which hold one
//!   granule each). With the previous rule, every entry of a lower level is then earlier than
//!   every entry of a higher one, and within a level the lowest occupied slot is the earliest;
//! - a key whose deadline is `u64::MAX` means "never": it sits in `never` and is never popped.
//!
//! Removing a cancelled head that is not due yet turns its slot into a heap (once) rather than
//! bringing the slot down early, so the cursor never runs ahead of the clock.

use std::collections::BinaryHeap;

use super::Entry;

/// log2 of the width of a level-0 slot, in ticks (nanoseconds).
const GRANULE_BITS: u32 = 10;
/// log2 of the number of slots per level.
const LEVEL_BITS: u32 = 6;
const SLOTS: usize = 1 << LEVEL_BITS;
/// One bit per slot of a level.
type Occupied = u64;
/// Enough levels for every deadline bit above the granule.
const LEVELS: usize = (u64::BITS - GRANULE_BITS).div_ceil(LEVEL_BITS) as usize;
/// After a [`trim`](Wheel::trim), an empty slot keeps its allocation up to this many entries.
const KEEP_CAPACITY: usize = 64;
/// The wheel trims itself once it holds less than a quarter of its peak, if the peak was above
/// this. (Slots keep their buffers while timers flow through them: freeing and regrowing them
/// cost more than the heap work, mostly in glibc consolidating the freed handles' chunks.)
const TRIM_PEAK: usize = 4096;
/// How many of the timers of a slot that becomes `near` have their handles prefetched.
const NEAR_PREFETCH: usize = 32;
/// The deadline that means "never".
pub(super) const NEVER: u64 = u64::MAX;

/// One slot of a level. It starts unsorted, with the place of its earliest entry kept up to
/// date, so filing a timer is an append. A slot whose earliest entry must go before it is due
/// (a cancelled head) becomes a heap instead, once: removing the minimum of an unsorted slot
/// would be a search each time, and bringing the slot down early would move the cursor ahead
/// of the clock (every later timer would then land in `near`, one big heap).
enum Slot {
    Unsorted {
        entries: Vec<Entry>,
        /// The key of the earliest entry (meaningless while empty).
        min_key: u128,
        /// Where the earliest entry is in `entries`.
        min_at: usize,
    },
    Heap(BinaryHeap<Entry>),
}

impl Default for Slot {
    fn default() -> Slot {
        Slot::unsorted(Vec::new())
    }
}

impl Slot {
    /// An unsorted slot holding `entries` (which must be empty or have their minimum found by
    /// [`rescan`](Slot::rescan)).
    fn unsorted(entries: Vec<Entry>) -> Slot {
        Slot::Unsorted {
            entries,
            min_key: 0,
            min_at: 0,
        }
    }

    #[inline]
    fn push(&mut self, entry: Entry) {
        match self {
            Slot::Unsorted {
                entries,
                min_key,
                min_at,
            } => {
                let key = entry.key();
                if entries.is_empty() || key < *min_key {
                    *min_key = key;
                    *min_at = entries.len();
                }
                entries.push(entry);
            }
            Slot::Heap(heap) => heap.push(entry),
        }
    }

    fn peek(&self) -> Option<&Entry> {
        match self {
            Slot::Unsorted {
                entries, min_at, ..
            } => entries.get(*min_at),
            Slot::Heap(heap) => heap.peek(),
        }
    }

    /// Removes the earliest entry, turning the slot into a heap first.
    fn pop(&mut self) -> Option<Entry> {
        if let Slot::Unsorted { entries, .. } = self {
            *self = Slot::Heap(BinaryHeap::from(std::mem::take(entries)));
        }
        match self {
            Slot::Heap(heap) => heap.pop(),
            Slot::Unsorted { .. } => unreachable!("made a heap above"),
        }
    }

    /// Takes every entry out, in no particular order; the slot is left empty and unsorted, with
    /// its buffer.
    fn take(&mut self) -> Vec<Entry> {
        let entries = match self {
            Slot::Unsorted { entries, .. } => std::mem::take(entries),
            Slot::Heap(heap) => std::mem::take(heap).into_vec(),
        };
        *self = Slot::default();
        entries
    }

    /// Gives the slot `buffer` (empty) to file into, keeping its allocation.
    fn give_buffer(&mut self, buffer: Vec<Entry>) {
        debug_assert!(self.len() == 0 && buffer.is_empty());
        *self = Slot::unsorted(buffer);
    }

    fn len(&self) -> usize {
        match self {
            Slot::Unsorted { entries, .. } => entries.len(),
            Slot::Heap(heap) => heap.len(),
        }
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        match self {
            Slot::Unsorted { entries, .. } => entries.capacity(),
            Slot::Heap(heap) => heap.capacity(),
        }
    }

    /// Keeps the entries for which `keep` is true; the slot goes back to unsorted.
    fn retain(&mut self, keep: &mut impl FnMut(&Entry) -> bool) {
        let mut entries = self.take();
        entries.retain(|e| keep(e));
        *self = Slot::unsorted(entries);
        self.rescan();
    }

    /// Frees the buffer of an empty slot that grew past `keep`, and shrinks one four times
    /// bigger than needed.
    fn trim(&mut self, keep: usize) {
        let mut entries = self.take();
        if entries.is_empty() && entries.capacity() > keep {
            entries = Vec::new();
        } else if entries.capacity() > 4 * entries.len().max(keep) {
            entries.shrink_to_fit();
        }
        *self = Slot::unsorted(entries);
        self.rescan();
    }

    /// Finds the earliest entry of an unsorted slot again, after entries were removed.
    fn rescan(&mut self) {
        if let Slot::Unsorted {
            entries,
            min_key,
            min_at,
        } = self
        {
            let (at, key) = entries
                .iter()
                .enumerate()
                .map(|(i, e)| (i, e.key()))
                .min_by_key(|&(_, key)| key)
                .unwrap_or((0, 0));
            *min_at = at;
            *min_key = key;
        }
    }
}

struct Level {
    /// Bit `s` is set when slot `s` is not empty.
    occupied: Occupied,
    slots: [Slot; SLOTS],
}

pub(super) struct Wheel {
    near: BinaryHeap<Entry>,
    levels: Box<[Level; LEVELS]>,
    never: Vec<Entry>,
    cursor: u64,
    len: usize,
    /// The most entries held since the last trim.
    peak: usize,
}

/// Where an entry goes: `None` for `near`, else `(level, slot)`.
fn place(cursor: u64, ticks: u64) -> Option<(usize, usize)> {
    if ticks < cursor {
        return None;
    }
    let differ = (ticks ^ cursor) >> GRANULE_BITS;
    let level = match differ {
        0 => 0,
        _ => ((u64::BITS - 1 - differ.leading_zeros()) / LEVEL_BITS) as usize,
    };
    Some((level, digit(ticks, level)))
}

fn shift(level: usize) -> u32 {
    GRANULE_BITS + LEVEL_BITS * level as u32
}

fn digit(ticks: u64, level: usize) -> usize {
    ((ticks >> shift(level)) as usize) & (SLOTS - 1)
}

/// The first tick of slot `slot` of `level`, for entries that agree with `cursor` above it.
fn slot_start(cursor: u64, level: usize, slot: usize) -> u64 {
    let above = shift(level) + LEVEL_BITS;
    let high = cursor
        .checked_shr(above)
        .map_or(0, |h| h.checked_shl(above).unwrap_or(0));
    high | ((slot as u64) << shift(level))
}

impl Wheel {
    /// An empty wheel whose cursor starts at `now` (in ticks).
    pub(super) fn new(now: u64) -> Wheel {
        Wheel {
            near: BinaryHeap::new(),
            levels: Box::new(std::array::from_fn(|_| Level {
                occupied: 0,
                slots: std::array::from_fn(|_| Slot::default()),
            })),
            never: Vec::new(),
            cursor: now,
            len: 0,
            peak: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn push(&mut self, entry: Entry) {
        self.len += 1;
        self.peak = self.peak.max(self.len);
        if entry.ticks() == NEVER {
            self.never.push(entry);
            return;
        }
        self.file(entry);
    }

    #[inline]
    fn file(&mut self, entry: Entry) {
        match place(self.cursor, entry.ticks()) {
            None => self.near.push(entry),
            Some((level, slot)) => {
                let level = &mut self.levels[level];
                level.occupied |= (1 as Occupied) << slot;
                level.slots[slot].push(entry);
            }
        }
    }

    /// The lowest occupied slot: it holds the earliest entry of the levels.
    fn first_slot(&self) -> Option<(usize, usize)> {
        self.levels
            .iter()
            .enumerate()
            .find(|(_, level)| level.occupied != 0)
            .map(|(l, level)| (l, level.occupied.trailing_zeros() as usize))
    }

    /// The earliest entry, never-timers aside.
    #[inline]
    pub(super) fn peek(&self) -> Option<&Entry> {
        // A loop with no timers asks twice per iteration: answer without scanning the levels.
        if self.len == self.never.len() {
            return None;
        }
        if let Some(head) = self.near.peek() {
            return Some(head);
        }
        let (l, s) = self.first_slot()?;
        self.levels[l].slots[s].peek()
    }

    /// Removes the earliest entry wherever it is, due or not (for dropping cancelled heads),
    /// without moving the cursor.
    pub(super) fn pop(&mut self) -> Option<Entry> {
        if let Some(entry) = self.near.pop() {
            self.len -= 1;
            return Some(entry);
        }
        let (l, s) = self.first_slot()?;
        let level = &mut self.levels[l];
        let entry = level.slots[s].pop();
        if level.slots[s].len() == 0 {
            level.occupied &= !((1 as Occupied) << s);
        }
        self.len -= 1;
        entry
    }

    /// Removes the earliest entry if its deadline is before `end`, bringing the slot it sits in
    /// down the levels first. When nothing is due the cursor moves up to `end` as far as the
    /// invariants allow, so that new timers are filed relative to the present.
    pub(super) fn pop_before(&mut self, end: u64) -> Option<Entry> {
        loop {
            if let Some(head) = self.near.peek() {
                if head.ticks() >= end {
                    return None;
                }
                self.len -= 1;
                return self.near.pop();
            }
            let Some((l, s)) = self.first_slot() else {
                self.cursor = self.cursor.max(end);
                return None;
            };
            let slot = &self.levels[l].slots[s];
            if slot.peek().is_none_or(|e| e.ticks() >= end) {
                // Short of the slot's start: at it, new timers would be filed below entries
                // that are earlier than they are.
                let start = slot_start(self.cursor, l, s);
                self.cursor = self.cursor.max(end.min(start.saturating_sub(1)));
                return None;
            }
            self.bring_down(l, s);
        }
    }

    /// Empties the first occupied slot, `(l, s)`, into the level below, or into `near` (which
    /// must be empty) from level 0, moving the cursor to the slot.
    fn bring_down(&mut self, l: usize, s: usize) {
        let start = slot_start(self.cursor, l, s);
        let level = &mut self.levels[l];
        level.occupied &= !((1 as Occupied) << s);
        let mut entries = level.slots[s].take();
        if l == 0 {
            // Everything in this slot lies in [start, start + granule): it becomes `near`, and
            // the cursor its last tick. (A timer filed later at that very tick goes after the
            // ones in `near`, as its sequence number says; one tick further would be the start
            // of the next slot, where the cursor may not go.) The slot keeps `near`'s old,
            // empty buffer.
            debug_assert!(self.near.is_empty());
            self.cursor = start + ((1 << GRANULE_BITS) - 1);
            // These timers are about to be popped and their handles read, in deadline order,
            // which is not the order the handles were allocated in.
            for entry in entries.iter().take(NEAR_PREFETCH) {
                entry.handle.prefetch();
            }
            let old = std::mem::replace(&mut self.near, BinaryHeap::from(entries));
            level.slots[s].give_buffer(old.into_vec());
        } else {
            self.cursor = start;
            for entry in entries.drain(..) {
                self.file(entry);
            }
            self.levels[l].slots[s].give_buffer(entries);
        }
    }

    /// Frees what empty slots hold and shrinks oversized ones once the wheel has shrunk to a
    /// quarter of its peak: memory follows the number of timers, at the cost of one pass over
    /// the slots per such drop.
    #[inline]
    pub(super) fn trim_if_shrunk(&mut self) {
        if self.wants_trim() {
            self.trim();
        }
    }

    /// Whether the wheel holds less than a quarter of a peak worth trimming after.
    #[inline]
    pub(super) fn wants_trim(&self) -> bool {
        self.peak > TRIM_PEAK && 4 * self.len < self.peak
    }

    #[cold]
    fn trim(&mut self) {
        self.retain(|_| true);
    }

    /// Keeps only the entries for which `keep` is true, and trims.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        fn shrink<T>(buffer: &mut Vec<T>) {
            if buffer.capacity() > 4 * buffer.len().max(KEEP_CAPACITY) {
                buffer.shrink_to_fit();
            }
        }
        let mut near = std::mem::take(&mut self.near).into_vec();
        near.retain(&mut keep);
        shrink(&mut near);
        self.near = BinaryHeap::from(near);
        for level in self.levels.iter_mut() {
            for (s, slot) in level.slots.iter_mut().enumerate() {
                if level.occupied & ((1 as Occupied) << s) != 0 {
                    slot.retain(&mut keep);
                }
                if slot.len() == 0 {
                    level.occupied &= !((1 as Occupied) << s);
                }
                slot.trim(KEEP_CAPACITY);
            }
        }
        self.never.retain(&mut keep);
        shrink(&mut self.never);
        self.len = self.near.len()
            + self.never.len()
            + self
                .levels
                .iter()
                .flat_map(|level| level.slots.iter())
                .map(Slot::len)
                .sum::<usize>();
        self.peak = self.len;
    }

    /// Removes every entry, in no particular order.
    pub(super) fn drain(&mut self) -> Vec<Entry> {
        let mut all = std::mem::take(&mut self.never);
        all.extend(std::mem::take(&mut self.near).into_vec());
        for level in self.levels.iter_mut() {
            for slot in level.slots.iter_mut() {
                all.extend(std::mem::take(slot).take());
            }
            level.occupied = 0;
        }
        self.len = 0;
        all
    }

    /// How many entries the store has room for without allocating: what it holds in memory.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.near.capacity()
            + self.never.capacity()
            + self
                .levels
                .iter()
                .flat_map(|level| level.slots.iter())
                .map(Slot::capacity)
                .sum::<usize>()
    }

    /// Which level the earliest entry sits at (`None` for `near`), to test crossings.
    #[cfg(test)]
    pub(super) fn head_level(&self) -> Option<usize> {
        if self.near.is_empty() {
            self.first_slot().map(|(l, _)| l)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Handle;

    fn entry(ticks: u64, seq: u64) -> Entry {
        Entry {
            ticks,
            seq,
            handle: Handle::new(|| ()),
        }
    }

    fn seqs(wheel: &mut Wheel, end: u64) -> Vec<u64> {
        std::iter::from_fn(|| wheel.pop_before(end))
            .map(|e| e.seq)
            .collect()
    }

    #[test]
    fn placement_follows_the_highest_bit_that_differs_from_the_cursor() {
        assert_eq!(place(1000, 999), None, "before the cursor: near");
        assert_eq!(place(0, 0), Some((0, 0)));
        assert_eq!(place(0, (1 << GRANULE_BITS) - 1), Some((0, 0)));
        assert_eq!(place(0, 1 << GRANULE_BITS), Some((0, 1)));
        assert_eq!(place(0, 1 << (GRANULE_BITS + LEVEL_BITS)), Some((1, 1)));
        assert_eq!(place(0, u64::MAX - 1), Some((LEVELS - 1, SLOTS - 1)));
        let cursor = 5 << shift(2);
        assert_eq!(place(cursor, cursor + (3 << shift(1))), Some((1, 3)));
        assert_eq!(slot_start(cursor, 1, 3), cursor + (3 << shift(1)));
        assert_eq!(slot_start(u64::MAX, LEVELS - 1, 1), 1 << shift(LEVELS - 1));
    }

    /// For a deadline on a slot boundary of every level: a timer filed there before the cursor
    /// moved and one filed after come out in scheduling order, between their neighbours one tick
    /// either side, and none before its deadline.
    #[test]
    fn equal_deadlines_keep_scheduling_order_across_every_level() {
        let start = 7 << 40;
        for level in 0..LEVELS - 1 {
            let mut wheel = Wheel::new(start);
            let t = start + (3 << shift(level));
            wheel.push(entry(t, 0));
            assert_eq!(wheel.head_level(), Some(level));
            // Not due: the cursor moves up to just short of the slot.
            assert!(wheel.pop_before(t - 1).is_none());
            wheel.push(entry(t, 1));
            wheel.push(entry(t - 1, 2));
            wheel.push(entry(t + 1, 3));
            wheel.push(entry(t, 4));
            assert_eq!(seqs(&mut wheel, t - 1), [] as [u64; 0], "level {level}");
            assert_eq!(seqs(&mut wheel, t), [2], "level {level}: never early");
            wheel.push(entry(t, 5));
            assert_eq!(seqs(&mut wheel, t + 1), [0, 1, 4, 5], "level {level}");
            assert_eq!(seqs(&mut wheel, t + 2), [3], "level {level}");
            assert_eq!(wheel.len(), 0);
        }
    }

    #[test]
    fn one_pop_jumps_over_every_level_in_order() {
        let start = 1 << 62;
        let mut wheel = Wheel::new(start);
        let offsets: Vec<u64> = (0..LEVELS - 1).map(|l| 5 << shift(l)).collect();
        for (seq, &offset) in offsets.iter().enumerate().rev() {
            wheel.push(entry(start + offset, seq as u64));
        }
        wheel.push(entry(start - 1, 99));
        wheel.push(entry(NEVER, 100));
        let order = seqs(&mut wheel, NEVER - 1);
        let mut expected = vec![99];
        expected.extend(0..offsets.len() as u64);
        assert_eq!(order, expected);
        assert_eq!(wheel.len(), 1, "the never-timer stays");
        assert!(wheel.peek().is_none(), "and is nobody's next deadline");
    }

    #[test]
    fn a_drained_burst_gives_its_memory_back() {
        let start = 1 << 62;
        let mut wheel = Wheel::new(start);
        let n = if cfg!(miri) { 2_000 } else { 200_000 };
        for i in 0..n {
            // Spread over 100 ms in a scrambled order.
            wheel.push(entry(start + (i * 7_919_993) % 100_000_000, i));
        }
        assert!(wheel.capacity() >= n as usize);
        let mut last = 0;
        let mut end = start;
        while wheel.len() > 0 {
            end += 50_000;
            while let Some(e) = wheel.pop_before(end) {
                assert!(e.key() > last, "in order");
                assert!(e.ticks() < end, "never early");
                last = e.key();
            }
        }
        wheel.trim_if_shrunk();
        let kept = wheel.capacity();
        assert!(
            kept <= LEVELS * SLOTS * KEEP_CAPACITY / 4,
            "{kept} entries' worth kept"
        );
    }

    /// A removed head that was not due (a cancelled one) leaves the cursor where it was: timers
    /// filed afterwards go to their slots, not to `near`, and still come out in order.
    #[test]
    fn removing_a_head_that_is_not_due_keeps_the_cursor_and_the_order() {
        let start = 1 << 62;
        let mut wheel = Wheel::new(start);
        let far = start + (9 << shift(3));
        wheel.push(entry(far, 0));
        wheel.push(entry(far + 5, 1));
        assert_eq!(wheel.pop().map(|e| e.seq), Some(0));
        assert_eq!(wheel.cursor, start, "the cursor stays with the clock");
        wheel.push(entry(start + (1 << shift(2)), 5));
        assert!(
            wheel.near.is_empty(),
            "a later timer is filed in the levels"
        );
        assert_eq!(wheel.pop().map(|e| e.seq), Some(5));
        wheel.push(entry(start + 10, 2));
        wheel.push(entry(far + 1, 3));
        wheel.push(entry(start + 5, 4));
        assert_eq!(seqs(&mut wheel, start + 5), [] as [u64; 0], "never early");
        assert_eq!(seqs(&mut wheel, start + 11), [4, 2]);
        assert_eq!(seqs(&mut wheel, far + 1), [] as [u64; 0]);
        assert_eq!(seqs(&mut wheel, NEVER - 1), [3, 1]);
    }

    /// The wheel against an ordered set, under random pushes at every scale (overdue ones
    /// included), pops of due timers, removals of the head and rebuilds.
    #[test]
    fn random_operations_match_an_ordered_set() {
        use std::collections::BTreeSet;
        let mut rng = evloop_test_support::Rng::new(7);
        let start = 1 << 62;
        let mut wheel = Wheel::new(start);
        let mut model = BTreeSet::new();
        let mut now = start;
        let mut seq = 0;
        for _ in 0..20_000 {
            match rng.below(10) {
                0..=4 => {
                    let scale = rng.below(40) as u32;
                    let offset = rng.below(1 << scale);
                    let ticks = if rng.below(8) == 0 {
                        now - offset.min(now - 1)
                    } else {
                        now + offset
                    };
                    wheel.push(entry(ticks, seq));
                    model.insert((ticks, seq));
                    seq += 1;
                }
                5..=7 => {
                    let scale = rng.below(30);
                    now += rng.below(1 << scale);
                    let due: Vec<u64> = model
                        .iter()
                        .take_while(|e| e.0 < now)
                        .map(|e| e.1)
                        .collect();
                    model.retain(|e| e.0 >= now);
                    assert_eq!(seqs(&mut wheel, now), due);
                }
                8 => {
                    let head = model.pop_first().map(|e| e.1);
                    assert_eq!(wheel.pop().map(|e| e.seq), head);
                }
                _ => {
                    let drop_seq = rng.below(7) + 2;
                    wheel.retain(|e| e.seq % drop_seq != 0);
                    model.retain(|e| e.1 % drop_seq != 0);
                }
            }
            assert_eq!(wheel.len(), model.len());
            assert_eq!(wheel.peek().map(|e| e.seq), model.first().map(|e| e.1));
        }
    }
}
