//! What `#[evloop::main]` and `#[evloop::test]` expand into: the worker entry check, then the body
//! under [`run`](crate::run), with its outcome turned into an exit code or a test result. Kept
//! here, not in the macros, so the expansions stay one call each and the logic is tested as code.

use std::future::Future;
use std::process::{ExitCode, Termination};

use crate::error::RunError;

/// The exit code of a program interrupted by Ctrl-C: 128 + SIGINT, what a shell shows for
/// Python's `KeyboardInterrupt`.
const INTERRUPTED_EXIT_CODE: u8 = 130;

/// The process pool's worker entry check (a no-op without the `process-pool` feature).
pub fn worker_entry_check() {
    #[cfg(feature = "process-pool")]
    evloop_process_pool::init();
}

/// Makes `function` in `module_path` the test process-pool workers start as (a no-op without
/// the `process-pool` feature).
pub fn register_test_worker(module_path: &'static str, function: &'static str) {
    #[cfg(feature = "process-pool")]
    evloop_process_pool::testing::register(module_path, function);
    #[cfg(not(feature = "process-pool"))]
    let _ = (module_path, function);
}

/// `#[evloop::main]`: runs `main` and turns its outcome into the process's exit code.
pub fn run_main<F>(main: F) -> ExitCode
where
    F: Future + 'static,
    F::Output: Termination + 'static,
{
    match crate::run(main) {
        Ok(output) => output.report(),
        Err(RunError::Interrupted) => {
            eprintln!("{}", RunError::Interrupted);
            ExitCode::from(INTERRUPTED_EXIT_CODE)
        }
        Err(error) => {
            eprintln!("Error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `#[evloop::test]`: runs `test` on a loop of its own and gives its output to libtest; a run
/// without a value (a panic, a cancellation) fails the test with the reason.
pub fn run_test<F>(test: F) -> F::Output
where
    F: Future + 'static,
    F::Output: 'static,
{
    match crate::run(test) {
        Ok(output) => output,
        Err(error) => panic!("{error}"),
    }
}
