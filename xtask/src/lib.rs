//! Holds the workspace README's examples as doc tests (`cargo test -p xtask --doc`), here rather
//! than in the evloop crate because the README lies outside every published package.

/// The workspace README's examples, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct WorkspaceReadmeDoctests;
