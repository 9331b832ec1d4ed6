//! Child reaping: a pidfd per child on Linux, SIGCHLD as the fallback, and a detached reaper
//! thread for children still running when the loop closes. Always `waitpid(pid, WNOHANG)` for
//! one known pid, never `waitpid(-1)`.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;

use super::ChildState;
use crate::EventLoop;
use crate::signal::SignalState;

/// The loop's children that have not been reaped yet (a loop extension).
#[derive(Default)]
struct Children {
    live: RefCell<Vec<Rc<ChildState>>>,
    close_hook: Cell<bool>,
    sigchld: Cell<bool>,
}

impl Children {
    fn reap_all(&self) {
        let live = self.live.borrow().clone();
        for child in live {
            if try_reap(&child) {
                self.forget(&child);
            }
        }
    }

    fn forget(&self, child: &Rc<ChildState>) {
        self.live.borrow_mut().retain(|c| !Rc::ptr_eq(c, child));
    }
}

impl Drop for Children {
    /// A loop dropped without `close()`: its running children are handed over all the same.
    fn drop(&mut self) {
        hand_over(self);
    }
}

/// asyncio's return code from a wait status: the exit code, or minus the signal number.
fn decode(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

/// Reaps `child` if it has exited; returns whether it is gone.
fn try_reap(child: &ChildState) -> bool {
    if child.returncode.get().is_some() {
        return true;
    }
    let mut status = 0;
    // SAFETY: waitpid on one pid we spawned, writing into a live int.
    let got = unsafe { libc::waitpid(child.pid, &mut status, libc::WNOHANG) };
    if got == child.pid {
        child.set_exited(decode(status));
        true
    } else if got == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
        // Someone else reaped it (a `waitpid(-1)` elsewhere): asyncio reports 255.
        child.set_exited(255);
        true
    } else {
        false
    }
}

fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: the pidfd_open syscall takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Starts watching `child` on `lp`.
pub(super) fn watch(lp: &EventLoop, child: &Rc<ChildState>, force_sigchld: bool) -> io::Result<()> {
    let children = lp.extension::<Children>();
    children.live.borrow_mut().push(child.clone());
    if !children.close_hook.replace(true) {
        let on_close = Rc::downgrade(&children);
        lp.on_close(move || {
            if let Some(children) = on_close.upgrade() {
                hand_over(&children);
            }
        });
    }
    let pidfd = if force_sigchld {
        None
    } else {
        pidfd_open(child.pid).ok()
    };
    match pidfd {
        Some(pidfd) => {
            let token = Rc::new(Cell::new(None));
            let my_token = token.clone();
            let on_loop = lp.downgrade();
            let child = child.clone();
            let fd = pidfd.as_raw_fd();
            let registered = lp.add_internal_reader(fd, move || {
                // The pidfd is owned by this callback and closed with it.
                let _owned = &pidfd;
                let Some(on_loop) = on_loop.upgrade() else {
                    return;
                };
                if try_reap(&child) {
                    on_loop.extension::<Children>().forget(&child);
                    if let Some(token) = my_token.take() {
                        on_loop.remove_internal_reader(token);
                    }
                }
            })?;
            token.set(Some(registered));
        }
        None => {
            if !children.sigchld.replace(true) {
                let signals = lp.extension::<SignalState>();
                let watched = Rc::downgrade(&children);
                let reap = move || {
                    if let Some(children) = watched.upgrade() {
                        children.reap_all();
                    }
                };
                signals.add_internal(lp, libc::SIGCHLD, Rc::new(reap))?;
            }
            // It may have exited before SIGCHLD was routed to us.
            children.reap_all();
        }
    }
    Ok(())
}

/// The loop closed with children still running: they run on (no signal is sent), and a
/// detached thread per child waits for it, so that it does not stay a zombie.
///
/// The thread first waits without reaping (`WNOWAIT`), then reaps under the child's hand-over
/// lock and marks it reaped, so a `Process` handle never signals a pid that was released and
/// possibly reused.
fn hand_over(children: &Children) {
    let live = std::mem::take(&mut *children.live.borrow_mut());
    for child in live {
        if try_reap(&child) {
            continue;
        }
        let pid = child.pid();
        let reaped = child.hand_over();
        let _ = std::thread::Builder::new()
            .name(format!("evloop-reap-{pid}"))
            .spawn(move || {
                // SAFETY: siginfo_t is plain data; all zeroes is a valid value to be written over.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: waitid on one pid this process spawned, writing into a live siginfo_t;
                // WNOWAIT leaves the child waitable, so the pid stays ours.
                while unsafe {
                    libc::waitid(
                        libc::P_PID,
                        pid as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOWAIT,
                    )
                } == -1
                    && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
                {
                }
                let mut done = reaped
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let mut status = 0;
                // SAFETY: the child has exited (waitid above); this releases its pid.
                unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                *done = true;
            });
    }
}
