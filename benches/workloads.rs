//! The peers harness's workloads (/work/shared/peers/README.md: callbacks, timers, tasks,
//! threadsafe) plus the sync bench's `queue_stream`, each written once for evloop, tokio
//! (current_thread, `tokio::spawn` as the peers' tokio programs do) and smol (async-executor's
//! `LocalExecutor` driven by `async_io::block_on`), at any size. Shared with `#[path]` by the
//! criterion `scaling` bench (the wall-clock view) and the `measure` example that
//! `cargo xtask bench --table` / `--instructions` runs once per process, natively and under
//! callgrind.
//!
//! Every pass does its set-up (runtimes, deadlines, threads) outside [`measured`], the one
//! function callgrind is told to count (`--toggle-collect=evloop_bench_measured`), so neither
//! process start-up nor set-up shows in the instruction counts.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use evloop::{EventLoop, LoopExt, LoopFuture};

use crate::eventfd::EventFd;
use crate::queue_stream::{channel_stream, evloop_stream, tokio_stream};

/// One of the workloads, sized by the caller.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Workload {
    /// N no-op units of work queued, then all run (`call_soon`; a spawned task on the peers).
    Callbacks,
    /// N timers over a 100 ms window (splitmix64 seed 42 deadlines); all fired.
    Timers,
    /// N tasks that each yield to the loop once (`sleep(ZERO)`), joined in creation order.
    Tasks,
    /// N round trips between the loop and one foreign thread.
    Threadsafe,
    /// N items through a queue of capacity 128 from a producer task.
    Queue,
}

impl Workload {
    pub(crate) const ALL: [Workload; 5] = [
        Workload::Callbacks,
        Workload::Timers,
        Workload::Tasks,
        Workload::Threadsafe,
        Workload::Queue,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Callbacks => "callbacks",
            Workload::Timers => "timers",
            Workload::Tasks => "tasks",
            Workload::Threadsafe => "threadsafe",
            Workload::Queue => "queue",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }
}

/// Who runs the workload. `Floor` is the eventfd ping-pong between two plain threads, for
/// `threadsafe` only.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Impl {
    Evloop,
    Tokio,
    Smol,
    Floor,
}

impl Impl {
    pub(crate) const ALL: [Impl; 4] = [Impl::Evloop, Impl::Tokio, Impl::Smol, Impl::Floor];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Impl::Evloop => "evloop",
            Impl::Tokio => "tokio",
            Impl::Smol => "smol",
            Impl::Floor => "eventfd-floor",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// The measured region: callgrind counts only while this function is on a thread's stack
/// (`--toggle-collect=evloop_bench_measured`). Unmangled and never inlined so the name is there
/// to match; the `black_box` after the call keeps it from becoming a tail jump.
#[unsafe(no_mangle)]
#[inline(never)]
pub(crate) fn evloop_bench_measured(body: &mut dyn FnMut()) {
    body();
    black_box(());
}

/// Whether [`measured`] runs its body inside the marker: off for a warm-up pass, so that
/// callgrind counts the timed passes alone. Read by every thread of a pass.
static MARKING: AtomicBool = AtomicBool::new(true);

/// Turns the marker on (timed passes) or off (warm-up).
pub(crate) fn set_marking(on: bool) {
    MARKING.store(on, Ordering::Relaxed);
}

/// Runs `body` inside [`evloop_bench_measured`] (unless marking is off) and returns its value.
pub(crate) fn measured<R>(body: impl FnOnce() -> R) -> R {
    if !MARKING.load(Ordering::Relaxed) {
        return body();
    }
    let mut body = Some(body);
    let mut out = None;
    evloop_bench_measured(&mut || out = Some((body.take().expect("runs once"))()));
    out.expect("the body ran")
}

/// The three runtimes, built once and reused across passes.
pub(crate) struct Runtimes {
    evloop: EventLoop,
    tokio: tokio::runtime::Runtime,
    smol: async_executor::LocalExecutor<'static>,
}

impl Runtimes {
    pub(crate) fn new() -> Runtimes {
        Runtimes {
            evloop: EventLoop::new().expect("evloop loop"),
            tokio: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
            smol: async_executor::LocalExecutor::new(),
        }
    }

