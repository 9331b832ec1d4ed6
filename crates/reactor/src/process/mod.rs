//! Subprocesses on the loop (asyncio's `create_subprocess_exec` / `create_subprocess_shell`).
//!
//! A [`Command`] is a builder over `std::process::Command`; each of stdin, stdout and stderr is
//! inherited (the default), piped (async pipe types: [`ChildStdin`] is `AsyncWrite`,
//! [`ChildStdout`] and [`ChildStderr`] are `AsyncRead`) or null.
//!
//! Reaping never uses `waitpid(-1)`, which would steal other code's children: on Linux
//! a pidfd becomes readable when the child exits and the loop then calls `waitpid(pid, WNOHANG)`
//! for that child; without pidfds, SIGCHLD triggers the same per-child `waitpid`. The watcher
//! belongs to the loop, not to the [`Process`] handle, so a child whose handle was dropped is
//! still reaped when it exits. Closing the loop sends no signal to a running child: it runs on
//! (asyncio's contract S6), and a detached thread reaps it when it ends, so it never lingers
//! as a zombie.

mod pipe;
mod reap;

use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::process::Stdio;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

pub use pipe::{ChildStderr, ChildStdin, ChildStdout};

use crate::{EventLoop, Wakers};

/// What the loop knows about one child.
pub(crate) struct ChildState {
    pid: i32,
    returncode: Cell<Option<i32>>,
    /// Pipes whose other end the child may still hold.
    pipes_open: Cell<usize>,
    waiters: RefCell<Wakers>,
    /// Set when the loop closed with the child running and a thread took over its reaping:
    /// true once that thread reaped it. Signals are sent under this lock, so never to a pid the
    /// thread already released (and the kernel may have reused).
    handed_over: RefCell<Option<Arc<Mutex<bool>>>>,
}

impl ChildState {
    /// The loop closed with this child running: returns the flag a reaper thread sets once it
    /// has reaped the pid.
    pub(crate) fn hand_over(&self) -> Arc<Mutex<bool>> {
        let reaped = Arc::new(Mutex::new(false));
        *self.handed_over.borrow_mut() = Some(reaped.clone());
        reaped
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    fn finished(&self) -> bool {
        self.returncode.get().is_some() && self.pipes_open.get() == 0
    }

    /// Records the exit status (once) and wakes the waiters if everything is done.
    pub(crate) fn set_exited(&self, code: i32) {
        if self.returncode.get().is_none() {
            self.returncode.set(Some(code));
            self.wake_if_finished();
        }
    }

    fn pipe_disconnected(&self) {
        self.pipes_open.set(self.pipes_open.get().saturating_sub(1));
        self.wake_if_finished();
    }

    fn wake_if_finished(&self) {
        if self.finished() {
            let waiters = self.waiters.borrow_mut().take();
            waiters.wake_all();
        }
    }
}

/// Spawns a subprocess: a builder over `std::process::Command`.
///
/// ```
/// use evloop_reactor::EventLoop;
/// use evloop_reactor::process::create_subprocess_exec;
/// use std::process::Stdio;
///
/// let lp = EventLoop::new().unwrap();
/// let child = create_subprocess_exec("true", [] as [&str; 0])
///     .stdout(Stdio::null())
///     .spawn_on(&lp)
///     .unwrap();
/// assert!(child.pid() > 0);
/// ```
pub struct Command {
    inner: std::process::Command,
    force_sigchld: bool,
    kill_on_drop: bool,
}

/// A command that runs `program` with `args` (asyncio's `create_subprocess_exec`).
///
/// ```
/// let cmd = evloop_reactor::process::create_subprocess_exec("echo", ["hi"]);
/// assert_eq!(cmd.as_std().get_program(), "echo");
/// ```
pub fn create_subprocess_exec<I, S>(program: impl AsRef<OsStr>, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.inner.args(args);
    cmd
}

/// A command that runs `cmd` through `/bin/sh -c` (asyncio's `create_subprocess_shell`).
///
/// ```
/// let cmd = evloop_reactor::process::create_subprocess_shell("echo hi | wc -c");
/// assert_eq!(cmd.as_std().get_program(), "/bin/sh");
/// ```
pub fn create_subprocess_shell(cmd: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("/bin/sh");
    command.inner.arg("-c").arg(cmd);
    command
}

impl Command {
    /// A command for `program`, with stdin, stdout and stderr inherited.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Sets the child's stdin: `Stdio::piped()` gives [`Process::stdin`].
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdin(cfg);
        self
    }

