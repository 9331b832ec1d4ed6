//! How idle workers sleep, and how a submitter wakes exactly one of them.
//!
//! The model is rayon-core's sleep module, simplified for a pool fed from outside: a worker that
//! runs out of work first *declares* itself idle (an atomic counter), then searches the queues
//! once more, and only then blocks. A submitter pushes its job first and then tries to *claim*
//! one declared worker (decrementing the counter); a successful claim posts one wake-up token.
//! Because the worker re-checks the queues after declaring, and the submitter checks the counter
//! after pushing (both sequentially consistent), either the worker sees the job or the submitter
//! sees the worker: no wake-up is lost.
//!
//! Tokens are counted under a mutex, so a token posted before a worker reached the condvar is
//! not lost either. Tokens are fungible: any declared worker may consume one, and every declared
//! worker consumes a posted token before it sleeps or when it finds work. So the condvar needs a
//! signal only when the posted tokens outnumber the declared workers that are still awake
//! (`awake`); in a burst, where workers are between jobs rather than asleep, a submit then
//! costs no futex call at all.
//!
//! Invariant: declared workers = `idle` + posted tokens + claims in flight (a claimer between its
//! decrement of `idle` and its post). A worker that finds work after declaring *undeclares*: it
//! takes a posted token if there is one, else decrements `idle` itself, else waits out the
//! claimer in flight.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::sync::{AtomicBool, AtomicUsize, Condvar, Mutex, MutexGuard, yield_now};

pub(crate) struct Sleep {
    idle: AtomicUsize,
    tokens: Mutex<Tokens>,
    cond: Condvar,
}

struct Tokens {
    posted: usize,
    /// Declared workers blocked on the condvar.
    sleepers: usize,
    /// Declared workers not blocked on the condvar: each will consume a posted token before it
    /// can block, so tokens up to this many need no signal.
    awake: usize,
}

impl Tokens {
    /// The worker stops being declared by consuming a posted token, if any.
    fn take_token(&mut self) -> bool {
        if self.posted == 0 {
            return false;
        }
        self.posted -= 1;
        self.awake -= 1;
        true
    }
}

/// Why [`Sleep::wait`] returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Woken {
    /// The worker consumed a token: it is no longer declared.
    Token,
    /// The pool is terminating: still declared.
    Terminate,
    /// The keep-alive time passed without a token: still declared.
    TimedOut,
}

