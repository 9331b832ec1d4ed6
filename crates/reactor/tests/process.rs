//! Subprocesses. Every test runs in a child process of its own, so that reaping and the
//! process table of one test cannot disturb another.

mod common;

use std::future::Future;
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{block_on, sleep, spawn};
use evloop_reactor::EventLoop;
use evloop_reactor::process::{Command, create_subprocess_exec, create_subprocess_shell};
use evloop_test_support::in_child;
use evloop_test_support::procfs::proc_state;

#[test]
fn exec_with_piped_stdout() {
    if in_child("exec_with_piped_stdout") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let (out, code) = block_on(&lp, async {
        let proc = create_subprocess_exec("echo", ["hello", "world"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = Vec::new();
        proc.stdout
            .as_ref()
            .unwrap()
            .read_to_end(&mut out)
            .await
            .unwrap();
        (out, proc.wait().await)
    });
    assert_eq!(out, b"hello world\n");
    assert_eq!(code, 0);
}

#[test]
fn shell_exit_code_and_stderr() {
    if in_child("shell_exit_code_and_stderr") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let (out, err, code) = block_on(&lp, async {
        let mut proc = create_subprocess_shell("echo out; echo err >&2; exit 3")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (out, err) = proc.communicate(None).await.unwrap();
        (out.unwrap(), err.unwrap(), proc.returncode())
    });
    assert_eq!(out, b"out\n");
    assert_eq!(err, b"err\n");
    assert_eq!(code, Some(3));
}

#[test]
fn communicate_10_mb_does_not_deadlock() {
    if in_child("communicate_10_mb_does_not_deadlock") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let input: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    let expected = input.clone();
    let (out, err, code) = block_on(&lp, async move {
        // cat echoes 10 MB on stdout while tee also copies it to stderr: both pipes fill up
        // while stdin is still being written.
        let mut proc = create_subprocess_shell("tee /dev/stderr")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (out, err) = proc.communicate(Some(&input)).await.unwrap();
        (out.unwrap(), err.unwrap(), proc.returncode())
    });
    assert_eq!(code, Some(0));
    assert!(out == expected, "stdout intact ({} bytes)", out.len());
    assert!(err == expected, "stderr intact ({} bytes)", err.len());
}

#[test]
fn stdin_pipe_feeds_the_child() {
    if in_child("stdin_pipe_feeds_the_child") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let out = block_on(&lp, async {
        let mut proc = create_subprocess_exec("wc", ["-c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = proc.stdin.take().unwrap();
        stdin.write_all(b"twelve bytes").await.unwrap();
        stdin.close();
        let mut out = Vec::new();
        proc.stdout
            .as_ref()
            .unwrap()
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert_eq!(proc.wait().await, 0);
        out
    });
    assert_eq!(String::from_utf8(out).unwrap().trim(), "12");
}

#[test]
fn kill_gives_minus_9_and_terminate_minus_15() {
    if in_child("kill_gives_minus_9_and_terminate_minus_15") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let (killed, terminated, after) = block_on(&lp, async {
        let a = create_subprocess_exec("sleep", ["30"]).spawn().unwrap();
        let b = create_subprocess_exec("sleep", ["30"]).spawn().unwrap();
        assert_eq!(a.returncode(), None);
        a.kill().unwrap();
        b.terminate().unwrap();
        let killed = a.wait().await;
        let terminated = b.wait().await;
        // Reaped: signalling it now is asyncio's ProcessLookupError.
        (killed, terminated, a.kill().unwrap_err().raw_os_error())
    });
    assert_eq!(killed, -9);
    assert_eq!(terminated, -15);
    assert_eq!(after, Some(libc::ESRCH));
}

#[test]
fn concurrent_waits_all_get_the_code() {
    if in_child("concurrent_waits_all_get_the_code") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let on = lp.clone();
    let codes = block_on(&lp, async move {
        let proc = Rc::new(
            create_subprocess_shell("sleep 0.2; exit 7")
                .spawn()
                .unwrap(),
        );
        let waits: Vec<_> = (0..5)
            .map(|_| {
                let p = proc.clone();
                spawn(&on, async move { p.wait().await })
            })
            .collect();
        // A wait that is dropped (cancelled) does not disturb the others or the child.
        let p = proc.clone();
        let cancelled = spawn(&on, async move {
            let mut wait = std::pin::pin!(p.wait());
            let _ = std::future::poll_fn(|cx| {
                let _ = wait.as_mut().poll(cx);
                std::task::Poll::Ready(())
            })
            .await;
        });
        assert_eq!(proc.wait().await, 7);
        assert!(cancelled.is_done());
        // The other waiters were woken together with this one; let them run.
        while waits.iter().any(|w| !w.is_done()) {
            sleep(Duration::from_millis(1)).await;
        }
        waits.iter().map(|w| w.take()).collect::<Vec<_>>()
    });
    assert_eq!(codes, vec![Some(7); 5]);
}

fn no_zombie_after_drop(command: &mut Command) {
    let lp = EventLoop::new().unwrap();
    let pid = block_on(&lp, {
        let proc = command.spawn_on(&lp).unwrap();
        async move {
            let pid = proc.pid();
            drop(proc);
            // The child ends while the loop runs; nobody holds its handle.
            let deadline = Instant::now() + Duration::from_secs(10);
            while proc_state(pid).is_some() {
                assert!(
                    Instant::now() < deadline,
                    "child {pid} was not reaped: {:?}",
                    proc_state(pid)
                );
                sleep(Duration::from_millis(20)).await;
            }
            pid
        }
    });
    assert_eq!(proc_state(pid), None, "no zombie");
    lp.close().unwrap();
}

#[test]
fn a_dropped_child_is_reaped_with_pidfd() {
    if in_child("a_dropped_child_is_reaped_with_pidfd") {
        return;
    }
    no_zombie_after_drop(&mut create_subprocess_shell("sleep 0.1"));
}

#[test]
fn a_dropped_child_is_reaped_with_sigchld() {
    if in_child("a_dropped_child_is_reaped_with_sigchld") {
        return;
    }
    no_zombie_after_drop(create_subprocess_shell("sleep 0.1").reap_with_sigchld(true));
}

#[test]
fn sigchld_fallback_reports_codes() {
    if in_child("sigchld_fallback_reports_codes") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let code = block_on(&lp, async {
        let a = create_subprocess_shell("exit 4")
            .reap_with_sigchld(true)
            .spawn()
            .unwrap();
        let b = create_subprocess_exec("sleep", ["30"])
            .reap_with_sigchld(true)
            .spawn()
            .unwrap();
        b.kill().unwrap();
        (a.wait().await, b.wait().await)
    });
    assert_eq!(code, (4, -9));
}

#[test]
fn a_missing_program_is_not_found() {
    if in_child("a_missing_program_is_not_found") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let err = create_subprocess_exec("/nonexistent/evloop-test", [] as [&str; 0])
        .spawn_on(&lp)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

/// asyncio's S6: closing the loop sends no signal to a running child; it runs on (and is still
/// reaped, so it never lingers as a zombie).
#[test]
fn closing_the_loop_leaves_the_child_running() {
    if in_child("closing_the_loop_leaves_the_child_running") {
        return;
    }
    let marker = std::env::temp_dir().join(format!("evloop-s6-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let lp = EventLoop::new().unwrap();
    let cmd = format!("sleep 0.5; echo hi > {}", marker.display());
    let pid = block_on(&lp, async move {
        let proc = create_subprocess_shell(cmd).spawn().unwrap();
        sleep(Duration::from_millis(50)).await;
        assert_eq!(proc.returncode(), None);
        proc.pid()
    });
    lp.close().unwrap();
    assert!(
        proc_state(pid).is_some_and(|s| s != 'Z'),
        "still running after close"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&marker).is_ok_and(|s| s == "hi\n") {
        assert!(Instant::now() < deadline, "the child did not run on");
        std::thread::sleep(Duration::from_millis(20));
    }
    while proc_state(pid).is_some() {
        assert!(
            Instant::now() < deadline,
            "the orphaned child was not reaped: {:?}",
            proc_state(pid)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_file(&marker).unwrap();
}

#[test]
fn signals_after_close_reach_the_child_until_its_reaper_released_it() {
    if in_child("signals_after_close_reach_the_child_until_its_reaper_released_it") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let proc = block_on(&lp, async {
        let proc = create_subprocess_exec("sleep", ["30"]).spawn().unwrap();
        sleep(Duration::from_millis(20)).await;
        proc
    });
    let pid = proc.pid();
    lp.close().unwrap();
    // Still running and handed to a reaper thread: the signal reaches it.
    proc.kill().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc_state(pid).is_some() {
        assert!(Instant::now() < deadline, "the killed child was not reaped");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Reaped by the thread: the pid is no longer ours, so nothing is sent.
    let error = proc.send_signal(0).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::ESRCH));
}

#[test]
fn no_fd_leak_after_processes_and_sockets() {
    if in_child("no_fd_leak_after_processes_and_sockets") {
        return;
    }
    let count = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let before = count();
    {
        let lp = EventLoop::new().unwrap();
        block_on(&lp, async {
            let mut proc = create_subprocess_shell("echo x; echo y >&2")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            proc.communicate(Some(b"in")).await.unwrap();
            let (a, b) = evloop_reactor::net::UnixStream::pair().unwrap();
            drop((a, b));
        });
        lp.add_signal_handler(libc::SIGUSR2, || ()).unwrap();
        assert_eq!(lp.io_source_count(), 1, "only the signal pipe is left");
        lp.close().unwrap();
    }
    assert_eq!(count(), before, "every fd was closed");
}

#[test]
fn dropping_an_unclosed_loop_still_reaps_its_children() {
    if in_child("dropping_an_unclosed_loop_still_reaps_its_children") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let pid = create_subprocess_shell("sleep 0.2")
        .spawn_on(&lp)
        .unwrap()
        .pid();
    drop(lp);
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc_state(pid).is_some() {
        assert!(
            Instant::now() < deadline,
            "child {pid} left as {:?}",
            proc_state(pid)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn close_kills_a_running_child_and_the_loop_reaps_it() {
    if in_child("close_kills_a_running_child_and_the_loop_reaps_it") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let (pid, code, state) = block_on(&lp, async {
        let mut proc = create_subprocess_exec("sleep", ["30"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        proc.close();
        assert!(proc.stdout.is_none(), "close() closes the pipes");
        proc.close(); // idempotent
        let code = proc.wait().await;
        (proc.pid(), code, proc_state(proc.pid()))
    });
    assert_eq!(code, -9);
    assert_eq!(state, None, "child {pid} was reaped");
    lp.close().unwrap();
}

#[test]
fn close_after_the_child_exited_sends_nothing() {
    if in_child("close_after_the_child_exited_sends_nothing") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let code = block_on(&lp, async {
        let mut proc = create_subprocess_shell("exit 4").spawn().unwrap();
        proc.wait().await;
        proc.close();
        proc.wait().await
    });
    assert_eq!(code, 4);
    lp.close().unwrap();
}

#[test]
fn kill_on_drop_kills_a_running_child_when_its_handle_goes() {
    if in_child("kill_on_drop_kills_a_running_child_when_its_handle_goes") {
        return;
    }
    let lp = EventLoop::new().unwrap();
    let pid = block_on(&lp, async {
        let proc = create_subprocess_exec("sleep", ["30"])
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = proc.pid();
        drop(proc);
        // Killed at once, so it is gone long before its 30 s; the loop reaps it meanwhile.
        let deadline = Instant::now() + Duration::from_secs(10);
        while proc_state(pid).is_some() {
            assert!(Instant::now() < deadline, "child {pid} still there");
            sleep(Duration::from_millis(20)).await;
        }
        pid
    });
    assert_eq!(proc_state(pid), None);
    lp.close().unwrap();
}
