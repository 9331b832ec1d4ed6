//! A test run in a child process of its own: this test binary re-executed with `<name> --exact`,
//! for tests that change signal dispositions, rlimits or the fd table, count threads, fds or
//! children, kill processes, or read their own stderr. Other tests of the same binary run in
//! parallel threads and would disturb (or be disturbed by) all of those.

use std::process::Command;

/// Set in the child to the name of the test it is to run.
const CHILD_ENV: &str = "EVLOOP_TEST_ISOLATED";

/// The command that runs test `name` of this binary alone, as a child (where [`is_child`] holds).
/// Add environment variables or pipes to it, or use [`in_child`] / [`isolated`] for the common
/// case. In a test binary made of modules, `name` is the full path (`module::test`).
///
/// ```no_run
/// #[test]
/// fn writes_to_its_stderr() {
///     if evloop_test_support::is_child() {
///         eprintln!("from the child");
///         return;
///     }
///     let out = evloop_test_support::child_command("writes_to_its_stderr").output().unwrap();
///     assert!(String::from_utf8_lossy(&out.stderr).contains("from the child"));
/// }
/// ```
pub fn child_command(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary's path"));
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name);
    cmd
}

/// Whether this process is a child started by [`child_command`] (whichever test it runs).
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs `body` in a child process of its own: in the child, runs `body`; in the parent, asserts
/// that the child ran exactly that test and passed.
///
/// ```no_run
/// #[test]
/// fn changes_a_signal_disposition() {
///     evloop_test_support::isolated("changes_a_signal_disposition", || {
///         // ... install a handler, raise the signal ...
///     });
/// }
/// ```
pub fn isolated(name: &str, body: impl FnOnce()) {
    if !in_child(name) {
        body();
    }
}

/// The other form of [`isolated`]: `if in_child("name") { return; }` at the top of test `name`.
/// In the parent it runs the child, asserts it ran that one test and passed, and returns true; in
/// the child (where the test's body must run) it returns false.
///
/// ```no_run
/// #[test]
/// fn counts_its_own_fds() {
///     if evloop_test_support::in_child("counts_its_own_fds") {
///         return;
///     }
///     let before = evloop_test_support::open_fds();
///     // ... open and close things ...
///     assert_eq!(evloop_test_support::open_fds(), before);
/// }
/// ```
pub fn in_child(name: &str) -> bool {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        return false;
    }
    let output = child_command(name)
        .output()
        .expect("re-running the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "isolated test {name} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    // libtest announces how many tests the filter selected before running them; this still
    // shows when the test closed its own stdout.
    assert!(
        stdout.contains("running 1 test\n"),
        "isolated test {name} did not run (no test of that name?):\n{stdout}"
    );
    true
}
