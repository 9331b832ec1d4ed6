//! Unix signal handlers that run on the loop (asyncio's `add_signal_handler`).
//!
//! The OS handler does one async-signal-safe thing: it writes the signal number as one byte to
//! the self-pipe of the loop that asked for the signal. The pipe's read end is an internal
//! reader on that loop; reading it queues the user's handler as an ordinary callback, so the
//! handler runs on the loop thread between callbacks, never inside the signal context.
//!
//! This uses `sigaction` directly rather than signal-hook's registry: asyncio's
//! `remove_signal_handler` restores the default disposition (`SIG_DFL`), and signal-hook keeps
//! its own handler installed for the life of the process, so the default could not come back.
//!
//! A signal belongs to one loop at a time (the process has one disposition per signal); a
//! second loop that adds a handler for the same signal takes it over.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicI32, Ordering};

use mio::Token;

use crate::EventLoop;

/// Signal numbers are below this (Linux's `_NSIG`).
const NSIG: usize = 65;

/// Where the OS handler writes each signal: the write end of the owning loop's self-pipe.
static WAKE_FDS: [AtomicI32; NSIG] = [const { AtomicI32::new(-1) }; NSIG];

extern "C" fn on_signal(signal: libc::c_int) {
    // Only async-signal-safe calls here: an atomic load and write(2), with errno preserved for
    // the code the signal interrupted.
    // SAFETY: __errno_location returns this thread's errno slot, valid for the thread's life.
    let errno = unsafe { *libc::__errno_location() };
    if let Some(fd) = WAKE_FDS.get(signal as usize) {
        let fd = fd.load(Ordering::Acquire);
        if fd >= 0 {
            let byte = signal as u8;
            // SAFETY: writes one byte from a live stack variable; a full pipe just drops the
            // byte (EAGAIN), which is fine: the loop is behind on reading it anyway.
            unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Why a signal handler could not be added. The messages are asyncio's.
///
/// ```
/// use evloop_reactor::{EventLoop, SignalError};
/// let lp = EventLoop::new().unwrap();
/// let err = lp.add_signal_handler(libc::SIGKILL, || ()).unwrap_err();
/// assert_eq!(err.to_string(), "sig 9 cannot be caught");
/// assert_eq!(lp.add_signal_handler(0, || ()).unwrap_err().to_string(), "invalid signal number 0");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The loop is closed.
    #[error("Event loop is closed")]
    Closed,
    /// Not a signal number of this system.
    #[error("invalid signal number {0}")]
    InvalidSignal(i32),
    /// `SIGKILL` and `SIGSTOP` cannot be handled.
    #[error("sig {0} cannot be caught")]
    CannotCatch(i32),
    /// The self-pipe or `sigaction` failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

type Handler = Rc<RefCell<dyn FnMut()>>;

/// One loop's signal state (a loop extension).
#[derive(Default)]
pub(crate) struct SignalState {
    /// The self-pipe: read end, write end, and the read end's token.
    pipe: RefCell<Option<(OwnedFd, OwnedFd, Token)>>,
    handlers: RefCell<HashMap<i32, Handler>>,
    /// The loop's own uses of a signal (the SIGCHLD fallback of child reaping).
    internal: RefCell<HashMap<i32, Rc<dyn Fn()>>>,
}

fn check_signal(signal: i32) -> Result<(), SignalError> {
    if signal < 1 || signal as usize >= NSIG {
        return Err(SignalError::InvalidSignal(signal));
    }
    if signal == libc::SIGKILL || signal == libc::SIGSTOP {
        return Err(SignalError::CannotCatch(signal));
    }
    Ok(())
}

/// Installs `handler` as the disposition of `signal`.
fn set_disposition(signal: i32, handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value, which we then fill.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_flags = libc::SA_RESTART;
    if signal == libc::SIGCHLD {
        action.sa_flags |= libc::SA_NOCLDSTOP;
    }
    // SAFETY: `action` is initialised; sigemptyset only writes the mask inside it.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: valid signal number (checked by the caller) and a valid action; the old action
    // is not requested.
    if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn on_signal_handler() -> libc::sighandler_t {
    on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t
}

impl Drop for SignalState {
    /// A loop dropped without `close()`: the OS handler must stop writing into a pipe whose fd
    /// number is about to be freed (and reused by someone else).
    fn drop(&mut self) {
        self.close();
    }
}

impl SignalState {
    /// Creates the self-pipe and its reader on first use.
    fn ensure_pipe(self: &Rc<Self>, lp: &EventLoop) -> io::Result<RawFd> {
        if let Some((_, write, _)) = &*self.pipe.borrow() {
            return Ok(write.as_raw_fd());
        }
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are fresh descriptors owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let state = Rc::downgrade(self);
        let on_loop = lp.downgrade();
        let read_fd = read.as_raw_fd();
        let token = lp.add_internal_reader(read_fd, move || {
            if let (Some(state), Some(lp)) = (state.upgrade(), on_loop.upgrade()) {
                state.drain(read_fd, &lp);
            }
        })?;
        let write_fd = write.as_raw_fd();
        *self.pipe.borrow_mut() = Some((read, write, token));
        let state = Rc::downgrade(self);
        lp.on_close(move || {
            if let Some(state) = state.upgrade() {
                state.close();
            }
        });
        Ok(write_fd)
    }

    /// Reads the pipe dry and queues the handler of each signal that arrived.
    fn drain(&self, fd: RawFd, lp: &EventLoop) {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads into a live buffer of the given length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            for &signal in &buf[..n as usize] {
                let signal = i32::from(signal);
                // Clone out first: no borrow may be held while the callback runs.
                let internal = self.internal.borrow().get(&signal).cloned();
                if let Some(internal) = internal {
                    internal();
                }
                let handler = self.handlers.borrow().get(&signal).cloned();
                if let Some(handler) = handler {
                    let _ = lp.call_soon(move || (handler.borrow_mut())());
                }
            }
        }
    }

    fn install(&self, signal: i32, write_fd: RawFd) -> io::Result<()> {
        WAKE_FDS[signal as usize].store(write_fd, Ordering::Release);
        set_disposition(signal, on_signal_handler())
    }

    fn uninstall(&self, signal: i32) {
        let write_fd = match &*self.pipe.borrow() {
            Some((_, write, _)) => write.as_raw_fd(),
            None => return,
        };
        // Only if the signal is still ours: another loop may have taken it over.
        if WAKE_FDS[signal as usize].load(Ordering::Acquire) == write_fd {
            let _ = set_disposition(signal, libc::SIG_DFL);
            WAKE_FDS[signal as usize].store(-1, Ordering::Release);
        }
    }

    /// The loop closes: every signal it holds goes back to the default, and the pipe is closed.
    fn close(&self) {
        let signals: Vec<i32> = self
            .handlers
            .borrow()
            .keys()
            .chain(self.internal.borrow().keys())
            .copied()
            .collect();
        for signal in signals {
            self.uninstall(signal);
        }
        let handlers = std::mem::take(&mut *self.handlers.borrow_mut());
        let internal = std::mem::take(&mut *self.internal.borrow_mut());
        let pipe = self.pipe.borrow_mut().take();
        drop((handlers, internal, pipe));
    }

    /// Routes `signal` to `callback` for the loop's own use (not visible to the user API).
    pub(crate) fn add_internal(
        self: &Rc<Self>,
        lp: &EventLoop,
        signal: i32,
        callback: Rc<dyn Fn()>,
    ) -> io::Result<()> {
        let write_fd = self.ensure_pipe(lp)?;
        self.internal.borrow_mut().insert(signal, callback);
        self.install(signal, write_fd)
    }
}

/// Whether `signal`'s disposition is the default (`SIG_DFL`): `run()` installs its Ctrl-C
/// handling only then, as asyncio does only while SIGINT has Python's default handler.
///
/// ```
/// assert!(evloop_reactor::has_default_disposition(libc::SIGUSR1));
/// assert!(!evloop_reactor::has_default_disposition(0));
/// ```
pub fn has_default_disposition(signal: i32) -> bool {
    if signal < 1 || signal as usize >= NSIG {
        return false;
    }
    // SAFETY: a zeroed sigaction is valid storage for the query.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a query (null new action) of a valid signal number into valid storage.
    let rc = unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) };
    rc == 0 && old.sa_sigaction == libc::SIG_DFL
}

impl EventLoop {
    /// Runs `callback` on the loop whenever `signal` arrives (asyncio's `add_signal_handler`).
    /// A second call for the same signal replaces the callback.
    ///
    /// Errors, as asyncio's: "invalid signal number N", "sig N cannot be caught" (SIGKILL,
    /// SIGSTOP), "Event loop is closed".
    ///
    /// ```
    /// use evloop_reactor::EventLoop;
    ///
    /// let lp = EventLoop::new()?;
    /// let stopper = lp.clone();
    /// lp.add_signal_handler(libc::SIGUSR2, move || stopper.stop())?;
    /// // SAFETY: raising a signal that now has a handler.
    /// unsafe { libc::raise(libc::SIGUSR2) };
    /// lp.run_forever()?;
    /// assert!(lp.remove_signal_handler(libc::SIGUSR2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_signal_handler(
        &self,
        signal: i32,
        callback: impl FnMut() + 'static,
    ) -> Result<(), SignalError> {
        if self.is_closed() {
            return Err(SignalError::Closed);
        }
        check_signal(signal)?;
        let state = self.extension::<SignalState>();
        let write_fd = state.ensure_pipe(self)?;
        let old = state
            .handlers
            .borrow_mut()
            .insert(signal, Rc::new(RefCell::new(callback)));
        if let Err(error) = state.install(signal, write_fd) {
            state.handlers.borrow_mut().remove(&signal);
            return Err(error.into());
        }
        drop(old);
        Ok(())
    }

    /// Removes the handler for `signal` and restores the default disposition (asyncio's
    /// `remove_signal_handler`). Returns whether a handler was registered; `false` for a closed
    /// loop or a number that is not a signal.
    ///
    /// ```
    /// let lp = evloop_reactor::EventLoop::new().unwrap();
    /// assert!(!lp.remove_signal_handler(libc::SIGUSR1));
    /// ```
    pub fn remove_signal_handler(&self, signal: i32) -> bool {
        if self.is_closed() || check_signal(signal).is_err() {
            return false;
        }
        let state = self.extension::<SignalState>();
        let Some(old) = state.handlers.borrow_mut().remove(&signal) else {
            return false;
        };
        if !state.internal.borrow().contains_key(&signal) {
            state.uninstall(signal);
        }
        drop(old);
        true
    }
}
