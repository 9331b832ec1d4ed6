//! What this process holds, read from `/proc`: fds, threads (by name, with their CPU time) and
//! child processes, live or zombie. Tests that count these run in a child process of their own
//! ([`crate::in_child`]), so that parallel tests do not disturb the counts.

use std::collections::BTreeSet;

/// The open fds of this process (their numbers, as `/proc/self/fd` names them).
///
/// ```
/// let before = evloop_test_support::open_fds();
/// let file = std::fs::File::open("/proc/self/stat").unwrap();
/// assert_eq!(evloop_test_support::open_fds().len(), before.len() + 1);
/// drop(file);
/// ```
pub fn open_fds() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The names (comm) of this process's threads.
///
/// ```
/// std::thread::Builder::new().name("named-one".into()).spawn(|| {
///     assert!(evloop_test_support::procfs::thread_names().contains(&"named-one".to_owned()));
/// }).unwrap().join().unwrap();
/// ```
pub fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|entry| {
            // A thread may exit between listing and reading.
            std::fs::read_to_string(entry.ok()?.path().join("comm"))
                .ok()
                .map(|s| s.trim_end().to_owned())
        })
        .collect()
}

/// How many threads of this process have a name starting with `prefix`.
///
/// ```
/// assert_eq!(evloop_test_support::threads_named("no-such-thread"), 0);
/// ```
pub fn threads_named(prefix: &str) -> usize {
    thread_names()
        .iter()
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// The number of threads of this process.
///
/// ```
/// assert!(evloop_test_support::procfs::thread_count() >= 1);
/// ```
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// CPU time (user + system, in clock ticks) used so far by this process's threads whose name
/// starts with `prefix`, from /proc/self/task/*/stat.
///
/// ```
/// assert_eq!(evloop_test_support::procfs::cpu_ticks_of_threads_named("no-such-thread"), 0);
/// ```
pub fn cpu_ticks_of_threads_named(prefix: &str) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if !comm.starts_with(prefix) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let utime: u64 = fields[11].parse().unwrap();
        let stime: u64 = fields[12].parse().unwrap();
        total += utime + stime;
    }
    total
}

/// The pids of every process whose parent is this process (live or zombie).
///
/// ```
/// let mut child = std::process::Command::new("true").spawn().unwrap();
/// assert!(evloop_test_support::procfs::children().contains(&child.id()));
/// child.wait().unwrap();
/// ```
pub fn children() -> Vec<u32> {
    let me = std::process::id();
    let mut kids = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok())
    {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((_, ppid)) = stat(pid) {
            if ppid == me {
                kids.push(pid);
            }
        }
    }
    kids
}

/// `(state, ppid)` from `/proc/<pid>/stat` (state R, S, Z...), if the process exists.
///
/// ```
/// let (state, _) = evloop_test_support::procfs::stat(std::process::id()).unwrap();
/// assert_eq!(state, 'R');
/// ```
pub fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The state letter of `pid` (R, S, Z...), or None if it is gone.
///
/// ```
/// assert_eq!(evloop_test_support::procfs::proc_state(std::process::id()), Some('R'));
/// ```
pub fn proc_state(pid: u32) -> Option<char> {
    stat(pid).map(|(state, _)| state)
}

/// Whether `pid` is gone or a zombie (dead, not yet reaped by whoever now owns it).
///
/// ```
/// assert!(!evloop_test_support::procfs::is_dead(std::process::id()));
/// ```
pub fn is_dead(pid: u32) -> bool {
    !matches!(stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}
