//! `cargo xtask`: the project's CI and maintenance tasks, in Rust so they run the same everywhere.
//!
//! `cargo xtask ci` is the one command CI runs (`.ci/run` calls nothing else). Every step stops the
//! run on its first failure, so a red CI always points at exactly one step.

use std::collections::HashMap;
use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod asan;
mod bench;
mod loom;
mod soak;

/// The workspace crates from the bottom layer to the top. A crate may depend only on crates that
/// come before it here.
const LAYERS: &[&str] = &[
    // Proc macros that depend on no workspace crate: their expansions call the facade.
    "evloop-macros",
    "evloop-callbacks",
    "evloop-reactor",
    "evloop-thread-pool",
    "evloop-process-pool",
    "evloop",
];

/// Crates that are pure data structures and so can run under Miri.
const MIRI_CRATES: &[&str] = &["evloop-callbacks"];

type TaskResult = Result<(), String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("help");
    let rest = &args[args.len().min(1)..];
    let result = match task {
        "ci" => ci(),
        "fmt" => cargo(&["fmt", "--all"]),
        "lint" => lint(),
        "test" => test(),
        "doc" => doc(),
        "layers" => layers(),
        "package" => package(),
        "features" => features(),
        "miri" => miri(),
        "bench" => bench::bench(rest),
        "tour" => tour(),
        "loom" => loom::loom(),
        "asan" => asan::asan(),
        "soak" => soak::soak(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 ci      everything CI checks: fmt, clippy, tests, docs, layering, benches compile, tour,\n          \
                         miri, loom, asan, a 30 s soak\n  \
                 lint    cargo fmt --check and clippy with warnings denied\n  \
                 test    the test suite (nextest when installed) and the doc tests\n  \
                 doc     rustdoc with warnings denied\n  \
                 layers  check that each crate depends only on the layers beneath it\n  \
                 package check that every published crate packages: metadata, files, includes\n  \
                 features cargo check of the facade and the reactor with no default features and each feature alone\n  \
                 miri    the pure data-structure crates under Miri (skipped when Miri is absent)\n  \
                 bench   run the criterion benchmarks (extra arguments go to cargo bench);\n          \
                         --instructions: issue 12's workloads under callgrind for evloop, tokio, smol;\n          \
                         --table [--passes N] [--no-echo]: every workload at every size, one Markdown\n          \
                         table with ratios and targets (~10 min; not part of ci)\n  \
                 tour    run the demo example\n  \
                 loom    the loom model tests of the cross-thread queue and the pool's sleep protocol\n  \
                 asan    the workspace tests under AddressSanitizer and LeakSanitizer (nightly; skipped without)\n  \
                 soak    mixed load on one loop, failing on a leak trend (--secs N, default 30)"
            );
            return if task == "help" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("\nxtask {task}: FAILED: {why}");
            ExitCode::FAILURE
        }
    }
}

fn ci() -> TaskResult {
    let started = Instant::now();
    step("format", || cargo(&["fmt", "--all", "--check"]))?;
    step("layering", layers)?;
    step("packaging", package)?;
    step("feature combinations", features)?;
    step("clippy", || {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    step("tests", test)?;
    step("docs", doc)?;
    // The benches build in the test profile, on the artifacts the tests just built (an
    // optimized bench build of every peer would be the slowest step of CI); `cargo xtask bench`
    // builds them optimized to run them.
    step("benchmarks compile", || {
        cargo(&["build", "--workspace", "--benches", "--all-features"])
    })?;
    step("tour", tour)?;
    step("miri", miri)?;
    step("loom", loom::loom)?;
    step("asan", asan::asan)?;
    step("soak", || soak::soak(&[]))?;
    println!("\nxtask ci: all steps passed in {:.0?}", started.elapsed());
    Ok(())
}

fn step(name: &str, run: impl FnOnce() -> TaskResult) -> TaskResult {
    println!("\n==> {name}");
    let started = Instant::now();
    run().map_err(|why| format!("step `{name}`: {why}"))?;
    println!("<== {name} ok ({:.1?})", started.elapsed());
    Ok(())
}

fn lint() -> TaskResult {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])
}

fn test() -> TaskResult {
    if has_nextest() {
        cargo(&[
            "nextest",
            "run",
            "--workspace",
            "--all-features",
            "--no-fail-fast",
        ])?;
    } else {
        println!("cargo-nextest is not installed: using cargo test");
        cargo(&[
            "test",
            "--workspace",
            "--all-features",
            "--lib",
            "--bins",
            "--tests",
            "--examples",
        ])?;
    }
    // nextest does not run doc tests, and the rustdoc examples are part of the contract.
    cargo(&["test", "--workspace", "--all-features", "--doc"])
}