impl Sleep {
    pub(crate) fn new() -> Self {
        Sleep {
            idle: AtomicUsize::new(0),
            tokens: Mutex::new(Tokens {
                posted: 0,
                sleepers: 0,
                awake: 0,
            }),
            cond: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A worker announces that it is about to look for work one last time and then sleep.
    pub(crate) fn declare_idle(&self) {
        let mut tokens = self.lock();
        tokens.awake += 1;
        self.idle.fetch_add(1, Ordering::SeqCst);
    }

    /// Takes one declared worker off the idle count. Returns false if none is declared.
    fn claim_idle(&self) -> bool {
        let mut idle = self.idle.load(Ordering::SeqCst);
        while idle > 0 {
            match self.idle.compare_exchange_weak(
                idle,
                idle - 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => idle = now,
            }
        }
        false
    }

    /// Submitter side: if a worker is idle, claim it and make sure one wakes. Returns whether
    /// one was claimed (if not, the caller may start a thread).
    pub(crate) fn wake_one_idle(&self) -> bool {
        if !self.claim_idle() {
            return false;
        }
        let mut tokens = self.lock();
        tokens.posted += 1;
        let signal = tokens.sleepers > 0 && tokens.posted > tokens.awake;
        drop(tokens);
        // Notify after unlocking so the woken worker does not block on the mutex we hold.
        if signal {
            self.cond.notify_one();
        }
        true
    }

    /// Worker side: stop being declared idle because work turned up.
    pub(crate) fn undeclare(&self) {
        // The wait is bounded by a claimer's window between its decrement and its post (a few
        // instructions), so yielding is enough; it never blocks on the condvar.
        while !self.try_undeclare() {
            yield_now();
        }
    }

    /// Worker side: stop being declared if that can be done without waiting.
    pub(crate) fn try_undeclare(&self) -> bool {
        let mut tokens = self.lock();
        // A token first: leaving it posted with nobody awake to take it would strand it.
        if tokens.take_token() {
            return true;
        }
        if self.claim_idle() {
            tokens.awake -= 1;
            return true;
        }
        false
    }

    /// Worker side: a declared worker exits (the pool terminates); it stays in `idle`, which no
    /// submit can claim any more.
    pub(crate) fn leave(&self) {
        self.lock().awake -= 1;
    }

    /// Worker side: block until a token arrives, the pool terminates, or `keep_alive` passes.
    pub(crate) fn wait(&self, terminate: &AtomicBool, keep_alive: Option<Duration>) -> Woken {
        let mut tokens = self.lock();
        loop {
            if tokens.take_token() {
                return Woken::Token;
            }
            if terminate.load(Ordering::SeqCst) {
                return Woken::Terminate;
            }
            tokens.awake -= 1;
            tokens.sleepers += 1;
            let timed_out;
            (tokens, timed_out) = match keep_alive {
                None => (
                    self.cond.wait(tokens).unwrap_or_else(|e| e.into_inner()),
                    false,
                ),
                Some(keep_alive) => {
                    let (guard, result) = self
                        .cond
                        .wait_timeout(tokens, keep_alive)
                        .unwrap_or_else(|e| e.into_inner());
                    (guard, result.timed_out())
                }
            };
            tokens.sleepers -= 1;
            tokens.awake += 1;
            if timed_out && tokens.posted == 0 {
                return Woken::TimedOut;
            }
        }
    }

    /// Wakes every sleeper (termination). The caller sets its flag before calling this; taking
    /// the lock orders the flag before any sleeper's next check.
    pub(crate) fn wake_all(&self) {
        let _tokens = self.lock();
        self.cond.notify_all();
    }
}

/// Loom models of the sleep protocol (`cargo xtask loom`): the real [`Sleep`] on loom's
/// primitives, driven by a worker loop that follows `worker::work` step for step and submitters
/// that follow `ThreadPoolExecutor::push` (all threads already started).
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use loom::sync::atomic::fence;
    use loom::sync::{Arc, Notify};
    use loom::thread;
    use std::collections::VecDeque;

    const JOBS: usize = 2;

    struct Model {
        sleep: Sleep,
        queue: Mutex<VecDeque<usize>>,
        terminate: AtomicBool,
        done: AtomicUsize,
        all_done: Notify,
    }

    impl Model {
        fn pop(&self) -> Option<usize> {
            self.queue.lock().unwrap().pop_front()
        }

        fn submit(&self, job: usize) {
            self.queue.lock().unwrap().push_back(job);
            fence(Ordering::SeqCst);
            // No thread to start: every worker runs from the start.
            let _ = self.sleep.wake_one_idle();
        }

        fn finish(&self) {
            if self.done.fetch_add(1, Ordering::SeqCst) + 1 == JOBS {
                self.all_done.notify();
            }
        }
    }

    /// `worker::work` reduced to its protocol. `recheck: false` is the mutation: a worker that
    /// goes to sleep right after declaring itself idle, without searching the queues again.
    fn worker(model: &Model, recheck: bool) {
        let mut declared = false;
        let declare = |declared: &mut bool| {
            model.sleep.declare_idle();
            *declared = true;
            fence(Ordering::SeqCst);
        };
        loop {
            let terminating = model.terminate.load(Ordering::SeqCst);
            if model.pop().is_some() {
                if std::mem::take(&mut declared) {
                    model.sleep.undeclare();
                }
                // Declared before the job's future completes, when the queue looks empty.
                if model.queue.lock().unwrap().is_empty() {
                    declare(&mut declared);
                }
                model.finish();
                continue;
            }
            if !declared {
                declare(&mut declared);
                if recheck {
                    continue;
                }
            }
            if terminating {
                model.sleep.leave();
                return;
            }
            if model.sleep.wait(&model.terminate, None) == Woken::Token {
                declared = false;
            }
        }
    }

    /// `workers` workers and two submitters of one job each (the main thread is the second).
    /// The main thread then waits until both jobs ran before it terminates the pool, so a job
    /// stranded in the queue while its worker sleeps is a deadlock, which loom reports.
    fn run_model(workers: usize, recheck: bool) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(move || {
            let model = Arc::new(Model {
                sleep: Sleep::new(),
                queue: Mutex::new(VecDeque::new()),
                terminate: AtomicBool::new(false),
                done: AtomicUsize::new(0),
                all_done: Notify::new(),
            });
            let workers: Vec<_> = (0..workers)
                .map(|_| {
                    let model = model.clone();
                    thread::spawn(move || worker(&model, recheck))
                })
                .collect();
            let submitter = {
                let model = model.clone();
                thread::spawn(move || model.submit(0))
            };
            model.submit(1);
            model.all_done.wait();
            submitter.join().unwrap();
            model.terminate.store(true, Ordering::SeqCst);
            model.sleep.wake_all();
            for worker in workers {
                worker.join().unwrap();
            }
            assert_eq!(model.done.load(Ordering::SeqCst), JOBS);
        });
    }

    #[test]
    fn loom_one_worker_two_submitters() {
        run_model(1, true);
    }

    #[test]
    fn loom_two_workers_two_submitters() {
        run_model(2, true);
    }

    const MUTANT: &str = "EVLOOP_LOOM_MUTANT";

    /// The mutation the protocol's re-check exists for: without it, loom finds the interleaving
    /// where a submit lands between the worker's last search and its announcement, so the
    /// submitter sees no idle worker and the worker sleeps on the job. Loom aborts the process
    /// when it finds the deadlock, so the mutant runs in a child process of this test binary.
    #[test]
    fn loom_without_the_recheck_a_wake_up_is_lost() {
        if std::env::var_os(MUTANT).is_some() {
            run_model(1, false);
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "sleep::loom_model::loom_without_the_recheck_a_wake_up_is_lost",
                "--exact",
                "--nocapture",
            ])
            .env(MUTANT, "1")
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "the mutant passed:\n{stderr}");
        assert!(stderr.contains("deadlock"), "{stderr}");
    }
}
