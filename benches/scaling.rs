//! The scaling view (issue 12): callbacks, timers and tasks at 10^4, 10^5 and 10^6, evloop
//! against tokio (current_thread) and smol, the workloads of /work/shared/peers/README.md as
//! `workloads.rs` writes them once for all three. Criterion's figure is wall time per item; a
//! cost that grows with N shows as a rising figure across a row's three groups. Peak memory and
//! instruction counts, which need a process per run, come from `cargo xtask bench --table`.
//!
//! `cargo bench -p evloop-benches --bench scaling` (10^6 timers take about a second a pass:
//! the whole run is several minutes).

#[path = "eventfd.rs"]
mod eventfd;
#[path = "queue_stream.rs"]
mod queue_stream;
// The other two workloads (threadsafe, queue) are the table's alone.
#[allow(dead_code)]
#[path = "workloads.rs"]
mod workloads;

use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use workloads::{Impl, Runtimes, Workload};

const SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];

fn scaling(c: &mut Criterion) {
    let runtimes = Runtimes::new();
    for workload in [Workload::Callbacks, Workload::Timers, Workload::Tasks] {
        for n in SIZES {
            let mut group = c.benchmark_group(format!("{}_{n}", workload.name()));
            group
                .sample_size(10)
                .sampling_mode(SamplingMode::Flat)
                .warm_up_time(Duration::from_millis(200))
                .measurement_time(Duration::from_secs(2))
                .throughput(Throughput::Elements(n));
            for imp in [Impl::Evloop, Impl::Tokio, Impl::Smol] {
                group.bench_function(imp.name(), |b| {
                    b.iter_custom(|iters| {
                        (0..iters)
                            .map(|_| runtimes.pass(workload, imp, n).expect("a known pairing"))
                            .sum()
                    })
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, scaling);
criterion_main!(benches);
