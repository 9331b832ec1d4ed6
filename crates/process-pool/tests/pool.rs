//! The process pool end to end: real worker processes re-executed from this test binary.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use evloop_process_pool::{POOL_NOT_USABLE, ProcessPool, ProcessPoolError, TERMINATED_ABRUPTLY};
use evloop_test_support::procfs::{children, is_dead};
use evloop_test_support::{child_command, eventually, in_child, open_fds};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

evloop_process_pool::test_worker!();

fn pid_after(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

fn square(x: u64) -> u64 {
    x * x
}

fn pool(workers: usize) -> ProcessPool {
    ProcessPool::builder().max_workers(workers).build().unwrap()
}

fn broken_text(result: Result<impl std::fmt::Debug, ProcessPoolError>) -> String {
    match result {
        Err(ProcessPoolError::BrokenProcessPool(b)) => b.message().to_owned(),
        other => panic!("expected BrokenProcessPool, got {other:?}"),
    }
}

#[test]
fn submit_runs_in_another_process_and_reuses_one_worker() {
    let pool = pool(2);
    assert!(pool.worker_pids().is_empty(), "workers start lazily");
    let pids: Vec<u32> = (0..5)
        .map(|_| pool.submit(pid_after, 0).unwrap().wait().unwrap())
        .collect();
    assert!(
        pids.iter()
            .all(|&p| p == pids[0] && p != std::process::id()),
        "{pids:?}"
    );
    assert_eq!(pool.worker_pids(), vec![pids[0]]);
    assert_eq!(pool.submit(square, 12).unwrap().wait(), Ok(144));
}

#[test]
fn closures_and_owned_types_travel() {
    let pool = pool(1);
    let f = pool
        .submit(|v: Vec<String>| v.join("+"), vec!["a".into(), "b".into()])
        .unwrap();
    assert_eq!(f.wait().unwrap(), "a+b");
}

#[test]
fn a_panic_is_the_jobs_error_and_the_worker_survives() {
    let pool = pool(1);
    let first = pool.submit(pid_after, 0).unwrap().wait().unwrap();
    let err = pool
        .submit(|x: u32| -> u32 { panic!("no good: {x}") }, 7)
        .unwrap()
        .wait();
    assert_eq!(err, Err(ProcessPoolError::Panicked("no good: 7".into())));
    assert_eq!(pool.submit(pid_after, 0).unwrap().wait(), Ok(first));
}

/// Serializes only when `ok`; deserializes only values other than 13.
#[derive(Debug, PartialEq)]
struct Picky {
    ok: bool,
    n: u32,
}

impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !self.ok {
            return Err(serde::ser::Error::custom("Picky refuses to serialize"));
        }
        self.n.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        if n == 13 {
            return Err(serde::de::Error::custom("Picky refuses 13"));
        }
        Ok(Picky { ok: true, n })
    }
}

/// Each failure names the direction, and the type's own message survives the codec.
#[test]
fn bad_arguments_and_results_fail_only_their_job() {
    let pool = pool(1);
    let id = |p: Picky| p.n;
    let err = pool
        .submit(id, Picky { ok: false, n: 1 })
        .unwrap()
        .wait()
        .unwrap_err();
    assert!(
        matches!(&err, ProcessPoolError::Serialization(m) if m == "cannot encode the argument: Picky refuses to serialize"),
        "{err}"
    );
    let err = pool
        .submit(id, Picky { ok: true, n: 13 })
        .unwrap()
        .wait()
        .unwrap_err();
    assert!(
        matches!(&err, ProcessPoolError::Serialization(m) if m == "cannot decode the argument: Picky refuses 13"),
        "{err}"
    );
    let bad_result = |n: u32| Picky { ok: n != 0, n };
    let err = pool.submit(bad_result, 0).unwrap().wait().unwrap_err();
    assert!(
        matches!(&err, ProcessPoolError::Serialization(m) if m == "cannot encode the result: Picky refuses to serialize"),
        "{err}"
    );
    let err = pool.submit(bad_result, 13).unwrap().wait().unwrap_err();
    assert!(
        matches!(&err, ProcessPoolError::Serialization(m) if m == "cannot decode the result: Picky refuses 13"),
        "{err}"
    );
    assert_eq!(
        pool.submit(square, 3).unwrap().wait(),
        Ok(9),
        "the pool is still usable"
    );
}

