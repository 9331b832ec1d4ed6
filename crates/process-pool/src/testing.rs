//! Workers for test binaries, where libtest owns `main`.
//!
//! A worker is a fresh execution of the current binary, and for a test binary that means libtest's
//! `main`, which would run every test again. [`test_worker!`](crate::test_worker) defines one test
//! function that does nothing but the worker entry check, and registers its name (from a
//! life-before-main constructor, which only stores two `&'static str`s) so the pool starts workers
//! as `<test binary> <that test> --exact --nocapture`. libtest (under `cargo test`) and cargo-nextest
//! alike then run just that function, which turns into the worker. Run normally, the function finds
//! no worker variable and passes at once.

use std::ffi::OsString;
use std::sync::Mutex;

static REGISTERED: Mutex<Option<(&'static str, &'static str)>> = Mutex::new(None);

/// Records the test function the pool re-executes into. Called by [`test_worker!`](crate::test_worker)
/// before `main`; not meant to be called by hand.
///
/// ```
/// evloop_process_pool::testing::register("my_tests::sub", "worker_entry");
/// ```
pub fn register(module_path: &'static str, function: &'static str) {
    *REGISTERED.lock().unwrap_or_else(|e| e.into_inner()) = Some((module_path, function));
}

/// The worker arguments for the registered test function, if any: libtest's test names leave out
/// the crate name that `module_path!()` starts with.
pub(crate) fn worker_args() -> Option<Vec<OsString>> {
    let (module, function) = (*REGISTERED.lock().unwrap_or_else(|e| e.into_inner()))?;
    let name = match module.split_once("::") {
        Some((_crate, rest)) => format!("{rest}::{function}"),
        None => function.to_owned(),
    };
    Some(vec![name.into(), "--exact".into(), "--nocapture".into()])
}

/// Makes process pools work in this test binary: defines the test function workers run as and
/// registers it before `main`. Use it once per integration-test crate (any module).
///
/// ```ignore
/// // tests/my_pool_tests.rs
/// evloop_process_pool::test_worker!();
///
/// #[test]
/// fn squares() {
///     let pool = evloop_process_pool::ProcessPool::new();
///     assert_eq!(pool.submit(|x: u32| x * x, 3).unwrap().wait(), Ok(9));
/// }
/// ```
#[macro_export]
macro_rules! test_worker {
    () => {
        #[test]
        fn evloop_process_pool_test_worker() {
            $crate::init();
        }

        const _: () = {
            extern "C" fn __evloop_process_pool_register() {
                $crate::testing::register(
                    ::core::module_path!(),
                    "evloop_process_pool_test_worker",
                );
            }
            // Life before main, the way constructors work on ELF: the loader calls every function
            // in `.init_array`. The function only stores two static strings.
            #[used]
            #[unsafe(link_section = ".init_array")]
            static __EVLOOP_PROCESS_POOL_REGISTER: extern "C" fn() = __evloop_process_pool_register;
        };
    };
}
