//! `cargo xtask bench`: the criterion benches (the wall-clock view, extra arguments go to
//! `cargo bench`), and two one-run views of issue 12's workloads for evloop, tokio and smol:
//!
//! * `--instructions`: each workload under `valgrind --tool=callgrind`, counting only the
//!   measured region (`--toggle-collect=evloop_bench_measured`, a marker function in
//!   benches/workloads.rs), so start-up and warm-up do not count: instructions per item and the
//!   ratios, figures the noisy shared VM does not move.
//! * `--table`: every workload at every size once for each runtime (wall-clock median of a
//!   few passes, process CPU, peak RSS, instruction counts, the TCP echo figures of
//!   benches/tcp_echo_peers.sh and tcp_echo_callgrind.sh) as ONE Markdown table with the
//!   targets marked met or not.
//!
//! Each workload runs in a process of its own (the `measure` example of evloop-benches) under
//! `timeout`, so a hang costs one cell and a message, never the run. Neither is part of
//! `cargo xtask ci`.

mod parse;
mod table;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{TaskResult, cargo, cargo_bin, describe, root};
use table::{FLOOR, IMPLS, Results, SIZES};

/// Sizes of the scaling workloads under callgrind (about 50x slower than native: 10^6 would
/// take most of the table's ten minutes alone).
const IR_SIZES: [u64; 2] = [10_000, 100_000];
/// Round trips of the threadsafe workload, natively and under callgrind.
const THREADSAFE_N: (u64, u64) = (20_000, 2_000);
/// Items of the queue workload, natively and under callgrind.
const QUEUE_N: (u64, u64) = (100_000, 100_000);
/// The warm-up pass under callgrind is at most this big: enough for lazy set-up and the
/// allocator's first growth, without doubling the run.
const IR_WARMUP: u64 = 10_000;
/// Seconds a native `measure` run may take (10^6 timers with six passes take about 10 s).
const NATIVE_TIMEOUT: u64 = 180;
/// Seconds a callgrind `measure` run may take.
const CALLGRIND_TIMEOUT: u64 = 400;

#[derive(Debug)]
struct Options {
    passes: u64,
    echo: bool,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        passes: 5,
        echo: true,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--passes" => {
                let n = args.next().ok_or("--passes needs a number")?;
                options.passes = n
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--passes takes a positive number, not {n:?}"))?;
            }
            "--no-echo" => options.echo = false,
            _ => {
                return Err(format!(
                    "unknown argument {arg:?}; usage: cargo xtask bench --table \
                     [--passes N] [--no-echo] | --instructions"
                ));
            }
        }
    }
    Ok(options)
}

pub(crate) fn bench(args: &[String]) -> TaskResult {
    match args.first().map(String::as_str) {
        Some("--instructions") => instructions(),
        Some("--table") => table_run(&options(&args[1..])?),
        _ => {
            let mut cargo_args: Vec<&str> = vec!["bench", "--workspace"];
            cargo_args.extend(args.iter().map(String::as_str));
            cargo(&cargo_args)
        }
    }
}

/// One `measure` run to make: workload, impl, n, warm-up size.
type Job<'a> = (&'a str, &'a str, u64, u64);

/// The callgrind runs of both views.
fn callgrind_jobs() -> Vec<Job<'static>> {
    let mut jobs = Vec::new();
    for workload in ["callbacks", "timers", "tasks"] {
        for n in IR_SIZES {
            for imp in IMPLS {
                jobs.push((workload, imp, n, n.min(IR_WARMUP)));
            }
        }
    }
    for imp in IMPLS.iter().copied().chain([FLOOR]) {
        jobs.push(("threadsafe", imp, THREADSAFE_N.1, 100));
    }
    for imp in IMPLS {
        jobs.push(("queue", imp, QUEUE_N.1, QUEUE_N.1.min(IR_WARMUP)));
    }
    jobs
}

fn instructions() -> TaskResult {
    let exe = build_measure()?;
    if let Err(why) = ensure_valgrind() {
        println!("xtask bench --instructions: skipped: {why}");
        return Ok(());
    }
    let mut results = Results::default();
    let mut failures = Vec::new();
    run_callgrind(&exe, &mut results, &mut failures);
    println!("\nInstructions per item (callgrind, measured region only):\n");
    println!("{}", table::instructions_markdown(&results));
    report_failures(&failures)
}

