//! One workload of `workloads.rs`, at one size, on one runtime, in a process of its own: what
//! `cargo xtask bench --table` and `--instructions` run, natively for the wall clock and the
//! peak RSS, and under `valgrind --tool=callgrind --toggle-collect=evloop_bench_measured` for
//! the instruction counts.
//!
//! ```text
//! measure <workload> <impl> <n> [--passes P] [--warmup W]
//! ```
//!
//! runs an untimed warm-up pass of size W (default n), outside the callgrind marker, then P timed passes (default 1), and
//! prints one line of `key=value` fields: `workload`, `impl`, `n`, `ns_per_item` (the median
//! pass divided by n), `cpu_ns_per_item` (the median
//! pass's process CPU time divided by n), `passes`, `peak_rss_kb` (the process's `VmHWM`). Exits non-zero with a
//! message on a bad argument.

#[path = "eventfd.rs"]
mod eventfd;
#[path = "queue_stream.rs"]
mod queue_stream;
#[path = "workloads.rs"]
mod workloads;

use std::process::ExitCode;

use workloads::{Impl, Runtimes, Workload};

const USAGE: &str = "usage: measure <workload> <impl> <n> [--passes P] [--warmup W]";

struct Args {
    workload: Workload,
    imp: Impl,
    n: u64,
    passes: usize,
    warmup: u64,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let [workload, imp, n, rest @ ..] = args else {
        return Err(USAGE.into());
    };
    let number = |what: &str, text: &str| {
        text.parse::<u64>()
            .map_err(|_| format!("{what} must be a whole number, not {text:?}"))
    };
    let n = number("n", n)?;
    let mut parsed = Args {
        workload: Workload::from_name(workload)
            .ok_or_else(|| format!("unknown workload {workload:?}"))?,
        imp: Impl::from_name(imp).ok_or_else(|| format!("unknown impl {imp:?}"))?,
        n,
        passes: 1,
        warmup: n,
    };
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--passes" => parsed.passes = number(flag, value)?.max(1) as usize,
            "--warmup" => parsed.warmup = number(flag, value)?,
            _ => return Err(format!("unknown flag {flag:?}; {USAGE}")),
        }
    }
    Ok(parsed)
}

/// The CPU time (user + system, all threads) the process has used so far, in ns.
fn process_cpu_ns() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes only the struct we pass, a live `timespec`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

/// The process's peak resident set (`VmHWM` in /proc/self/status), in KiB.
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&args) {
        Ok(args) => args,
        Err(why) => {
            eprintln!("measure: {why}");
            return ExitCode::FAILURE;
        }
    };
    let runtimes = Runtimes::new();
    let pass = |n| runtimes.pass(args.workload, args.imp, n);
    let passes = (|| -> Result<Vec<(f64, f64)>, String> {
        if args.warmup > 0 {
            workloads::set_marking(false);
            pass(args.warmup)?;
            workloads::set_marking(true);
        }
        (0..args.passes)
            .map(|_| {
                let cpu = process_cpu_ns();
                let elapsed = pass(args.n)?;
                let per_item = |ns: f64| ns / args.n as f64;
                Ok((
                    per_item(elapsed.as_nanos() as f64),
                    per_item(process_cpu_ns() - cpu),
                ))
            })
            .collect()
    })();
    let (mut wall, mut cpu): (Vec<f64>, Vec<f64>) = match passes {
        Ok(passes) => passes.into_iter().unzip(),
        Err(why) => {
            eprintln!("measure: {why}");
            return ExitCode::FAILURE;
        }
    };
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!(
        "workload={} impl={} n={} ns_per_item={:.1} cpu_ns_per_item={:.1} passes={} peak_rss_kb={}",
        args.workload.name(),
        args.imp.name(),
        args.n,
        median(&mut wall),
        median(&mut cpu),
        args.passes,
        peak_rss_kb()
    );
    ExitCode::SUCCESS
}
