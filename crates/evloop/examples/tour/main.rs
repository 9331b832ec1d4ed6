//! The evloop tour: asyncio's classic programs, reproduced line for line.
//!
//! `cargo run --release --example tour` runs every scenario in order, each under a header line;
//! `cargo run --release --example tour -- NAME` runs just one (`-- --list` lists them).

mod scenarios;

use std::process::ExitCode;

fn main() -> ExitCode {
    // The process pool's worker entry check, first thing: the `executors` scenario starts worker
    // processes, which are this binary run again (the Rust form of `if __name__ == '__main__'`).
    evloop::process_pool::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in scenarios::ALL {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    // Every panic in the tour is deliberate and reported by the loop's exception handler; the
    // default hook's message and backtrace would only repeat it.
    std::panic::set_hook(Box::new(|_| {}));
    let timing = scenarios::Timing::asyncio();
    let selected: Vec<_> = match args.first() {
        Some(name) => match scenarios::ALL.iter().find(|(n, _)| n == name) {
            Some(found) => vec![*found],
            None => {
                eprintln!("unknown scenario {name:?}; try --list");
                return ExitCode::FAILURE;
            }
        },
        None => scenarios::ALL.to_vec(),
    };
    for (name, scenario) in selected {
        println!("\n== {name} ==");
        scenario(&timing);
    }
    ExitCode::SUCCESS
}