fn table_run(options: &Options) -> TaskResult {
    let started = Instant::now();
    let exe = build_measure()?;
    let mut results = Results {
        threadsafe_n: THREADSAFE_N,
        queue_n: QUEUE_N,
        ..Results::default()
    };
    let mut failures = Vec::new();
    let pin = taskset_available();

    for workload in ["callbacks", "timers", "tasks"] {
        for n in SIZES {
            for imp in IMPLS {
                native(
                    &exe,
                    (workload, imp, n, n),
                    options.passes,
                    false,
                    &mut results,
                    &mut failures,
                );
            }
        }
    }
    for imp in IMPLS.iter().copied().chain([FLOOR]) {
        native(
            &exe,
            ("threadsafe", imp, THREADSAFE_N.0, 1_000),
            options.passes,
            pin,
            &mut results,
            &mut failures,
        );
    }
    for imp in IMPLS {
        native(
            &exe,
            ("queue", imp, QUEUE_N.0, QUEUE_N.0),
            options.passes,
            false,
            &mut results,
            &mut failures,
        );
    }

    let valgrind = ensure_valgrind();
    if valgrind.is_ok() {
        run_callgrind(&exe, &mut results, &mut failures);
    }
    if options.echo {
        echo(&mut results, valgrind.is_ok(), &mut failures);
    }

    println!("\n## evloop vs tokio (current_thread) vs smol: one run\n");
    println!("{}", notes(options, pin, &valgrind));
    println!("{}", table::markdown(&results));
    println!("\n(table run took {:.0?})", started.elapsed());
    report_failures(&failures)
}

/// The lines above the table: when, where, how each column was measured.
fn notes(options: &Options, pinned: bool, valgrind: &Result<(), String>) -> String {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let ir = match valgrind {
        Ok(()) => format!(
            "Ir columns: instructions per item under callgrind, measured region only, at n ≤ {} \
             for the scaling rows (— at 10^6: callgrind is ~50x slower), {} round trips for \
             threadsafe, {} items for the queue; warm-up pass ≤ {} items outside the region.",
            table::number(IR_SIZES[1] as f64),
            table::number(THREADSAFE_N.1 as f64),
            table::number(QUEUE_N.1 as f64),
            table::number(IR_WARMUP as f64)
        ),
        Err(why) => format!("Ir columns empty: {why}."),
    };
    format!(
        "Commit {commit}, {cpus} CPUs. Wall and CPU columns: median of {} passes after a \
         full-size warm-up, each workload in a process of its own (ns per item unless the \
         figure says otherwise); peak RSS is the process's VmHWM. threadsafe: {} \
         (the eventfd floor is two plain threads, same run). Workloads as \
         /work/shared/peers/README.md defines them (evloop tasks await sleep(ZERO), the \
         peers yield_now). {ir} TCP echo: benches/tcp_echo_peers.sh (3 passes, server on CPU 0, \
         client on CPU 1) and tcp_echo_callgrind.sh (Ir per request).\n",
        options.passes,
        if pinned {
            "the whole process pinned to CPU 0 (taskset -c 0)"
        } else {
            "NOT pinned (taskset is missing)"
        }
    )
}

fn report_failures(failures: &[String]) -> TaskResult {
    if failures.is_empty() {
        return Ok(());
    }
    eprintln!("\nNot measured ({}):", failures.len());
    for why in failures {
        eprintln!("  {why}");
    }
    Err(format!(
        "{} measurement(s) failed; see above",
        failures.len()
    ))
}

