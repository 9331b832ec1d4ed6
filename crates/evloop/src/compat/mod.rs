//! Adapters that let crates written for other runtimes' traits run on evloop, each behind its own
//! Cargo feature so a program pays only for the ecosystem it uses.
//!
//! - [`hyper`] (feature `hyper`): hyper 1.x's I/O traits on evloop streams, an executor that
//!   spawns on the loop, and a `Send + Sync` timer on the loop's thread-safe handle.
//! - [`tokio`] (feature `tokio-io`): tokio's `AsyncRead`/`AsyncWrite` on evloop streams (so
//!   tokio-util codecs work), and how to run a future that needs tokio's own runtime.

#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "tokio-io")]
pub mod tokio;