fn check_broken_by<F: Fn(u32) -> u32 + Send + Sync + 'static>(job: F) {
    let pool = pool(1);
    let running = pool.submit(job, 0).unwrap();
    let pending: Vec<_> = (0..5).map(|_| pool.submit(pid_after, 0).unwrap()).collect();
    assert_eq!(broken_text(running.wait()), TERMINATED_ABRUPTLY);
    for f in pending {
        assert_eq!(broken_text(f.wait()), TERMINATED_ABRUPTLY);
    }
    assert_eq!(broken_text(pool.submit(square, 1)), POOL_NOT_USABLE);
}

fn noisy_square(x: u64) -> u64 {
    println!("noise on stdout");
    x * x
}

#[test]
fn works_after_the_parent_closed_stdin_and_stdout() {
    if in_child("works_after_the_parent_closed_stdin_and_stdout") {
        return;
    }
    // A daemon-like program closes stdin and stdout: a socketpair then lands on fds 0 and 1.
    // The worker's end would double as its stdout, and the parent's end as the parent's own
    // stdout, so a println! on either side would corrupt the channel, unless both move above 2.
    // SAFETY: closing fds 0 and 1 of this isolated test process; only stderr is used below.
    unsafe {
        libc::close(0);
        libc::close(1);
    }
    let pool = pool(1);
    assert_eq!(pool.submit(noisy_square, 7).unwrap().wait().unwrap(), 49);
    for fd in [0, 1] {
        // SAFETY: F_GETFD only queries the descriptor table.
        let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
        assert!(!open, "fd {fd} was taken by the pool's channel");
    }
    // Bytes that would look like a frame if they reached the channel.
    println!("\u{4}\0\0\0 the parent prints too");
    assert_eq!(pool.submit(noisy_square, 8).unwrap().wait().unwrap(), 64);
}

#[test]
fn abort_in_a_job_breaks_the_pool() {
    if !in_child("abort_in_a_job_breaks_the_pool") {
        check_broken_by(|_| std::process::abort());
    }
}

#[test]
fn process_exit_in_a_job_breaks_the_pool() {
    if !in_child("process_exit_in_a_job_breaks_the_pool") {
        check_broken_by(|_| std::process::exit(3));
    }
}

