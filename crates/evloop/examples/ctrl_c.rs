//! Ctrl-C under `evloop::run()` (asyncio G6): run it and press Ctrl-C.
//!
//! ```text
//! cargo run -p evloop --example ctrl_c            # main is cancelled: "interrupted", exit 130
//! cargo run -p evloop --example ctrl_c -- catch   # main catches it and returns 42
//! cargo run -p evloop --example ctrl_c -- stubborn  # main ignores it; a second Ctrl-C interrupts
//! cargo run -p evloop --example ctrl_c -- awaits-task  # the task main awaits is cancelled too
//! cargo run -p evloop --example ctrl_c -- cancelled-first  # main was cancelled by the program
//!                                                          # first: run() reports the cancellation
//! ```

use std::time::Duration;

use evloop::{RunError, catch_cancel, create_task, current_task, sleep};

/// Says so when the task holding it is cancelled (its future dropped).
struct Announce(&'static str);

impl Drop for Announce {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

/// The program's main: how it reacts to Ctrl-C depends on `mode` (shared with tests/ctrl_c.rs).
pub(crate) async fn main_task(mode: String) -> i32 {
    println!("ready");
    match mode.as_str() {
        "catch" => match catch_cancel(sleep(Duration::from_secs(60))).await {
            Ok(()) => 0,
            Err(_) => {
                println!("main caught the cancellation");
                42
            }
        },
        "stubborn" => {
            let _ = catch_cancel(sleep(Duration::from_secs(60))).await;
            println!("main ignores the first Ctrl-C");
            sleep(Duration::from_secs(60)).await;
            0
        }
        "awaits-task" => {
            let child = create_task(async {
                let _announce = Announce("the task main awaits was cancelled too");
                sleep(Duration::from_secs(60)).await;
            });
            let _ = child.await;
            0
        }
        "cancelled-first" => {
            // asyncio's test_interrupt_cancelled_task: another task cancels main, then Ctrl-C
            // arrives; uncancel() does not reach 0, so run() reports the cancellation.
            let main = current_task().expect("main is a task");
            create_task(async move {
                sleep(Duration::ZERO).await;
                main.cancel();
                // SAFETY: raise(2) sends SIGINT to this process, as a Ctrl-C would.
                unsafe { libc::raise(libc::SIGINT) };
            })
            .detach();
            sleep(Duration::from_secs(60)).await;
            0
        }
        _ => {
            sleep(Duration::from_secs(60)).await;
            0
        }
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    match evloop::run(main_task(mode)) {
        Ok(value) => println!("run -> {value}"),
        Err(RunError::Interrupted) => {
            println!("interrupted");
            std::process::exit(130);
        }
        Err(error) => {
            println!("error: {error}");
            std::process::exit(1);
        }
    }
}
