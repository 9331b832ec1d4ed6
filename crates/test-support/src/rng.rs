//! A small deterministic generator, so that "random" races replay exactly.

/// A small deterministic generator (xorshift64*), so that "random" races replay exactly.
///
/// ```
/// let mut rng = evloop_test_support::Rng::new(7);
/// let draws: Vec<u64> = (0..3).map(|_| rng.below(10)).collect();
/// assert_eq!(draws, evloop_test_support::Rng::new(7).take(3, 10));
/// assert!(draws.iter().all(|&d| d < 10));
/// ```
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 counts as 1).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// The next `count` values in `0..n`.
    pub fn take(&mut self, count: usize, n: u64) -> Vec<u64> {
        (0..count).map(|_| self.below(n)).collect()
    }
}
