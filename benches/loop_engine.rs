//! The event-loop engine side by side with tokio's current-thread runtime (issue 2).
//!
//! 1. `call_soon_1m`: 1,000,000 no-op callbacks scheduled and run to completion (ns/callback).
//!    tokio's analog is spawning as many trivial tasks; the floor is a plain
//!    `VecDeque<Box<dyn FnOnce()>>` drained in a loop. Every closure captures one `usize`, so
//!    the floor's boxes allocate just as the loop's handles do.
//! 2. `timers_100k`: 100,000 timers with random deadlines within 100 ms, on the real clock.
//!    **The figure criterion reports here is CPU time** (`getrusage(RUSAGE_THREAD)` of the thread
//!    running the loop), not wall time: wall time is the 100 ms spread of the deadlines. tokio's
//!    analog is as many spawned tasks that each `sleep`; evloop is measured both with bare
//!    `call_later` callbacks and with tasks that `sleep`, the like-for-like comparison.
//! 3. `threadsafe_round_trip`: a foreign thread schedules a callback on a running loop and waits
//!    for it to signal back (µs per round trip). tokio's analog is a ping-pong over two mpsc
//!    channels; the floors are a park/unpark (futex) ping-pong and an eventfd ping-pong between
//!    two plain threads, which is what one round trip costs at the least.

#[path = "eventfd.rs"]
mod eventfd;

use std::cell::Cell;
use std::collections::VecDeque;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use eventfd::EventFd;
use evloop::{EventLoop, LoopExt};

/// Callbacks per `call_soon_1m` sample.
const CALLBACKS: usize = 1_000_000;
/// Timers per `timers_100k` sample.
const TIMERS: usize = 100_000;
/// The deadlines are spread over this window.
const TIMER_WINDOW: Duration = Duration::from_millis(100);

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn call_soon(c: &mut Criterion) {
    let mut group = c.benchmark_group("call_soon_1m");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(CALLBACKS as u64));

    let lp = EventLoop::new().unwrap();
    group.bench_function("evloop_call_soon", |b| {
        b.iter(|| {
            for i in 0..CALLBACKS {
                lp.call_soon(move || {
                    black_box(i);
                })
                .unwrap();
            }
            // All of them are in the first batch; a stop queued last ends the run after it.
            let stopper = lp.clone();
            lp.call_soon(move || stopper.stop()).unwrap();
            lp.run_forever().unwrap();
            debug_assert_eq!(lp.ready_len(), 0);
        })
    });

    let rt = current_thread();
    group.bench_function("tokio_spawn", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut last = None;
                for i in 0..CALLBACKS {
                    last = Some(tokio::spawn(async move {
                        black_box(i);
                    }));
                }
                // The current-thread scheduler runs spawned tasks in FIFO order: when the last
                // one is done, all are.
                last.unwrap().await.unwrap();
            })
        })
    });

    group.bench_function("floor_vecdeque_box_fnonce", |b| {
        let mut queue: VecDeque<Box<dyn FnOnce()>> = VecDeque::new();
        b.iter(|| {
            for i in 0..CALLBACKS {
                queue.push_back(Box::new(move || {
                    black_box(i);
                }));
            }
            while let Some(callback) = queue.pop_front() {
                callback();
            }
        })
    });
    group.finish();
}

/// CPU time used by the calling thread so far.
fn thread_cpu_time() -> Duration {
    // SAFETY: `getrusage` only writes the struct we pass; zeroed is a valid `rusage`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a live `rusage`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Deterministic pseudo-random delays within the window (xorshift; no dependency needed).
fn random_delays() -> Vec<Duration> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let window = TIMER_WINDOW.as_nanos() as u64;
    (0..TIMERS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            Duration::from_nanos(state % window)
        })
        .collect()
}

/// Runs `sample` `iters` times and returns the thread CPU time it used (criterion's "time" for
/// this group), printing the wall time of the last run for the record.
fn cpu_time_of(iters: u64, mut sample: impl FnMut()) -> Duration {
    let mut cpu = Duration::ZERO;
    for _ in 0..iters {
        let before = thread_cpu_time();
        sample();
        cpu += thread_cpu_time() - before;
    }
    cpu
}

