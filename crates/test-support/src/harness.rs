//! A runner for `harness = false` test binaries (those that need their own `main`: SIGINT goes
//! to the main thread; `#[evloop::main]` owns `main`), with enough of libtest's command line for
//! `cargo test` and `cargo nextest`.

/// A test of a `harness = false` binary: its name and its body (a panic fails it).
pub type NamedTest = (&'static str, fn());

/// Runs `tests` with enough of libtest's command line for `cargo test` and `cargo nextest`:
/// `--list` (terse format; nothing is ignored), name filters, `--exact`.
///
/// ```no_run
/// // tests/my_binary.rs, with `harness = false` in Cargo.toml:
/// fn adds() {
///     assert_eq!(1 + 1, 2);
/// }
/// evloop_test_support::run_named_tests(&[("adds", adds)]);
/// ```
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
