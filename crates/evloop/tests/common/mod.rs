//! Helpers shared by the evloop integration tests.

#![allow(dead_code, unreachable_pub)]

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
