//! The synchronization primitives of the sleep protocol, from loom under `cfg(loom)`.
//!
//! The loom model tests (`cargo xtask loom`) build this crate with `--cfg loom`, so the real
//! [`Sleep`](crate::sleep) code runs on loom's mutex, condvar and atomics and the model explores
//! its interleavings; every other build uses std's.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread::yield_now;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;
