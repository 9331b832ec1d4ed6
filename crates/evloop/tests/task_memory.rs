//! What a task costs in memory, and the cheap sleep: a spawn is one small allocation, a finished
//! task is freed at once (the loop's registry keeps no finished task), `sleep(ZERO)` is a bare
//! yield that allocates nothing and is cancellable at its await, and loop-bound calls made off a
//! loop say where they were made.
//!
//! Allocations are counted per thread by a counting global allocator, so tests running in
//! parallel on other threads do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::Duration;

use evloop::{Cancelled, TaskError, all_tasks, catch_cancel, create_task, sleep, yield_now};

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(bytes: isize) {
    let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
    if bytes > 0 {
        let _ = COUNT.try_with(|count| count.set(count.get() + 1));
        let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(bytes as usize)));
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; the bookkeeping touches
// only const-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            note(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        // SAFETY: forwarded: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live bytes allocated by this thread.
fn live() -> isize {
    LIVE.with(Cell::get)
}

/// (allocations, largest allocation) made by this thread while `f` runs.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, usize, R) {
    let count = COUNT.with(Cell::get);
    LARGEST.with(|largest| largest.set(0));
    let out = f();
    (COUNT.with(Cell::get) - count, LARGEST.with(Cell::get), out)
}

/// Lets every ready task run a few steps.
async fn settle() {
    for _ in 0..4 {
        yield_now().await;
    }
}

const TASKS: usize = 2_000;

#[test]
fn finished_tasks_are_freed_at_once_not_kept_by_the_registry() {
    evloop::run(async {
        // Warm up: the registry, the ready queue and the handles' vector reach full size.
        let warm: Vec<_> = (0..TASKS)
            .map(|_| create_task(sleep(Duration::ZERO)))
            .collect();
        for task in warm {
            task.await.unwrap();
        }
        let before = live();
        for _ in 0..TASKS {
            create_task(sleep(Duration::ZERO)).detach();
        }
        let while_live = live() - before;
        settle().await;
        let after = live() - before;
        assert!(
            while_live >= (TASKS * 64) as isize,
            "{TASKS} live tasks hold their cells ({while_live} bytes)"
        );
        assert!(
            after < (TASKS * 8) as isize,
            "{TASKS} finished, detached tasks still hold {after} bytes: the registry kept them"
        );
    })
    .unwrap();
}

/// Spawns `TASKS` sleepers, cancels them all while they sleep, and awaits them.
async fn cancel_sleepers() {
    let sleepers: Vec<_> = (0..TASKS)
        .map(|_| create_task(sleep(Duration::from_secs(3600))))
        .collect();
    settle().await;
    for task in &sleepers {
        task.cancel();
    }
    for task in sleepers {
        assert!(matches!(task.await, Err(TaskError::Cancelled(_))));
    }
}

#[test]
fn cancelled_tasks_are_freed_once_their_handles_go() {
    evloop::run(async {
        // Warm up: the registry, the ready queue and the loop's timers reach full size.
        cancel_sleepers().await;
        let before = live();
        cancel_sleepers().await;
        assert!(
            live() - before < (TASKS * 8) as isize,
            "cancelled tasks are still held: {} bytes",
            live() - before
        );
    })
    .unwrap();
}

#[test]
fn spawning_a_sleep_zero_task_is_one_allocation_of_at_most_120_bytes_without_tracing() {
    evloop::run(async {
        let warm: Vec<_> = (0..64)
            .map(|_| create_task(sleep(Duration::ZERO)))
            .collect();
        for task in warm {
            task.await.unwrap();
        }
        let (count, largest, task) =
            allocations(|| create_task(async { sleep(Duration::ZERO).await }));
        assert_eq!(
            count, 1,
            "one allocation per spawn: the cell (largest {largest})"
        );
        // The `tracing` feature adds the task's span (40 bytes) to every cell.
        let limit = if cfg!(feature = "tracing") { 160 } else { 120 };
        assert!(largest <= limit, "the cell is {largest} bytes");
        task.await.unwrap();
    })
    .unwrap();
}

#[test]
fn sleep_zero_sets_no_timer_and_allocates_nothing() {
    evloop::run(async {
        sleep(Duration::ZERO).await; // warm the ready queue
        let lp = evloop::get_running_loop().unwrap();
        let before = COUNT.with(Cell::get);
        let future = sleep(Duration::ZERO);
        assert_eq!(future.deadline(), None, "no timer is armed");
        future.await;
        assert_eq!(COUNT.with(Cell::get) - before, 0, "sleep(ZERO) allocated");
        drop(lp);
    })
    .unwrap();
}

