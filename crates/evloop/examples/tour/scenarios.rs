//! The tour's scenarios, shared with the integration tests that check their exact output.
//!
//! Each prints what asyncio's original program prints ("Task starting", "Task done", "Main
//! done", "Event loop is closed"), so the two can be compared line by line.

use std::rc::Rc;
use std::time::Duration;

use evloop::{EventLoop, ExceptionContext};

/// How long the programs sleep: asyncio's originals use 2 s for the task; tests use less.
pub(crate) struct Timing {
    /// The worker's sleep.
    pub(crate) task: Duration,
    /// How long main waits before returning early.
    pub(crate) main: Duration,
}

impl Timing {
    /// The originals' timings.
    pub(crate) fn asyncio() -> Timing {
        Timing {
            task: Duration::from_secs(2),
            main: Duration::from_millis(100),
        }
    }

    /// Short timings for tests (the tour itself uses the originals').
    #[allow(dead_code)]
    pub(crate) fn fast() -> Timing {
        Timing {
            task: Duration::from_millis(200),
            main: Duration::from_millis(20),
        }
    }
}

type Scenario = fn(&Timing);

/// Every scenario, in tour order.
pub(crate) const ALL: &[(&str, Scenario)] = &[
    ("callbacks", callbacks),
    ("normal-exit", normal_exit),
    ("early-return", early_return),
    ("task-left-pending", task_left_pending),
    ("main-fails", main_fails),
    ("task-fails", task_fails),
    ("close-inside", close_inside),
    ("stop-inside", stop_inside),
    ("subprocess-outlives", subprocess_outlives),
];

/// Prints how `run()` ended, the way a Python traceback would end the program.
fn report<T>(outcome: Result<Result<T, String>, evloop::RunError>) {
    match outcome {
        Ok(Ok(_)) => println!("Event loop is closed"),
        Ok(Err(error)) => println!("Error: {error}"),
        Err(error) => println!("Error: {error}"),
    }
}

/// Prints when the worker's future is dropped unfinished: Rust's `finally`.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        println!("Task cleanup (cancelled)");
    }
}

async fn worker(sleep_for: Duration) {
    let cleanup = Cleanup;
    println!("Task starting");
    evloop::sleep(sleep_for).await;
    println!("Task done");
    std::mem::forget(cleanup);
}

/// The engine alone: call_soon order, call_later, a call from another thread, a panic caught
/// by the exception handler, and stop.
pub(crate) fn callbacks(_: &Timing) {
    let lp = EventLoop::new().expect("a new loop");
    lp.set_exception_handler(Some(Rc::new(|_: &EventLoop, ctx: &ExceptionContext| {
        let error = ctx.exception.as_ref().map(|e| e.to_string());
        println!(
            "exception handler: {} ({})",
            ctx.message,
            error.unwrap_or_default()
        );
    })));
    for n in 1..=3 {
        lp.call_soon(move || println!("call_soon: callback {n}"))
            .expect("loop is open");
    }
    let remote = lp.remote();
    let thread = std::thread::spawn(move || {
        remote
            .call_soon_threadsafe(|| {
                println!("call_soon_threadsafe: hello from another thread");
                let lp = evloop::get_running_loop().expect("on the loop");
                let later = lp.clone();
                lp.call_later(Duration::from_millis(50), move || {
                    println!("call_later: fired after 50 ms");
                    later.call_soon(|| panic!("boom")).expect("open");
                    later
                        .call_soon(|| println!("the loop goes on after the panic"))
                        .expect("open");
                    let stopper = later.clone();
                    later.call_soon(move || stopper.stop()).expect("open");
                })
                .expect("open");
            })
            .expect("loop is open");
    });
    lp.run_forever().expect("runs");
    thread.join().expect("thread ends");
    println!("stop: run_forever returned");
    lp.close().expect("not running");
    println!("Event loop is closed");
}

/// S1: main awaits a task that sleeps.
pub(crate) fn normal_exit(timing: &Timing) {
    let task_sleep = timing.task;
    report(evloop::run(async move {
        let task = evloop::create_task(worker(task_sleep));
        task.await.map_err(|e| e.to_string())?;
        println!("Main done");
        Ok(())
    }));
}

/// S2: main returns while the task sleeps; run() cancels the task during its shutdown.
pub(crate) fn early_return(timing: &Timing) {
    let (task_sleep, main_sleep) = (timing.task, timing.main);
    report(evloop::run(async move {
        evloop::create_task(worker(task_sleep)).detach();
        evloop::sleep(main_sleep).await;
        println!("Main done");
        Ok::<_, String>(())
    }));
}

/// main returns right after a zero sleep: the task has started, nothing more.
pub(crate) fn task_left_pending(timing: &Timing) {
    let task_sleep = timing.task;
    report(evloop::run(async move {
        evloop::create_task(worker(task_sleep)).detach();
        evloop::sleep(Duration::ZERO).await;
        println!("Main done");
        Ok::<_, String>(())
    }));
}

/// S3: main fails while the task sleeps; the task's clean-up runs before the caller sees it.
pub(crate) fn main_fails(timing: &Timing) {
    let (task_sleep, main_sleep) = (timing.task, timing.main);
    report(evloop::run(async move {
        evloop::create_task(worker(task_sleep)).detach();
        evloop::sleep(main_sleep).await;
        Err::<(), _>("Stop this thing".to_owned())
    }));
}

/// The awaited task fails; the failure travels through main to the caller.
pub(crate) fn task_fails(timing: &Timing) {
    let task_sleep = timing.task;
    report(evloop::run(async move {
        let task = evloop::create_task(async move {
            println!("Task starting");
            evloop::sleep(task_sleep / 10).await;
            Err::<(), _>("Stop this thing".to_owned())
        });
        task.await.map_err(|e| e.to_string())??;
        println!("Main done");
        Ok(())
    }));
}

/// S4: close() from inside a coroutine.
pub(crate) fn close_inside(_: &Timing) {
    report(evloop::run(async {
        let lp = evloop::get_running_loop().map_err(|e| e.to_string())?;
        lp.close().map_err(|e| e.to_string())?;
        println!("Main done");
        Ok(())
    }));
}

/// S5: stop() from inside a coroutine: the step finishes, then run() fails.
pub(crate) fn stop_inside(_: &Timing) {
    report(evloop::run(async {
        let lp = evloop::get_running_loop().map_err(|e| e.to_string())?;
        lp.stop();
        println!("Main done");
        evloop::sleep(Duration::from_secs(1)).await;
        Ok(())
    }));
}

/// S6: main returns while a task awaits `create_subprocess_shell("sleep 2; echo hi")`. Closing
/// the loop sends the child no signal: it runs on and prints "hi" after "Event loop is closed".
pub(crate) fn subprocess_outlives(timing: &Timing) {
    let (child_sleep, main_sleep) = (timing.task, timing.main);
    report(evloop::run(async move {
        evloop::create_task(async move {
            println!("Task starting");
            let cmd = format!("sleep {}; echo hi", child_sleep.as_secs_f64());
            let child = evloop::process::create_subprocess_shell(cmd)
                .spawn()
                .expect("spawn sh");
            // Cancelled by run()'s shutdown while the child still runs.
            child.wait().await;
            println!("Task done");
        })
        .detach();
        evloop::sleep(main_sleep).await;
        println!("Main done");
        Ok::<_, String>(())
    }));
}
