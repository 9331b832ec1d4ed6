//! Helpers shared by the evloop integration tests: a runner for `harness = false` test binaries,
//! running a test in a child process of its own (for fd and thread counts, which other tests in
//! the same process would disturb), reading the process's fd table, and waiting for a condition on
//! the loop.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

#[allow(unused_imports)]
pub use evloop_test_support::in_child;

/// Sleeps on the loop in small steps until `done()` holds; a bounded wait (a failure, not a
/// hang), for conditions that depend on the kernel delivering bytes.
pub async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if done() {
            return;
        }
        evloop::sleep(Duration::from_micros(100)).await;
    }
    panic!("condition not reached");
}

/// How many fds this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The threads of this process whose name starts with `prefix`.
pub fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end().starts_with(prefix))
        .count()
}

/// Sets SO_LINGER to zero, so that dropping `stream` sends RST instead of FIN.
pub fn reset_on_close(stream: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket with a live linger struct of the right size.
    let ret = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0);
}

/// A test of a `harness = false` binary: its name and its body (a panic fails it).
pub type NamedTest = (&'static str, fn());

/// Runs `tests` with enough of libtest's command line for `cargo test` and `cargo nextest`:
/// `--list` (terse format; nothing is ignored), name filters, `--exact`. For test binaries that
/// need their own `main` (SIGINT goes to the main thread; `#[evloop::main]` owns `main`).
pub fn run_named_tests(tests: &[NamedTest]) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            for (name, _) in tests {
                println!("{name}: test");
            }
        }
        return;
    }
    let exact = args.iter().any(|a| a == "--exact");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let mut passed = 0;
    for (name, test) in tests {
        let selected = filters.is_empty()
            || filters.iter().any(|f| {
                if exact {
                    name == f
                } else {
                    name.contains(f.as_str())
                }
            });
        if selected {
            test();
            println!("test {name} ... ok");
            passed += 1;
        }
    }
    println!("{passed} passed, 0 failed");
}