#[test]
fn sigkill_mid_job_breaks_the_pool() {
    if in_child("sigkill_mid_job_breaks_the_pool") {
        return;
    }
    let pool = pool(2);
    let slow = pool.submit(pid_after, 60_000).unwrap();
    let queued: Vec<_> = (0..40)
        .map(|_| pool.submit(pid_after, 60_000).unwrap())
        .collect();
    eventually("two workers", || pool.worker_pids().len() == 2);
    let victim = pool.worker_pids()[0];
    // SAFETY: kill(2) with a pid of our own unreaped child.
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    assert_eq!(broken_text(slow.wait()), TERMINATED_ABRUPTLY);
    for f in queued {
        let err = f.wait().unwrap_err();
        match err {
            ProcessPoolError::BrokenProcessPool(b) => {
                assert_eq!(b.message(), TERMINATED_ABRUPTLY);
                assert!(b.cause().unwrap().contains("signal 9 (SIGKILL)"), "{b}");
                assert!(b.to_string().ends_with("signal 9 (SIGKILL))"), "{b}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(broken_text(pool.submit(square, 1)), POOL_NOT_USABLE);
    drop(pool);
    assert!(children().is_empty(), "every worker is reaped");
}

fn failing_init() {
    panic!("initializer exploded");
}

#[test]
fn a_failing_initializer_breaks_the_pool() {
    if in_child("a_failing_initializer_breaks_the_pool") {
        return;
    }
    let pool = ProcessPool::builder()
        .max_workers(1)
        .initializer(failing_init)
        .build()
        .unwrap();
    let err = pool.submit(square, 2).unwrap().wait().unwrap_err();
    let ProcessPoolError::BrokenProcessPool(b) = err else {
        panic!("{err:?}")
    };
    assert_eq!(b.message(), TERMINATED_ABRUPTLY);
    assert_eq!(b.cause(), Some("initializer exploded"));
    assert_eq!(
        b.to_string(),
        format!("{TERMINATED_ABRUPTLY} (initializer exploded)")
    );
    assert_eq!(broken_text(pool.submit(square, 1)), POOL_NOT_USABLE);
}

static INIT_MARK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn mark_init() {
    INIT_MARK.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

fn read_mark(_: ()) -> u32 {
    INIT_MARK.load(std::sync::atomic::Ordering::SeqCst)
}

#[test]
fn the_initializer_runs_once_per_worker() {
    let pool = ProcessPool::builder()
        .max_workers(1)
        .initializer(mark_init)
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(pool.submit(read_mark, ()).unwrap().wait(), Ok(1));
    }
    assert_eq!(read_mark(()), 0, "not in the parent");
}

#[test]
fn max_tasks_per_child_recycles_workers() {
    let pool = ProcessPool::builder()
        .max_workers(1)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let pids: Vec<u32> = (0..6)
        .map(|_| pool.submit(pid_after, 0).unwrap().wait().unwrap())
        .collect();
    assert_eq!(pids[0], pids[1]);
    assert_eq!(pids[2], pids[3]);
    assert_eq!(pids[4], pids[5]);
    assert!(pids[0] != pids[2] && pids[2] != pids[4], "{pids:?}");
    // Submitted all at once, the same holds.
    let futures: Vec<_> = (0..4).map(|_| pool.submit(pid_after, 0).unwrap()).collect();
    let pids: Vec<u32> = futures.into_iter().map(|f| f.wait().unwrap()).collect();
    assert!(
        pids[0] == pids[1] && pids[2] == pids[3] && pids[1] != pids[2],
        "{pids:?}"
    );
}

#[test]
fn map_keeps_input_order_for_every_chunksize() {
    let pool = pool(2);
    let want: Vec<u64> = (0..50).map(square).collect();
    for chunksize in [1, 3, 7, 50, 100] {
        let got: Result<Vec<u64>, _> = pool.map(square, 0..50, chunksize).unwrap().collect();
        assert_eq!(got.unwrap(), want, "chunksize {chunksize}");
    }
    assert_eq!(pool.map(square, Vec::new(), 2).unwrap().count(), 0);
    let err = pool.map(square, 0..3, 0).unwrap_err();
    assert_eq!(err.to_string(), "chunksize must be >= 1.");
}

#[test]
fn map_reports_a_failed_chunk_once_then_stops() {
    let pool = pool(1);
    let f = |x: u32| -> u32 { if x == 4 { panic!("four") } else { x } };
    let got: Vec<_> = pool.map(f, 0..9, 2).unwrap().collect();
    assert_eq!(
        got,
        vec![
            Ok(0),
            Ok(1),
            Ok(2),
            Ok(3),
            Err(ProcessPoolError::Panicked("four".into()))
        ]
    );
}

#[test]
fn a_queued_job_can_be_cancelled_a_running_one_cannot() {
    let pool = pool(1);
    let running = pool.submit(pid_after, 300).unwrap();
    let taken = pool.submit(pid_after, 0).unwrap(); // in the worker's pipeline: running
    let queued = pool.submit(pid_after, 0).unwrap();
    assert!(!running.cancel());
    assert!(!taken.cancel());
    assert!(queued.cancel());
    assert!(queued.cancelled());
    assert_eq!(queued.wait(), Err(ProcessPoolError::Cancelled));
    assert!(running.wait().is_ok());
    assert!(taken.wait().is_ok());
}

#[test]
fn shutdown_cancel_futures_matches_python() {
    // Python's probe: 1 worker, 6 jobs -> [FINISHED, FINISHED, CANCELLED x4].
    let pool = pool(1);
    let futures: Vec<_> = (0..6)
        .map(|_| pool.submit(pid_after, 200).unwrap())
        .collect();
    pool.shutdown(true, true);
    let states: Vec<bool> = futures.into_iter().map(|f| f.wait().is_ok()).collect();
    assert_eq!(states, [true, true, false, false, false, false]);
    assert!(pool.worker_pids().is_empty());
}

#[test]
fn shutdown_without_wait_still_runs_queued_jobs_and_refuses_new_ones() {
    let pool = pool(1);
    let futures: Vec<_> = (0..5)
        .map(|_| pool.submit(pid_after, 20).unwrap())
        .collect();
    pool.shutdown(false, false);
    let err = pool.submit(square, 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot schedule new futures after shutdown"
    );
    assert!(pool.map(square, 0..2, 1).is_err());
    assert!(futures.into_iter().all(|f| f.wait().is_ok()));
    pool.shutdown(true, false); // idempotent
    pool.shutdown(true, true);
    assert!(pool.worker_pids().is_empty());
}

#[test]
fn shutdown_timeout_is_bounded() {
    let pool = pool(1);
    let slow = pool.submit(pid_after, 1500).unwrap();
    eventually("the job is running", || slow.running());
    assert!(pool.shutdown_timeout(Duration::from_millis(10)).is_err());
    assert!(slow.wait().is_ok(), "the running job still completes");
    assert!(pool.shutdown_timeout(Duration::from_secs(20)).is_ok());
}

#[test]
fn drop_waits_for_workers_and_leaves_no_zombies_or_fds() {
    if in_child("drop_waits_for_workers_and_leaves_no_zombies_or_fds") {
        return;
    }
    let fds_before = open_fds();
    {
        let pool = ProcessPool::builder()
            .max_workers(2)
            .max_tasks_per_child(3)
            .build()
            .unwrap();
        let futures: Vec<_> = (0..20).map(|i| pool.submit(square, i).unwrap()).collect();
        assert!(futures.into_iter().all(|f| f.wait().is_ok()));
        assert!(!children().is_empty());
    }
    assert!(children().is_empty(), "no worker left, not even a zombie");
    // A broken pool cleans up as well.
    {
        let pool = pool(2);
        let _ = pool.submit(square, 1).unwrap().wait();
        let _ = pool
            .submit(|_: u32| -> u32 { std::process::abort() }, 0)
            .unwrap()
            .wait();
    }
    assert!(children().is_empty());
    assert_eq!(open_fds(), fds_before, "no fd leaked");
}

fn chatty(n: u32) -> u32 {
    // Bytes that would look like a frame if they reached the channel.
    println!("\u{4}\0\0\0 job {n} says hello on stdout");
    eprintln!("job {n} says hello on stderr");
    n + 1
}

#[test]
fn job_output_reaches_the_parents_stdio_not_the_channel() {
    if std::env::var_os("EVLOOP_PP_CHATTY").is_some() {
        let pool = pool(2);
        let got: Vec<u32> = (0..20)
            .map(|n| pool.submit(chatty, n).unwrap().wait().unwrap())
            .collect();
        assert_eq!(got, (1..21).collect::<Vec<_>>());
        return;
    }
    let out = child_command("job_output_reaches_the_parents_stdio_not_the_channel")
        .envs([("EVLOOP_PP_CHATTY", "1")])
        .output()
        .expect("re-running the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for n in 0..20 {
        assert!(
            stdout.contains(&format!("job {n} says hello on stdout")),
            "{stdout}"
        );
        assert!(
            stderr.contains(&format!("job {n} says hello on stderr")),
            "{stderr}"
        );
    }
}

#[test]
fn workers_exit_when_the_parent_dies() {
    if std::env::var_os("EVLOOP_PP_ORPHAN").is_some() {
        let pool = pool(2);
        let busy = pool.submit(pid_after, 600_000).unwrap();
        let idle = pool.submit(pid_after, 0).unwrap().wait().unwrap();
        eventually("two workers", || pool.worker_pids().len() == 2);
        println!("pids {:?}", pool.worker_pids());
        let _ = idle;
        std::thread::sleep(Duration::from_secs(600)); // until killed
        drop(busy);
        return;
    }
    let mut child = child_command("workers_exit_when_the_parent_dies")
        .env("EVLOOP_PP_ORPHAN", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let pids: Vec<u32> = loop {
        let line = lines
            .next()
            .expect("the child prints its worker pids")
            .unwrap();
        if let Some(list) = line.strip_prefix("pids [") {
            break list
                .trim_end_matches(']')
                .split(", ")
                .map(|p| p.parse().unwrap())
                .collect();
        }
    };
    assert_eq!(pids.len(), 2);
    child.kill().unwrap();
    child.wait().unwrap();
    for pid in pids {
        eventually("the orphaned worker exits", || is_dead(pid));
    }
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

#[test]
fn the_future_can_be_awaited_with_a_waker_from_any_thread() {
    let pool = pool(1);
    let mut future = std::pin::pin!(pool.submit(pid_after, 50).unwrap());
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let pid = loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(result) => break result.unwrap(),
            Poll::Pending => std::thread::park_timeout(Duration::from_secs(1)),
        }
    };
    assert_ne!(pid, std::process::id());
}

#[test]
fn the_example_runs_from_a_plain_main() {
    // `cargo test` builds examples next to the test binaries; nextest may not, so this is a no-op
    // there (the example is also run by hand, see the README).
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/squares");
    if !example.exists() {
        eprintln!("{} not built: skipped", example.display());
        return;
    }
    let out = std::process::Command::new(example).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("custom process pool 333333283333335000000"),
        "{stdout}"
    );
    assert!(
        stdout.contains("squares [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"),
        "{stdout}"
    );
}
