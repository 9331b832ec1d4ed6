//! The sliding window of in-flight jobs that the executor and thread-pool throughput benches
//! share (included with `#[path]` by each): one definition, so the two measure the same thing.

use std::collections::VecDeque;
use std::future::Future;
use std::hint::black_box;

/// Runs `jobs` jobs keeping `in_flight` outstanding, awaiting the oldest first.
pub(crate) async fn window<F, Fut>(jobs: u64, in_flight: usize, mut submit: F)
where
    F: FnMut() -> Fut,
    Fut: Future,
{
    let mut window = VecDeque::with_capacity(in_flight);
    let mut submitted = 0;
    while submitted < jobs && window.len() < in_flight {
        window.push_back(submit());
        submitted += 1;
    }
    while let Some(oldest) = window.pop_front() {
        black_box(oldest.await);
        if submitted < jobs {
            window.push_back(submit());
            submitted += 1;
        }
    }
}
