//! Fault injection: workers killed mid-job, frames over the limit both ways, a pool dropped from
//! its own done callback, a main that forgets `init()`, a setuid worker. Every test that kills
//! processes or counts fds and children runs in a child process of its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evloop_process_pool::{ProcessPool, ProcessPoolError, TERMINATED_ABRUPTLY};
use evloop_test_support::procfs::children;
use evloop_test_support::{child_command, eventually, in_child, open_fds};

evloop_process_pool::test_worker!();

/// Long enough for a future to be waited on by anyone; a hang fails the test instead of CI.
const LONG: Duration = Duration::from_secs(60);

fn sleep_ms(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

fn square(x: u64) -> u64 {
    x * x
}

fn ended<T: std::fmt::Debug>(
    mut future: evloop_process_pool::ProcessFuture<T>,
) -> Result<T, ProcessPoolError> {
    future
        .wait_timeout(LONG)
        .expect("every future ends: this one hung")
}

/// 20 trials: two workers with jobs running and queued, a second thread submitting throughout,
/// one worker SIGKILLed mid-job. Every future ends (a value, or BrokenProcessPool naming the
/// signal), every refused submit says the pool is broken, and after each pool is dropped no
/// worker is left (not even a zombie) and the fd table is back to its baseline.
#[test]
fn twenty_sigkills_mid_job_lose_no_future_and_leak_nothing() {
    if in_child("twenty_sigkills_mid_job_lose_no_future_and_leak_nothing") {
        return;
    }
    let baseline = open_fds();
    let mut futures_ended = 0;
    for trial in 0..20 {
        let pool = Arc::new(ProcessPool::builder().max_workers(2).build().unwrap());
        // The first job outlasts any slowness of the machine (and under ASAN), so it is still
        // running at the kill; the others keep the second worker busy and the queue full.
        let mut futures: Vec<_> = [5_000, 20, 20, 20, 20, 20]
            .into_iter()
            .map(|ms| pool.submit(sleep_ms, ms).unwrap())
            .collect();
        let submitted = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let submitter = {
            let (pool, submitted, refused) = (pool.clone(), submitted.clone(), refused.clone());
            std::thread::spawn(move || {
                for _ in 0..30 {
                    match pool.submit(sleep_ms, 2) {
                        Ok(f) => submitted.lock().unwrap().push(f),
                        Err(ProcessPoolError::BrokenProcessPool(b)) => {
                            assert!(b.cause().is_some_and(|c| c.contains("signal 9")), "{b}");
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(other) => panic!("trial {trial}: {other:?}"),
                    }
                    std::thread::yield_now();
                }
            })
        };
        eventually("a job is running", || futures[0].running());
        let victim = *pool.worker_pids().first().expect("a live worker");
        // SAFETY: kill(2) with the pid of our own child, not reaped yet (the pool still lists it).
        assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
        submitter.join().unwrap();
        futures.append(&mut submitted.lock().unwrap());
        let mut broken = 0;
        for f in futures {
            match ended(f) {
                Ok(_) => {}
                Err(ProcessPoolError::BrokenProcessPool(b)) => {
                    assert_eq!(b.message(), TERMINATED_ABRUPTLY);
                    assert!(b.to_string().contains("signal 9 (SIGKILL)"), "{b}");
                    broken += 1;
                }
                Err(other) => panic!("trial {trial}: {other:?}"),
            }
            futures_ended += 1;
        }
        assert!(broken > 0, "trial {trial}: the kill broke nothing");
        futures_ended += refused.load(Ordering::SeqCst);
        drop(pool);
        assert!(children().is_empty(), "trial {trial}: a worker was left");
        assert_eq!(open_fds(), baseline, "trial {trial}: an fd leaked");
    }
    eprintln!("20 SIGKILL trials: {futures_ended} futures and submits ended, 0 leaks");
}

/// A pool whose frames may carry 64 KiB, with its one worker started (its pid returned).
fn small_frame_pool() -> (ProcessPool, u32) {
    let pool = ProcessPool::builder()
        .max_workers(1)
        .max_message_bytes(64 * 1024)
        .build()
        .unwrap();
    let worker = ended(pool.submit(sleep_ms, 0).unwrap()).unwrap();
    (pool, worker)
}

/// `err` is the one-job failure for `what` ("argument", "result") of about 100 kB over 64 KiB.
fn assert_too_large(err: ProcessPoolError, what: &str) {
    let ProcessPoolError::Serialization(text) = &err else {
        panic!("{err:?}")
    };
    let head = format!("the {what} is too large for the job channel: it encodes to 100");
    assert!(
        text.starts_with(&head) && text.ends_with("bytes, over the limit of 65536 bytes"),
        "{text}"
    );
}

#[test]
fn an_argument_over_the_limit_fails_only_its_job() {
    let (pool, worker) = small_frame_pool();
    let job = pool.submit(|v: Vec<u8>| v.len(), vec![7u8; 100_000]);
    assert_too_large(ended(job.unwrap()).unwrap_err(), "argument");
    // The same worker takes the next job: nothing broke.
    assert_eq!(ended(pool.submit(sleep_ms, 0).unwrap()), Ok(worker));
}

#[test]
fn a_result_over_the_limit_fails_only_its_job() {
    let (pool, worker) = small_frame_pool();
    let job = pool.submit(|n: usize| vec![1u8; n], 100_000);
    assert_too_large(ended(job.unwrap()).unwrap_err(), "result");
    assert_eq!(ended(pool.submit(sleep_ms, 0).unwrap()), Ok(worker));
    let fits = ended(pool.submit(|n: usize| vec![1u8; n], 1000).unwrap());
    assert_eq!(fits.unwrap().len(), 1000);
}

#[test]
fn max_message_bytes_is_checked() {
    for bad in [0, (1 << 30) + 1] {
        let err = ProcessPool::builder()
            .max_message_bytes(bad)
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "max_message_bytes must be between 1 and 1073741824 (1 GiB)"
        );
    }
}

/// The last handle of a pool, dropped by a done callback that runs on the pool's own reader
/// thread: the drop shuts the pool down without waiting for that thread, which then reaps its
/// worker as usual.
#[test]
fn dropping_the_last_pool_handle_in_a_done_callback_does_not_deadlock() {
    if in_child("dropping_the_last_pool_handle_in_a_done_callback_does_not_deadlock") {
        return;
    }
    let pool = Arc::new(ProcessPool::builder().max_workers(1).build().unwrap());
    let future = pool.submit(sleep_ms, 300).unwrap();
    let ran_on = Arc::new(Mutex::new(None));
    let (last, seen) = (pool.clone(), ran_on.clone());
    future.add_done_callback(move |_| {
        *seen.lock().unwrap() = std::thread::current().name().map(str::to_owned);
        drop(last);
    });
    drop(pool);
    assert!(ended(future).is_ok());
    eventually("the callback ran", || ran_on.lock().unwrap().is_some());
    let thread = ran_on.lock().unwrap().clone().unwrap();
    assert!(thread.starts_with("evloop-pp-reader"), "ran on {thread}");
    eventually("the worker is reaped", || children().is_empty());
}

/// Stands for a program whose `main` creates a pool without calling `init()` first. Run
/// normally it just builds a pool; run as a worker, the build must fail (and so the worker
/// exits before its handshake) instead of starting workers of its own.
#[test]
fn a_main_that_forgets_init() {
    let pool = ProcessPool::builder().max_workers(1).build().unwrap();
    drop(pool);
}

#[test]
fn a_forgotten_init_is_one_clear_error_naming_init() {
    if in_child("a_forgotten_init_is_one_clear_error_naming_init") {
        return;
    }
    // Workers of this process run `a_main_that_forgets_init` instead of the worker entry.
    evloop_process_pool::testing::register(module_path!(), "a_main_that_forgets_init");
    let pool = ProcessPool::builder().max_workers(1).build().unwrap();
    let err = ended(pool.submit(square, 3).unwrap()).unwrap_err();
    let ProcessPoolError::BrokenProcessPool(b) = &err else {
        panic!("{err:?}")
    };
    let text = b.to_string();
    assert!(
        text.contains("before its handshake")
            && text.contains("must call evloop_process_pool::init() first thing in main"),
        "{text}"
    );
    eventually("the worker is reaped", || children().is_empty());
}

#[test]
fn building_a_pool_in_a_worker_before_init_is_refused() {
    if std::env::var_os("EVLOOP_PP_FAKE_WORKER").is_some() {
        let err = ProcessPool::builder().build().unwrap_err();
        assert_eq!(err, ProcessPoolError::InitMissing);
        let text = err.to_string();
        assert!(text.contains("call init() first thing in main"), "{text}");
        return;
    }
    let out = child_command("building_a_pool_in_a_worker_before_init_is_refused")
        .envs([
            ("EVLOOP_PP_FAKE_WORKER", "1"),
            ("EVLOOP_PROCESS_POOL_WORKER", "99:1"),
        ])
        .output()
        .expect("re-running the test binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A setuid copy of this binary, started as root with the worker variable set, runs in
/// secure-execution mode (`AT_SECURE`): it must refuse to act as a worker at all.
#[test]
fn a_secure_execution_process_refuses_worker_mode() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: cannot make a setuid binary here; skipped");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().join("setuid-probe");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join(format!("faults-setuid-{}", std::process::id()));
    std::fs::copy(&exe, &copy).unwrap();
    let path = std::ffi::CString::new(copy.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: chown on a path we just created; 65534 is `nobody`.
    assert_eq!(unsafe { libc::chown(path.as_ptr(), 65534, 65534) }, 0);
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let out = std::process::Command::new(&copy)
        .args(["evloop_process_pool_test_worker", "--exact", "--nocapture"])
        .env("EVLOOP_PROCESS_POOL_WORKER", "0:1")
        .output()
        .unwrap();
    std::fs::remove_file(&copy).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing to act as a pool worker")
            && stderr.contains("secure-execution mode"),
        "{stderr}"
    );
}