/// Builds the `measure` example optimized and returns its path (from cargo's own report, so
/// `CARGO_TARGET_DIR` and profiles need no guessing).
fn build_measure() -> Result<PathBuf, String> {
    let mut cmd = Command::new(cargo_bin());
    cmd.args([
        "build",
        "--release",
        "-p",
        "evloop-benches",
        "--example",
        "measure",
        "--message-format=json-render-diagnostics",
    ])
    .current_dir(root());
    println!("$ {}", describe(&cmd));
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start cargo build: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{}` failed", describe(&cmd)));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "measure")
        .and_then(|msg| msg["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo did not report the measure executable".to_string())
}

/// `Ok` when valgrind is there, installing it with apt-get if it is not (and saying so).
fn ensure_valgrind() -> Result<(), String> {
    if succeeds(Command::new("valgrind").arg("--version")) {
        return Ok(());
    }
    if !succeeds(Command::new("apt-get").arg("--version")) {
        return Err("valgrind is not installed and apt-get is unavailable to install it".into());
    }
    println!("valgrind is not installed: installing it with `apt-get install -y valgrind`");
    let installed = succeeds(Command::new("apt-get").args(["install", "-y", "valgrind"]))
        || (succeeds(Command::new("apt-get").arg("update"))
            && succeeds(Command::new("apt-get").args(["install", "-y", "valgrind"])));
    if installed && succeeds(Command::new("valgrind").arg("--version")) {
        Ok(())
    } else {
        Err("valgrind is not installed and `apt-get install -y valgrind` failed".into())
    }
}

fn taskset_available() -> bool {
    succeeds(Command::new("taskset").args(["-c", "0", "true"]))
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

/// `cmd` under `timeout` (when coreutils has it): SIGTERM after `secs`, SIGKILL 10 s later.
fn with_timeout(secs: u64, program: &Path, args: &[String]) -> Command {
    if succeeds(Command::new("timeout").arg("--version")) {
        let mut cmd = Command::new("timeout");
        cmd.arg("--kill-after=10")
            .arg(secs.to_string())
            .arg(program)
            .args(args);
        cmd
    } else {
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd
    }
}

/// Runs `cmd`, returning its stdout, or what went wrong (a timeout named as one).
fn output_of(mut cmd: Command, secs: u64) -> Result<String, String> {
    let what = describe(&cmd);
    eprintln!("$ {what}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start `{what}`: {e}"))?;
    if out.status.code() == Some(124) || out.status.code() == Some(137) {
        return Err(format!("`{what}` timed out after {secs} s"));
    }
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        return Err(format!("`{what}` exited with {}: {last}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn measure_args((workload, imp, n, warmup): Job<'_>, passes: u64) -> Vec<String> {
    vec![
        workload.into(),
        imp.into(),
        n.to_string(),
        "--passes".into(),
        passes.to_string(),
        "--warmup".into(),
        warmup.to_string(),
    ]
}

fn native(
    exe: &Path,
    job: Job<'_>,
    passes: u64,
    pin: bool,
    results: &mut Results,
    failures: &mut Vec<String>,
) {
    let (workload, imp, n, _) = job;
    let mut args = measure_args(job, passes);
    let program = if pin {
        args.splice(
            0..0,
            ["-c".to_string(), "0".into(), exe.display().to_string()],
        );
        PathBuf::from("taskset")
    } else {
        exe.to_path_buf()
    };
    match output_of(
        with_timeout(NATIVE_TIMEOUT, &program, &args),
        NATIVE_TIMEOUT,
    )
    .and_then(|out| parse::measured(&out))
    {
        Ok(measured) => {
            println!(
                "  {workload} {imp} n={n}: {:.1} ns/item",
                measured.ns_per_item
            );
            results
                .native
                .insert((workload.into(), n, imp.into()), measured);
        }
        Err(why) => failures.push(format!("{workload} {imp} n={n}: {why}")),
    }
}

fn run_callgrind(exe: &Path, results: &mut Results, failures: &mut Vec<String>) {
    let dir = std::env::temp_dir().join(format!("evloop-callgrind-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        failures.push(format!("cannot create {}: {e}", dir.display()));
        return;
    }
    for job in callgrind_jobs() {
        let (workload, imp, n, _) = job;
        let out_file = dir.join(format!("{workload}-{imp}-{n}.out"));
        let mut args = vec![
            "--tool=callgrind".to_string(),
            "--toggle-collect=evloop_bench_measured".into(),
            format!("--callgrind-out-file={}", out_file.display()),
            exe.display().to_string(),
        ];
        args.extend(measure_args(job, 1));
        let counted = output_of(
            with_timeout(CALLGRIND_TIMEOUT, Path::new("valgrind"), &args),
            CALLGRIND_TIMEOUT,
        )
        .and_then(|_| {
            std::fs::read_to_string(&out_file)
                .map_err(|e| format!("cannot read {}: {e}", out_file.display()))
        })
        .and_then(|text| parse::callgrind_total(&text));
        match counted {
            Ok(total) => {
                let per_item = total as f64 / n as f64;
                println!("  callgrind {workload} {imp} n={n}: {per_item:.0} Ir/item");
                results
                    .ir
                    .insert((workload.into(), n, imp.into()), per_item);
            }
            Err(why) => failures.push(format!("callgrind {workload} {imp} n={n}: {why}")),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The TCP echo row: evloop's protocol server against tokio's, from the repository's scripts.
fn echo(results: &mut Results, valgrind: bool, failures: &mut Vec<String>) {
    let script = |name: &str| root().join("benches").join(name);
    let run = |name: &str, secs: u64| {
        let mut cmd = with_timeout(
            secs,
            Path::new("bash"),
            &[script(name).display().to_string()],
        );
        // The scripts report their builds and passes on stderr: shown as they go.
        cmd.env("RUNS", "3")
            .env("IMPLS", "evloop-protocol tokio")
            .stderr(Stdio::inherit())
            .current_dir(root());
        output_of(cmd, secs).map(|out| parse::peer_figures(&out))
    };
    match run("tcp_echo_peers.sh", 600) {
        Ok(figures) => {
            for imp in ["evloop", "tokio"] {
                let mut put = |map: &mut std::collections::HashMap<String, f64>, workload| {
                    match parse::median_of(&figures, workload, imp) {
                        Some(v) => {
                            map.insert(imp.into(), v);
                        }
                        None => failures.push(format!("tcp echo: no {workload} for {imp}")),
                    }
                };
                put(&mut results.echo_rps, "tcp_echo");
                put(&mut results.echo_cpu_us, "tcp_echo_server_cpu_per_req");
            }
        }
        Err(why) => failures.push(format!("tcp echo: {why}")),
    }
    if !valgrind {
        return;
    }
    match run("tcp_echo_callgrind.sh", 900) {
        Ok(figures) => {
            for (label, imp) in [("evloop-protocol", "evloop"), ("tokio", "tokio")] {
                match parse::median_of(&figures, "tcp_echo_ir", label) {
                    Some(v) => {
                        results.echo_ir.insert(imp.into(), v);
                    }
                    None => failures.push(format!("tcp echo callgrind: no figure for {label}")),
                }
            }
        }
        Err(why) => failures.push(format!("tcp echo callgrind: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn table_options_parse_and_reject_nonsense() {
        let o = options(&args(&[])).unwrap();
        assert_eq!((o.passes, o.echo), (5, true));
        let o = options(&args(&["--passes", "3", "--no-echo"])).unwrap();
        assert_eq!((o.passes, o.echo), (3, false));
        assert!(options(&args(&["--passes", "0"])).is_err());
        assert!(options(&args(&["--passes"])).is_err());
        assert!(
            options(&args(&["--fast"]))
                .unwrap_err()
                .contains("unknown argument")
        );
    }

    #[test]
    fn callgrind_runs_are_small_and_cover_every_workload() {
        let jobs = callgrind_jobs();
        for workload in ["callbacks", "timers", "tasks", "threadsafe", "queue"] {
            for imp in IMPLS {
                assert!(
                    jobs.iter().any(|j| j.0 == workload && j.1 == imp),
                    "{workload} {imp}"
                );
            }
        }
        assert!(jobs.iter().any(|j| j.0 == "threadsafe" && j.1 == FLOOR));
        for (workload, imp, n, warmup) in jobs {
            assert!(n <= 100_000, "{workload} {imp} at {n} under callgrind");
            assert!(
                warmup <= IR_WARMUP,
                "{workload} {imp} warms up with {warmup}"
            );
        }
    }

    #[test]
    fn measure_is_given_its_passes_and_warmup() {
        assert_eq!(
            measure_args(("tasks", "smol", 1000, 10), 3),
            args(&["tasks", "smol", "1000", "--passes", "3", "--warmup", "10"])
        );
    }
}