fn timers(c: &mut Criterion) {
    let mut group = c.benchmark_group("timers_100k_cpu");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(TIMERS as u64));
    let delays = random_delays();

    let lp = EventLoop::new().unwrap();
    group.bench_function("evloop_call_later", |b| {
        b.iter_custom(|iters| {
            cpu_time_of(iters, || {
                let fired = Rc::new(Cell::new(0usize));
                for &delay in &delays {
                    let fired = fired.clone();
                    let lp2 = lp.clone();
                    lp.call_later(delay, move || {
                        fired.set(fired.get() + 1);
                        if fired.get() == TIMERS {
                            lp2.stop();
                        }
                    })
                    .unwrap();
                }
                lp.run_forever().unwrap();
                assert_eq!(fired.get(), TIMERS);
            })
        })
    });

    group.bench_function("evloop_task_sleep", |b| {
        b.iter_custom(|iters| {
            cpu_time_of(iters, || {
                let delays = delays.clone();
                lp.run_until_complete(async move {
                    let tasks: Vec<_> = delays
                        .into_iter()
                        .map(|delay| evloop::create_task(evloop::sleep(delay)))
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                })
                .unwrap();
            })
        })
    });

    let rt = current_thread();
    group.bench_function("tokio_spawn_sleep", |b| {
        b.iter_custom(|iters| {
            cpu_time_of(iters, || {
                rt.block_on(async {
                    let tasks: Vec<_> = delays
                        .iter()
                        .map(|&delay| tokio::spawn(tokio::time::sleep(delay)))
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                })
            })
        })
    });
    group.finish();
}

/// A one-way "you may go on" signal to a parked thread: a flag plus `unpark` (a futex).
struct Signal {
    flag: AtomicBool,
    thread: thread::Thread,
}

impl Signal {
    fn for_current() -> Arc<Signal> {
        Arc::new(Signal {
            flag: AtomicBool::new(false),
            thread: thread::current(),
        })
    }

    fn notify(&self) {
        self.flag.store(true, Ordering::Release);
        self.thread.unpark();
    }

    /// Called only by the thread the signal was made for.
    fn wait(&self) {
        while !self.flag.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("threadsafe_round_trip");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));

    let lp = EventLoop::new().unwrap();
    group.bench_function("evloop_call_soon_threadsafe", |b| {
        b.iter_custom(|iters| {
            // The loop runs on this thread; a foreign thread pings it `iters` times, each time
            // waiting for the callback to signal back, then stops it.
            let remote = lp.remote();
            let started = Instant::now();
            let foreign = thread::spawn(move || {
                let back = Signal::for_current();
                for _ in 0..iters {
                    let back2 = back.clone();
                    remote.call_soon_threadsafe(move || back2.notify()).unwrap();
                    back.wait();
                }
                remote.stop().unwrap();
            });
            lp.run_forever().unwrap();
            let elapsed = started.elapsed();
            foreign.join().unwrap();
            elapsed
        })
    });

    let rt = current_thread();
    group.bench_function("tokio_mpsc_ping_pong", |b| {
        b.iter_custom(|iters| {
            let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<()>(1);
            let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<()>(1);
            let started = Instant::now();
            let foreign = thread::spawn(move || {
                for _ in 0..iters {
                    ping_tx.blocking_send(()).unwrap();
                    pong_rx.blocking_recv().unwrap();
                }
            });
            rt.block_on(async {
                while ping_rx.recv().await.is_some() {
                    pong_tx.send(()).await.unwrap();
                }
            });
            let elapsed = started.elapsed();
            foreign.join().unwrap();
            elapsed
        })
    });

    group.bench_function("floor_park_unpark", |b| {
        b.iter_custom(|iters| {
            let here = Signal::for_current();
            let (to_foreign_tx, to_foreign_rx) = std::sync::mpsc::channel();
            let there = here.clone();
            let foreign = thread::spawn(move || {
                let mine = Signal::for_current();
                to_foreign_tx.send(mine.clone()).unwrap();
                for _ in 0..iters {
                    mine.wait();
                    there.notify();
                }
            });
            let foreign_signal: Arc<Signal> = to_foreign_rx.recv().unwrap();
            let started = Instant::now();
            for _ in 0..iters {
                foreign_signal.notify();
                here.wait();
            }
            let elapsed = started.elapsed();
            foreign.join().unwrap();
            elapsed
        })
    });

    group.bench_function("floor_eventfd", |b| {
        b.iter_custom(|iters| {
            let ping = EventFd::new();
            let pong = EventFd::new();
            let (ping2, pong2) = (ping.clone(), pong.clone());
            let foreign = thread::spawn(move || {
                for _ in 0..iters {
                    ping2.read();
                    pong2.write();
                }
            });
            let started = Instant::now();
            for _ in 0..iters {
                ping.write();
                pong.read();
            }
            let elapsed = started.elapsed();
            foreign.join().unwrap();
            elapsed
        })
    });
    group.finish();
}

criterion_group!(benches, call_soon, timers, round_trip);
criterion_main!(benches);