fn doc() -> TaskResult {
    run(Command::new(cargo_bin())
        .args(["doc", "--workspace", "--all-features", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings"))
}

fn tour() -> TaskResult {
    cargo(&["run", "--release", "--example", "tour"])
}

fn miri() -> TaskResult {
    let probe = Command::new("cargo")
        .args(["+nightly", "miri", "--version"])
        .output();
    if !matches!(&probe, Ok(out) if out.status.success()) {
        println!(
            "Miri is not installed (`rustup +nightly component add miri` adds it): skipped for {}",
            MIRI_CRATES.join(", ")
        );
        return Ok(());
    }
    for krate in MIRI_CRATES {
        run(Command::new("cargo").args(["+nightly", "miri", "test", "-p", krate]))?;
    }
    Ok(())
}

/// Reads `cargo metadata` and fails when a workspace crate depends (normally or at build time) on a
/// workspace crate that is not beneath it. Dev-dependencies are free: tests may use any layer.
fn layers() -> TaskResult {
    let meta = metadata()?;
    let rank: HashMap<&str, usize> = LAYERS.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut broken = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default();
        let Some(&own) = rank.get(name) else { continue };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if let Some(&theirs) = rank.get(dep_name)
                && theirs >= own
            {
                broken.push(format!(
                    "{name} depends on {dep_name}, which is not beneath it"
                ));
            }
        }
        println!("  {name}: layer {} ok", own + 1);
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(broken.join("; "))
    }
}

/// What `cargo publish` needs from each published crate, checked without building anything:
/// `cargo package --no-verify` (manifest, license files and README inside the package, path
/// dependencies resolvable in dependency order through cargo's local registry overlay), the
/// metadata crates.io shows (description, keywords, categories, readme, rust-version, no
/// placeholder repository), and every `include_str!`/`include_bytes!`/`#[path]` naming a file
/// inside the package (so the packaged doc tests and tests compile). Verification by a full
/// build is left out: it rebuilds the whole tree for what clippy has already compiled.
fn package() -> TaskResult {
    let mut args = vec!["package", "--no-verify", "--allow-dirty"];
    for krate in LAYERS {
        args.extend(["-p", krate]);
    }
    cargo(&args)?;
    let meta = metadata()?;
    let mut broken = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default();
        if !LAYERS.contains(&name) {
            continue;
        }
        for field in ["description", "license", "readme", "rust_version"] {
            if package[field].as_str().is_none_or(str::is_empty) {
                broken.push(format!("{name}: no `{field}`"));
            }
        }
        for field in ["keywords", "categories"] {
            if package[field].as_array().is_none_or(Vec::is_empty) {
                broken.push(format!("{name}: no `{field}`"));
            }
        }
        if let Some(url) = package["repository"].as_str()
            && url.contains(".invalid")
        {
            broken.push(format!("{name}: placeholder repository {url}"));
        }
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest.parent().unwrap_or(Path::new("."));
        broken.extend(includes_outside(dir, dir));
        println!("  {name}: metadata and includes ok");
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(broken.join("; "))
    }
}

/// The `include_str!`, `include_bytes!` and `#[path]` targets under `dir` that resolve outside the
/// crate directory `root` (and so are missing from its package), or to no file at all.
fn includes_outside(root: &Path, dir: &Path) -> Vec<String> {
    let mut broken = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return broken;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "target") {
            broken.extend(includes_outside(root, &path));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for marker in ["include_str!(\"", "include_bytes!(\"", "#[path = \""] {
            for (at, _) in text.match_indices(marker) {
                let rest = &text[at + marker.len()..];
                let target = &rest[..rest.find('"').unwrap_or(0)];
                // Both are relative to the directory of the file naming them (for `#[path]`,
                // in the crate-root and `mod.rs` files this workspace uses it in).
                let resolved = path.parent().unwrap_or(root).join(target);
                let inside = resolved
                    .canonicalize()
                    .is_ok_and(|real| real.starts_with(root.canonicalize().unwrap_or_default()));
                if !inside {
                    broken.push(format!(
                        "{} names {target}, which is not inside the package",
                        path.display()
                    ));
                }
            }
        }
    }
    broken
}

/// The workspace's own packages as `cargo metadata` describes them.
fn metadata() -> Result<serde_json::Value, String> {
    let out = Command::new(cargo_bin())
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("bad cargo metadata: {e}"))
}

/// The crates with Cargo features, and their optional features: each is checked alone on top
/// of `--no-default-features`, and so is the bare build.
const FEATURES: &[(&str, &[&str])] = &[
    (
        "evloop",
        &[
            "net",
            "process",
            "signal",
            "thread-pool",
            "process-pool",
            "hyper",
            "tokio-io",
            "tracing",
        ],
    ),
    ("evloop-reactor", &["net", "process", "signal", "tracing"]),
];

/// `cargo check` (the library only: tests and examples assume the defaults) of every feature
/// combination CI promises: none, then each alone. A warning fails the step too, since a
/// narrower build is where unused imports and dead code show up.
fn features() -> TaskResult {
    for (krate, features) in FEATURES {
        for feature in std::iter::once("").chain(features.iter().copied()) {
            let mut cmd = Command::new(cargo_bin());
            cmd.args(["check", "-p", krate, "--no-default-features"]);
            if !feature.is_empty() {
                cmd.args(["--features", feature]);
            }
            cmd.current_dir(root());
            println!("$ {}", describe(&cmd));
            let out = cmd
                .output()
                .map_err(|e| format!("cannot start {}: {e}", describe(&cmd)))?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() || stderr.contains("warning:") {
                eprintln!("{stderr}");
                return Err(format!("`{}` failed or warned", describe(&cmd)));
            }
        }
    }
    Ok(())
}

fn has_nextest() -> bool {
    Command::new(cargo_bin())
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn cargo(args: &[&str]) -> TaskResult {
    run(Command::new(cargo_bin()).args(args))
}

fn run(cmd: &mut Command) -> TaskResult {
    cmd.current_dir(root());
    println!("$ {}", describe(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {}: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` exited with {status}", describe(cmd)))
    }
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

fn cargo_bin() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}
