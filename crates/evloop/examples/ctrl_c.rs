//! Ctrl-C under `evloop::run()` (asyncio G6): run it and press Ctrl-C.
//!
//! ```text
//! cargo run -p evloop --example ctrl_c            # main is cancelled: "interrupted", exit 130
//! cargo run -p evloop --example ctrl_c -- catch   # main catches it and returns 42
//! cargo run -p evloop --example ctrl_c -- stubborn  # main ignores it; a second Ctrl-C interrupts
//! ```

use std::time::Duration;

use evloop::{RunError, catch_cancel, sleep};

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
