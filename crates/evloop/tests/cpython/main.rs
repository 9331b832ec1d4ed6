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

// `ms(n)`: the unit most of CPython's timings are in, for the modules below.
use evloop_test_support::ms;