    /// Sets the child's stdout: `Stdio::piped()` gives [`Process::stdout`].
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdout(cfg);
        self
    }

    /// Sets the child's stderr: `Stdio::piped()` gives [`Process::stderr`].
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stderr(cfg);
        self
    }

    /// The underlying std command (environment, working directory, ...).
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }

    /// The underlying std command.
    pub fn as_std(&self) -> &std::process::Command {
        &self.inner
    }

    /// Reaps this child through SIGCHLD instead of a pidfd (the fallback for systems without
    /// pidfds; there to be tested). SIGCHLD then belongs to this loop.
    pub fn reap_with_sigchld(&mut self, on: bool) -> &mut Command {
        self.force_sigchld = on;
        self
    }

    /// Kills the child (SIGKILL) when its [`Process`] is dropped while it still runs, as tokio's
    /// `kill_on_drop`; the loop reaps it afterwards. Off by default: a dropped `Process` leaves
    /// the child running, and closing the loop never signals it (asyncio's S6).
    ///
    /// ```
    /// use evloop_reactor::EventLoop;
    /// use evloop_reactor::process::create_subprocess_exec;
    ///
    /// let lp = EventLoop::new().unwrap();
    /// let child = create_subprocess_exec("sleep", ["30"]).kill_on_drop(true).spawn_on(&lp).unwrap();
    /// drop(child); // SIGKILL now; the loop reaps it when it next runs
    /// ```
    pub fn kill_on_drop(&mut self, on: bool) -> &mut Command {
        self.kill_on_drop = on;
        self
    }

    /// Starts the child on the running loop. `Popen` errors come back as they are (for example
    /// `NotFound`, "No such file or directory").
    pub fn spawn(&mut self) -> io::Result<Process> {
        let lp = crate::get_running_loop().map_err(io::Error::other)?;
        self.spawn_on(&lp)
    }

    /// Starts the child, watched by `lp`.
    pub fn spawn_on(&mut self, lp: &EventLoop) -> io::Result<Process> {
        if lp.is_closed() {
            return Err(crate::io::fd::closed_error());
        }
        let mut child = self.inner.spawn()?;
        let pid = child.id() as i32;
        let state = Rc::new(ChildState {
            pid,
            returncode: Cell::new(None),
            pipes_open: Cell::new(0),
            waiters: RefCell::default(),
            handed_over: RefCell::new(None),
        });
        // Pipes first: should registering one fail, the child is still watched below.
        let stdin = child.stdin.take().map(|p| ChildStdin::new(lp, p, &state));
        let stdout = child.stdout.take().map(|p| ChildStdout::new(lp, p, &state));
        let stderr = child.stderr.take().map(|p| ChildStderr::new(lp, p, &state));
        // The std Child is not waited on: the loop's watcher reaps the pid.
        drop(child);
        reap::watch(lp, &state, self.force_sigchld)?;
        Ok(Process {
            state,
            stdin: stdin.transpose()?,
            stdout: stdout.transpose()?,
            stderr: stderr.transpose()?,
            kill_on_drop: self.kill_on_drop,
        })
    }
}

