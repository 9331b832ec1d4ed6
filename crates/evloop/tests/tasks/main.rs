//! Tasks, futures, combinators and run(): asyncio's coroutine-layer contracts (sections B3, G, H),
//! cancellation down the await chain, loop ownership and reports, the task dump.
//! One test binary, a module per area (tokio's `tests/` naming: `task_*`, `combinators_*`,
//! `time_*`), so that CI links it once.

mod combinators_gather;
mod combinators_shield;
mod combinators_wait;
mod error_texts;
mod loop_future;
mod runner;
mod task_cancel;
mod task_cancel_request;
mod task_cell;
mod task_dump;
mod task_edges;
mod task_group;
mod task_lifetime;
mod task_spawn;
mod time_timeout;

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
