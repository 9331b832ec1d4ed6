//! Benchmarks of the evloop crates against their peers; see the `[[bench]]` targets.
