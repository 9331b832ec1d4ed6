//! The error texts the coroutine layer shows are asyncio's, word for word.

use evloop::{InvalidState, RunError, SpawnError};

#[test]
fn error_texts_are_asyncios() {
    assert_eq!(
        evloop::get_running_loop().unwrap_err().to_string(),
        "no running event loop"
    );
    assert_eq!(
        RunError::StoppedBeforeComplete.to_string(),
        "Event loop stopped before Future completed."
    );
    assert_eq!(RunError::RunnerClosed.to_string(), "Runner is closed");
    assert_eq!(
        RunError::NestedRunnerRun.to_string(),
        "Runner.run() cannot be called from a running event loop"
    );
    assert_eq!(
        RunError::NestedRun.to_string(),
        "evloop::run() cannot be called from a running event loop"
    );
    assert_eq!(InvalidState::ResultNotSet.to_string(), "Result is not set.");
    assert_eq!(InvalidState::AlreadyDone.to_string(), "invalid state");
    assert_eq!(
        evloop::EmptyWait.to_string(),
        "Set of Tasks/Futures is empty."
    );
    assert_eq!(SpawnError::Finished.to_string(), "TaskGroup is finished");
    assert_eq!(
        SpawnError::ShuttingDown.to_string(),
        "TaskGroup is shutting down"
    );
}
