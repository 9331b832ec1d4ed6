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

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

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
            std::thread::yield_now();
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
