//! The process pool from a plain `main`: the asyncio docs' `cpu_bound` example, plus `map`.
//!
//! Run with `cargo run --release -p evloop-process-pool --example squares`.

use evloop_process_pool::ProcessPool;

/// Sum of i*i for i in 0..n, opaque to the optimizer so it cannot be folded to a formula.
fn cpu_bound(n: u64) -> u128 {
    (0..std::hint::black_box(n))
        .map(|i| std::hint::black_box(u128::from(i) * u128::from(i)))
        .sum()
}

fn main() {
    // Everything above this line runs in every worker too: keep it empty.
    evloop_process_pool::init();

    let pool = ProcessPool::builder()
        .max_workers(2)
        .build()
        .expect("valid settings");
    let result = pool
        .submit(cpu_bound, 10_000_000)
        .expect("pool is running")
        .wait();
    println!("custom process pool {}", result.expect("the job ran"));

    let squares: Vec<u64> = pool
        .map(|x: u64| x * x, 0..10, 3)
        .expect("pool is running")
        .collect::<Result<_, _>>()
        .expect("every chunk ran");
    println!("squares {squares:?}");
    println!("workers {:?}", pool.worker_pids().len());
}