    /// One pass of `workload` of size `n` on `imp`: the wall time of the measured region, or
    /// why this pairing does not exist.
    pub(crate) fn pass(&self, workload: Workload, imp: Impl, n: u64) -> Result<Duration, String> {
        let lp = &self.evloop;
        let ex = &self.smol;
        Ok(match (workload, imp) {
            (Workload::Callbacks, Impl::Evloop) => evloop_callbacks(lp, n),
            (Workload::Callbacks, Impl::Tokio) => timed(|| self.tokio.block_on(tokio_callbacks(n))),
            (Workload::Callbacks, Impl::Smol) => timed(|| self.on_smol(smol_callbacks(ex, n))),
            (Workload::Timers, Impl::Evloop) => evloop_timers(lp, &delays(n)),
            (Workload::Timers, Impl::Tokio) => {
                let delays = delays(n);
                timed(|| self.tokio.block_on(tokio_timers(&delays)))
            }
            (Workload::Timers, Impl::Smol) => {
                let delays = delays(n);
                timed(|| self.on_smol(smol_timers(ex, &delays)))
            }
            (Workload::Tasks, Impl::Evloop) => {
                timed(|| lp.run_until_complete(evloop_tasks(n)).expect("evloop run"))
            }
            (Workload::Tasks, Impl::Tokio) => timed(|| self.tokio.block_on(tokio_tasks(n))),
            (Workload::Tasks, Impl::Smol) => timed(|| self.on_smol(smol_tasks(ex, n))),
            (Workload::Threadsafe, Impl::Evloop) => evloop_threadsafe(lp, n),
            (Workload::Threadsafe, Impl::Tokio) => self.tokio_threadsafe(n),
            (Workload::Threadsafe, Impl::Smol) => smol_threadsafe(ex, n),
            (Workload::Threadsafe, Impl::Floor) => eventfd_floor(n),
            (Workload::Queue, Impl::Evloop) => {
                timed(|| lp.run_until_complete(evloop_stream(n)).expect("evloop run"))
            }
            (Workload::Queue, Impl::Tokio) => timed(|| self.tokio.block_on(tokio_stream(n))),
            (Workload::Queue, Impl::Smol) => {
                timed(|| self.on_smol(channel_stream(n, |producer| ex.spawn(producer))))
            }
            (workload, imp) => {
                return Err(format!("{} has no {} variant", imp.name(), workload.name()));
            }
        })
    }

    fn on_smol<F: Future>(&self, main: F) -> F::Output {
        async_io::block_on(self.smol.run(main))
    }

    fn tokio_threadsafe(&self, n: u64) -> Duration {
        let (to_thread, from_loop) = mpsc::channel::<u64>();
        let (to_loop, mut from_thread) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let foreign = thread::spawn(move || {
            measured(|| {
                for m in from_loop {
                    if to_loop.send(m).is_err() {
                        break;
                    }
                }
            })
        });
        let elapsed = timed(|| {
            self.tokio.block_on(async move {
                for i in 0..n {
                    to_thread.send(i).unwrap();
                    assert_eq!(from_thread.recv().await, Some(i));
                }
            })
        });
        foreign.join().expect("foreign thread");
        elapsed
    }
}

/// The wall time of `body` run as the measured region.
fn timed<R>(body: impl FnOnce() -> R) -> Duration {
    let started = Instant::now();
    black_box(measured(body));
    started.elapsed()
}

/// The peers' timer deadlines: the first `n` outputs of splitmix64 (seed 42) mod 100 ms.
pub(crate) fn delays(n: u64) -> Vec<Duration> {
    let mut s = 42u64;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            Duration::from_nanos((z ^ (z >> 31)) % 100_000_000)
        })
        .collect()
}

// ---- callbacks ---------------------------------------------------------------------------------

fn evloop_callbacks(lp: &EventLoop, n: u64) -> Duration {
    let count = Rc::new(Cell::new(0u64));
    let elapsed = timed(|| {
        for _ in 0..n {
            let count = count.clone();
            lp.call_soon(move || count.set(count.get() + 1)).unwrap();
        }
        // The ready queue is FIFO: a stop queued last ends the run after every callback.
        let stopper = lp.clone();
        lp.call_soon(move || stopper.stop()).unwrap();
        lp.run_forever().unwrap();
    });
    assert_eq!(count.get(), n);
    elapsed
}

async fn tokio_callbacks(n: u64) {
    let count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    for _ in 0..n {
        let (count, done) = (count.clone(), done.clone());
        tokio::spawn(async move {
            if count.fetch_add(1, Ordering::Relaxed) + 1 == n {
                done.notify_one();
            }
        });
    }
    done.notified().await;
}

async fn smol_callbacks(ex: &async_executor::LocalExecutor<'static>, n: u64) {
    let count = Rc::new(Cell::new(0u64));
    let (tx, rx) = async_channel::bounded::<()>(1);
    for _ in 0..n {
        let (count, tx) = (count.clone(), tx.clone());
        ex.spawn(async move {
            count.set(count.get() + 1);
            if count.get() == n {
                let _ = tx.try_send(());
            }
        })
        .detach();
    }
    rx.recv().await.unwrap();
}

// ---- timers ------------------------------------------------------------------------------------

