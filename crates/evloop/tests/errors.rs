//! Every public error type is `std::error::Error + Send + Sync + 'static`, so `?` takes it into
//! `anyhow::Error` (or eyre, or `Box<dyn Error + Send + Sync>`) and it can cross threads.

use std::time::Duration;

use evloop::{FutureError, LoopExt, RunError};

fn is_thread_safe_error<E: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn every_public_error_type_is_send_sync_and_static() {
    is_thread_safe_error::<evloop::Cancelled>();
    is_thread_safe_error::<evloop::TaskError>();
    is_thread_safe_error::<evloop::InvalidState>();
    is_thread_safe_error::<evloop::FutureError>();
    is_thread_safe_error::<evloop::TimeoutError>();
    is_thread_safe_error::<evloop::RunError>();
    is_thread_safe_error::<evloop::ExecutorError>();
    is_thread_safe_error::<evloop::LoopError>();
    is_thread_safe_error::<evloop::Panic>();
    is_thread_safe_error::<evloop::EmptyWait>();
    is_thread_safe_error::<evloop::SpawnError>();
    is_thread_safe_error::<evloop::TaskGroupError<std::io::Error>>();
    is_thread_safe_error::<evloop::SignalError>();
    is_thread_safe_error::<evloop::JobError>();
    is_thread_safe_error::<evloop::ProcessPoolError>();
    is_thread_safe_error::<evloop::thread_pool::BuildError>();
    is_thread_safe_error::<evloop::thread_pool::future::JobCancelled>();
    is_thread_safe_error::<evloop::thread_pool::future::TimeoutError>();
}

#[derive(Debug, thiserror::Error)]
#[error("disk on fire")]
struct DiskOnFire;

/// A future failed with `set_error`, awaited in a function returning `anyhow::Result`.
async fn read_config() -> anyhow::Result<u32> {
    let lp = evloop::get_running_loop()?;
    let future = lp.create_future::<u32>();
    let setter = future.clone();
    lp.call_later(Duration::from_millis(1), move || {
        setter.set_error(DiskOnFire).unwrap();
    })?;
    let value = future.await?;
    Ok(value)
}

#[test]
fn question_mark_takes_a_future_error_into_anyhow() {
    let error = evloop::run(read_config()).unwrap().unwrap_err();
    assert_eq!(error.to_string(), "disk on fire");
    let FutureError::Failed(inner) = error.downcast_ref::<FutureError>().unwrap() else {
        panic!("not the error that was set: {error:?}");
    };
    assert!(inner.downcast_ref::<DiskOnFire>().is_some());
    // And it crosses threads like any anyhow::Error.
    let message = std::thread::spawn(move || error.to_string())
        .join()
        .unwrap();
    assert_eq!(message, "disk on fire");
}

fn run_twice() -> anyhow::Result<()> {
    let mut runner = evloop::Runner::new();
    runner.run(async {})?;
    runner.close()?;
    runner.run(async {})?;
    Ok(())
}

#[test]
fn question_mark_takes_a_run_error_into_anyhow() {
    let error = run_twice().unwrap_err();
    assert_eq!(error.to_string(), "Runner is closed");
    assert!(matches!(
        error.downcast_ref::<RunError>(),
        Some(RunError::RunnerClosed)
    ));
}

fn timed_out() -> anyhow::Result<()> {
    let lp = evloop::EventLoop::builder().virtual_clock(true).build()?;
    lp.run_until_complete(async {
        evloop::timeout(
            Duration::from_secs(1),
            evloop::sleep(Duration::from_secs(2)),
        )
        .await?;
        anyhow::Ok(())
    })??;
    Ok(())
}

#[test]
fn question_mark_takes_a_timeout_into_anyhow() {
    let error = timed_out().unwrap_err();
    assert!(error.downcast_ref::<evloop::TimeoutError>().is_some());
    assert_eq!(error.to_string(), "timed out");
}
