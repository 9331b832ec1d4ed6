//! CPython's own asyncio test expectations, ported: one module per CPython test file (or area),
//! each test naming the CPython test it reproduces. One test binary for all of them, so that CI
//! links it once.

mod context;
mod events;
mod gather;
mod runners;
mod taskgroups;
mod tasks;
mod waitfor;

/// `n` milliseconds: the unit most of CPython's timings are in.
fn ms(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}