/// Runs one task that sleeps zero (inside `catch_cancel` when `caught`), cancels it while it is
/// yielded, and returns what awaiting it gave.
fn cancel_while_yielded(caught: bool) -> Result<&'static str, TaskError> {
    evloop::run(async move {
        let task = create_task(async move {
            if caught {
                match catch_cancel(sleep(Duration::ZERO)).await {
                    Ok(()) => "slept",
                    Err(cancelled) if cancelled.message() == Some("stop") => "caught",
                    Err(_) => "caught without the message",
                }
            } else {
                sleep(Duration::ZERO).await;
                "slept"
            }
        });
        yield_now().await; // the task's first step: it is now yielded inside sleep(ZERO)
        assert!(task.cancel_with("stop"));
        task.await
    })
    .unwrap()
}

#[test]
fn a_cancel_while_yielded_in_sleep_zero_raises_cancelled_at_the_await() {
    assert_eq!(cancel_while_yielded(true), Ok("caught"));
    assert_eq!(
        cancel_while_yielded(false),
        Err(TaskError::Cancelled(Cancelled::with_message("stop")))
    );
}

/// The slots of ended tasks are reused: a second wave as big as the first allocates its cells
/// and nothing else (no registry growth, no free-list growth).
#[test]
fn a_second_wave_of_tasks_reuses_the_first_waves_registry_slots() {
    evloop::run(async {
        const WAVE: usize = 1_000;
        for _ in 0..2 {
            let wave: Vec<_> = (0..WAVE)
                .map(|_| create_task(sleep(Duration::ZERO)))
                .collect();
            for task in wave {
                task.await.unwrap();
            }
        }
        let mut wave = Vec::with_capacity(WAVE);
        let (count, _, ()) = allocations(|| {
            for _ in 0..WAVE {
                wave.push(create_task(sleep(Duration::ZERO)));
            }
        });
        assert_eq!(count, WAVE, "one allocation per task: its cell");
        for task in wave {
            task.await.unwrap();
        }
    })
    .unwrap();
}

#[test]
fn all_tasks_lists_live_tasks_in_creation_order_when_slots_are_reused() {
    evloop::run(async {
        let a = create_task(sleep(Duration::from_secs(3600)));
        let b = create_task(async {});
        let c = create_task(sleep(Duration::from_secs(3600)));
        b.await.unwrap(); // b's slot is free again
        let d = create_task(sleep(Duration::from_secs(3600)));
        let ids: Vec<u64> = all_tasks().iter().map(|t| t.id()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "creation order");
        let listed = |t: &evloop::AnyTask| ids.contains(&t.id());
        assert!(listed(&a.any()) && listed(&c.any()) && listed(&d.any()));
        assert_eq!(ids.len(), 4, "a, c, d and main: {ids:?}");
        for task in [a, c, d] {
            task.abort();
        }
    })
    .unwrap();
}

/// Polls `future` once off any loop and returns the panic's message.
fn panic_off_a_loop(future: impl Future) -> String {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = future.as_mut().poll(&mut cx);
    }));
    let Err(payload) = caught else {
        panic!("polling off a loop should panic")
    };
    evloop::Panic::from_payload(payload).message().to_owned()
}

#[test]
fn sleep_awaited_outside_a_loop_panics_naming_the_callers_line_and_says_what_to_do() {
    let line = line!() + 1;
    let message = panic_off_a_loop(sleep(Duration::from_secs(1)));
    assert!(
        message.contains(&format!("tests/task_memory.rs:{line}:")),
        "{message}"
    );
    assert!(message.contains("no running event loop"), "{message}");
    assert!(message.contains("inside evloop::run"), "{message}");

    let line = line!() + 1;
    let message = panic_off_a_loop(evloop::timeout(
        Duration::from_secs(1),
        std::future::pending::<()>(),
    ));
    assert!(
        message.contains(&format!("tests/task_memory.rs:{line}:")),
        "{message}"
    );
}

#[test]
fn a_sleep_made_before_the_loop_starts_runs_on_the_loop_that_polls_it() {
    let nap = sleep(Duration::from_millis(1));
    evloop::run(nap).unwrap();
}