fn evloop_timers(lp: &EventLoop, delays: &[Duration]) -> Duration {
    let n = delays.len() as u64;
    let fired = Rc::new(Cell::new(0u64));
    let elapsed = timed(|| {
        let base = lp.time();
        for &delay in delays {
            let (fired, lp2) = (fired.clone(), lp.clone());
            lp.call_at(base + delay, move || {
                fired.set(fired.get() + 1);
                if fired.get() == n {
                    lp2.stop();
                }
            })
            .unwrap();
        }
        lp.run_forever().unwrap();
    });
    assert_eq!(fired.get(), n);
    elapsed
}

async fn tokio_timers(delays: &[Duration]) {
    let n = delays.len() as u64;
    let count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let base = tokio::time::Instant::now();
    for &delay in delays {
        let (count, done) = (count.clone(), done.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(base + delay).await;
            if count.fetch_add(1, Ordering::Relaxed) + 1 == n {
                done.notify_one();
            }
        });
    }
    done.notified().await;
}

async fn smol_timers(ex: &async_executor::LocalExecutor<'static>, delays: &[Duration]) {
    let n = delays.len() as u64;
    let count = Rc::new(Cell::new(0u64));
    let (tx, rx) = async_channel::bounded::<()>(1);
    let base = Instant::now();
    for &delay in delays {
        let (count, tx) = (count.clone(), tx.clone());
        ex.spawn(async move {
            async_io::Timer::at(base + delay).await;
            count.set(count.get() + 1);
            if count.get() == n {
                let _ = tx.try_send(());
            }
        })
        .detach();
    }
    rx.recv().await.unwrap();
}

// ---- tasks -------------------------------------------------------------------------------------

async fn evloop_tasks(n: u64) {
    let tasks: Vec<_> = (0..n)
        .map(|_| evloop::create_task(evloop::sleep(Duration::ZERO)))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

async fn tokio_tasks(n: u64) {
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(tokio::task::yield_now()))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

async fn smol_tasks(ex: &async_executor::LocalExecutor<'static>, n: u64) {
    let tasks: Vec<_> = (0..n)
        .map(|_| ex.spawn(futures_lite::future::yield_now()))
        .collect();
    for task in tasks {
        task.await;
    }
}

// ---- threadsafe --------------------------------------------------------------------------------

thread_local! {
    /// The loop's pending reply future: `call_soon_threadsafe` callbacks are `Send`, so the
    /// `!Send` future waits here on the loop thread (asyncio's `on_reply` closes over it).
    static REPLY: RefCell<Option<LoopFuture<u64>>> = const { RefCell::new(None) };
}

fn on_reply(m: u64) {
    let reply = REPLY
        .with(|r| r.borrow_mut().take())
        .expect("a pending reply");
    reply.set_result(m).unwrap();
}

/// The asyncio shape: the loop puts `i` on a std channel and awaits a future; the thread takes
/// it and `call_soon_threadsafe`s the reply, whose callback sets the future's result.
fn evloop_threadsafe(lp: &EventLoop, n: u64) -> Duration {
    let (to_thread, from_loop) = mpsc::channel::<u64>();
    let remote = lp.remote();
    let foreign = thread::spawn(move || {
        measured(|| {
            for m in from_loop {
                if remote.call_soon_threadsafe(move || on_reply(m)).is_err() {
                    break;
                }
            }
        })
    });
    let lp2 = lp.clone();
    let elapsed = timed(|| {
        lp.run_until_complete(async move {
            for i in 0..n {
                let reply = lp2.create_future::<u64>();
                REPLY.with(|r| *r.borrow_mut() = Some(reply.clone()));
                to_thread.send(i).unwrap();
                assert_eq!(reply.await.unwrap(), i);
            }
        })
        .expect("evloop run")
    });
    foreign.join().expect("foreign thread");
    elapsed
}

fn smol_threadsafe(ex: &async_executor::LocalExecutor<'static>, n: u64) -> Duration {
    let (to_thread, from_loop) = mpsc::channel::<u64>();
    let (to_loop, from_thread) = async_channel::unbounded::<u64>();
    let foreign = thread::spawn(move || {
        measured(|| {
            for m in from_loop {
                if to_loop.try_send(m).is_err() {
                    break;
                }
            }
        })
    });
    let elapsed = timed(|| {
        async_io::block_on(ex.run(async move {
            for i in 0..n {
                to_thread.send(i).unwrap();
                assert_eq!(from_thread.recv().await.unwrap(), i);
            }
        }))
    });
    foreign.join().expect("foreign thread");
    elapsed
}

/// What a round trip costs at the least: two blocking eventfds between two plain threads.
fn eventfd_floor(n: u64) -> Duration {
    let (ping, pong) = (EventFd::new(), EventFd::new());
    let (ping2, pong2) = (ping.clone(), pong.clone());
    let foreign = thread::spawn(move || {
        measured(|| {
            for _ in 0..n {
                ping2.read();
                pong2.write();
            }
        })
    });
    let elapsed = timed(|| {
        for _ in 0..n {
            ping.write();
            pong.read();
        }
    });
    foreign.join().expect("foreign thread");
    elapsed
}