impl From<std::process::Command> for Command {
    fn from(inner: std::process::Command) -> Command {
        Command {
            inner,
            force_sigchld: false,
            kill_on_drop: false,
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// A running (or finished) child process (asyncio's `Process`).
///
/// Dropping it neither kills nor waits (unless [`Command::kill_on_drop`] was set): the loop still
/// reaps the child when it exits. [`close`](Process::close) is asyncio's transport `close()`:
/// pipes closed, a running child killed.
///
/// ```
/// use evloop_reactor::EventLoop;
/// use evloop_reactor::process::create_subprocess_shell;
///
/// let lp = EventLoop::new()?;
/// let proc = create_subprocess_shell("exit 5").spawn_on(&lp)?;
/// // The loop notices the exit (through a pidfd) while it runs.
/// while proc.returncode().is_none() {
///     lp.run_once()?;
/// }
/// assert_eq!(proc.returncode(), Some(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Process {
    state: Rc<ChildState>,
    /// The child's stdin, if piped.
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, if piped.
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, if piped.
    pub stderr: Option<ChildStderr>,
    kill_on_drop: bool,
}

impl Process {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.state.pid as u32
    }

    /// The exit code once the loop has seen the child exit: negative signal number if a signal
    /// ended it (`kill()` gives -9). `None` while it runs.
    pub fn returncode(&self) -> Option<i32> {
        self.state.returncode.get()
    }

    /// Waits until the child has exited and its pipes are disconnected, and returns the code.
    /// Any number of concurrent waits all get the code; dropping a wait leaves the child alone.
    ///
    /// As in asyncio, a child that fills a piped stdout or stderr nobody reads blocks, and then
    /// never exits: read the pipes, or use [`communicate`](Process::communicate).
    ///
    /// ```
    /// # use evloop_reactor::doc_support::block_on;
    /// use evloop_reactor::EventLoop;
    /// use evloop_reactor::process::create_subprocess_exec;
    /// use std::rc::Rc;
    ///
    /// let lp = EventLoop::new()?;
    /// let proc = Rc::new(create_subprocess_exec("sleep", ["30"]).spawn_on(&lp)?);
    /// proc.kill()?;
    /// let code = block_on(&lp, { let p = proc.clone(); async move { p.wait().await } });
    /// assert_eq!(code, -9);
    /// assert_eq!(proc.kill().unwrap_err().raw_os_error(), Some(libc::ESRCH));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn wait(&self) -> i32 {
        let state = &self.state;
        poll_fn(|cx| {
            if state.finished() {
                return Poll::Ready(state.returncode.get().expect("finished"));
            }
            state.waiters.borrow_mut().register(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Writes `input` to stdin (a child that stops reading is not an error), closes it, reads
    /// stdout and stderr to the end concurrently (so no amount of output deadlocks), then waits.
    /// Returns what was read from each piped stream (`None` for streams that were not piped).
    ///
    /// ```
    /// # use evloop_reactor::doc_support::block_on;
    /// use evloop_reactor::EventLoop;
    /// use evloop_reactor::process::create_subprocess_exec;
    /// use std::process::Stdio;
    ///
    /// let lp = EventLoop::new()?;
    /// let mut proc = create_subprocess_exec("tr", ["a-z", "A-Z"])
    ///     .stdin(Stdio::piped())
    ///     .stdout(Stdio::piped())
    ///     .spawn_on(&lp)?;
    /// let (out, err) = block_on(&lp, async move {
    ///     let outcome = proc.communicate(Some(b"shout")).await;
    ///     assert_eq!(proc.returncode(), Some(0));
    ///     outcome
    /// })?;
    /// assert_eq!(out.as_deref(), Some(&b"SHOUT"[..]));
    /// assert_eq!(err, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn communicate(
        &mut self,
        input: Option<&[u8]>,
    ) -> io::Result<(Option<Vec<u8>>, Option<Vec<u8>>)> {
        let mut stdin = self.stdin.take();
        if input.is_none() {
            drop(stdin.take());
        }
        let input = input.unwrap_or_default();
        let mut written = 0;
        let mut stdout = self.stdout.take();
        let mut stderr = self.stderr.take();
        let mut out = stdout.as_ref().map(|_| Vec::new());
        let mut err = stderr.as_ref().map(|_| Vec::new());
        let mut scratch = vec![0u8; 64 * 1024];
        poll_fn(|cx| {
            if let Some(pipe) = &stdin {
                loop {
                    if written == input.len() {
                        stdin = None;
                        break;
                    }
                    match pipe.poll_write(cx, &input[written..]) {
                        Poll::Ready(Ok(n)) => written += n,
                        Poll::Ready(Err(e))
                            if matches!(
                                e.kind(),
                                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                            ) =>
                        {
                            stdin = None;
                            break;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => break,
                    }
                }
            }
            if let Err(e) = pump(
                &mut stdout,
                &mut out,
                &mut scratch,
                cx,
                ChildStdout::poll_read,
            ) {
                return Poll::Ready(Err(e));
            }
            if let Err(e) = pump(
                &mut stderr,
                &mut err,
                &mut scratch,
                cx,
                ChildStderr::poll_read,
            ) {
                return Poll::Ready(Err(e));
            }
            if stdin.is_none() && stdout.is_none() && stderr.is_none() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await?;
        self.wait().await;
        Ok((out, err))
    }

    /// Sends `signal` to the child. Once the child is finished (reaped and its pipes
    /// disconnected), fails with `ESRCH` (asyncio's `ProcessLookupError`). Until the loop reaps
    /// it the pid cannot have been reused, since only the loop reaps its children.
    pub fn send_signal(&self, signal: i32) -> io::Result<()> {
        if self.state.returncode.get().is_some() {
            // Reaped: the pid may already belong to another process, so nothing is sent. While
            // pipes are still attached asyncio ignores the call; once finished, it is an error.
            if self.state.finished() {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            return Ok(());
        }
        let handed_over = self.state.handed_over.borrow().clone();
        let _reaper_lock = match &handed_over {
            Some(reaped) => {
                let guard = reaped.lock().unwrap_or_else(PoisonError::into_inner);
                if *guard {
                    // The loop closed and its reaper thread has reaped the child since.
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Some(guard)
            }
            None => None,
        };
        // SAFETY: kill(2) with a pid we spawned and nobody has reaped: the loop reaps only while
        // it runs (we are on its thread), and a reaper thread only while not holding this lock.
        if unsafe { libc::kill(self.state.pid, signal) } != 0 {
            let error = io::Error::last_os_error();
            // Exited but not yet reaped by the loop: as asyncio, not an error.
            if error.raw_os_error() != Some(libc::ESRCH) {
                return Err(error);
            }
        }
        Ok(())
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) -> io::Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// Sends SIGKILL.
    pub fn kill(&self) -> io::Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// asyncio's subprocess transport `close()`: closes the pipes and kills (SIGKILL) the child
    /// if it is still running; the loop then reaps it, and [`wait`](Process::wait) gives its
    /// code (-9 if it was killed). Idempotent.
    ///
    /// ```
    /// # use evloop_reactor::doc_support::block_on;
    /// use evloop_reactor::EventLoop;
    /// use evloop_reactor::process::create_subprocess_exec;
    ///
    /// let lp = EventLoop::new()?;
    /// let mut proc = create_subprocess_exec("sleep", ["30"]).spawn_on(&lp)?;
    /// proc.close();
    /// assert_eq!(block_on(&lp, async move { proc.wait().await }), -9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&mut self) {
        self.stdin = None;
        self.stdout = None;
        self.stderr = None;
        if self.state.returncode.get().is_none() {
            // Exited but not reaped yet is fine (ESRCH is not an error before reaping), and a
            // child the loop's reaper thread already released is not signalled at all.
            let _ = self.kill();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.kill_on_drop && self.state.returncode.get().is_none() {
            let _ = self.kill();
        }
    }
}

type PollRead<P> = fn(&P, &mut std::task::Context<'_>, &mut [u8]) -> Poll<io::Result<usize>>;

/// Reads `pipe` into `buf` until it would block; at EOF the pipe is dropped (disconnected).
fn pump<P>(
    pipe: &mut Option<P>,
    buf: &mut Option<Vec<u8>>,
    scratch: &mut [u8],
    cx: &mut std::task::Context<'_>,
    read: PollRead<P>,
) -> io::Result<()> {
    let Some(p) = pipe.as_ref() else {
        return Ok(());
    };
    loop {
        match read(p, cx, scratch) {
            Poll::Ready(Ok(0)) => {
                *pipe = None;
                return Ok(());
            }
            Poll::Ready(Ok(n)) => buf
                .as_mut()
                .expect("a piped stream has a buffer")
                .extend_from_slice(&scratch[..n]),
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(()),
        }
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.returncode() {
            None => write!(f, "<Process {} running>", self.pid()),
            Some(code) => write!(f, "<Process {} returncode={code}>", self.pid()),
        }
    }
}
