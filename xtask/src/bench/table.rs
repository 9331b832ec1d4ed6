//! The one table of `cargo xtask bench --table`: the figures of one run turned into rows (each
//! workload at each size, evloop beside tokio and smol, ratios, instruction counts) and issue
//! 12's targets judged met or not. Pure: [`Results`] in, Markdown out, so the arithmetic and the
//! verdicts are unit-tested without running a benchmark.

use std::collections::HashMap;

use super::parse::Measured;

/// The runtimes of the columns, in order.
pub(crate) const IMPLS: [&str; 3] = ["evloop", "tokio", "smol"];
/// The eventfd ping-pong between two plain threads: the round trip's floor.
pub(crate) const FLOOR: &str = "eventfd-floor";

/// The sizes of the scaling workloads (callbacks, timers, tasks).
pub(crate) const SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];

/// Everything one run measured. Keys are (workload, n, impl); a missing key is a figure that
/// was not measured (a failure is listed in `failures`).
#[derive(Debug, Default)]
pub(crate) struct Results {
    pub(crate) native: HashMap<(String, u64, String), Measured>,
    /// Instructions per item (callgrind, the measured region only).
    pub(crate) ir: HashMap<(String, u64, String), f64>,
    /// The TCP echo figures: median requests/s and server µs CPU per request, and instructions
    /// per request, by impl (`evloop`, `tokio`).
    pub(crate) echo_rps: HashMap<String, f64>,
    pub(crate) echo_cpu_us: HashMap<String, f64>,
    pub(crate) echo_ir: HashMap<String, f64>,
    /// The sizes the threadsafe and queue workloads ran at, natively and under callgrind.
    pub(crate) threadsafe_n: (u64, u64),
    pub(crate) queue_n: (u64, u64),
}

/// Whether a target is met: `None` when a figure it needs is missing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    pub(crate) text: String,
    pub(crate) met: Option<bool>,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) workload: String,
    pub(crate) n: String,
    pub(crate) figure: &'static str,
    pub(crate) values: [Option<f64>; 3],
    pub(crate) ir: [Option<f64>; 3],
    pub(crate) target: Option<Verdict>,
}

/// `a / b` when both are there and `b` is not zero.
pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// `value <= factor * bound`, or `None` when either is missing.
pub(crate) fn within(value: Option<f64>, factor: f64, bound: Option<f64>) -> Option<bool> {
    Some(value? <= factor * bound?)
}

/// Both parts of a two-part target: not met if either is not, unknown if either is unknown.
fn both(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// How much the per-timer CPU cost grows from the smallest size to any larger one (the largest
/// ratio to the cost at 10^4): the flatness the timers target bounds by 1.3.
pub(crate) fn growth(costs: &[Option<f64>]) -> Option<f64> {
    let first = (*costs.first()?)?;
    costs[1..]
        .iter()
        .map(|c| ratio(*c, Some(first)))
        .collect::<Option<Vec<f64>>>()?
        .into_iter()
        .reduce(f64::max)
}

/// `10^4` for 10,000 and so on; other sizes with thousands separators.
pub(crate) fn size_label(n: u64) -> String {
    match n {
        10_000 => "10^4".into(),
        100_000 => "10^5".into(),
        1_000_000 => "10^6".into(),
        _ => number(n as f64),
    }
}

/// A figure as a reader wants it: whole numbers with separators from 100 up, otherwise three
/// significant digits.
pub(crate) fn number(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if v.abs() >= 100.0 {
        let digits = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 { format!("-{out}") } else { out }
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), number)
}

fn ratio_cell(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |r| format!("{r:.2}x"))
}

impl Results {
    fn native_of(&self, workload: &str, n: u64, imp: &str) -> Option<&Measured> {
        self.native.get(&(workload.to_string(), n, imp.to_string()))
    }

    fn wall(&self, workload: &str, n: u64) -> [Option<f64>; 3] {
        IMPLS.map(|imp| self.native_of(workload, n, imp).map(|m| m.ns_per_item))
    }

    fn cpu(&self, workload: &str, n: u64) -> [Option<f64>; 3] {
        IMPLS.map(|imp| self.native_of(workload, n, imp).map(|m| m.cpu_ns_per_item))
    }

    fn rss_mb(&self, workload: &str, n: u64) -> [Option<f64>; 3] {
        IMPLS.map(|imp| {
            self.native_of(workload, n, imp)
                .map(|m| m.peak_rss_kb as f64 / 1024.0)
        })
    }

    fn ir_of(&self, workload: &str, n: u64) -> [Option<f64>; 3] {
        IMPLS.map(|imp| {
            self.ir
                .get(&(workload.to_string(), n, imp.to_string()))
                .copied()
        })
    }

    /// Every row of the table, in reading order.
    pub(crate) fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let row = |workload: &str, n: String, figure, values, ir, target| Row {
            workload: workload.to_string(),
            n,
            figure,
            values,
            ir,
            target,
        };
        let none = [None; 3];
        let largest = *SIZES.last().expect("sizes");

        for n in SIZES {
            let wall = self.wall("callbacks", n);
            let target = (n == largest).then(|| Verdict {
                text: "call_soon ≤ 30 ns".into(),
                met: within(wall[0], 1.0, Some(30.0)),
            });
            rows.push(row(
                "callbacks",
                size_label(n),
                "wall ns/callback",
                wall,
                self.ir_of("callbacks", n),
                target,
            ));
        }

        let evloop_cpu: Vec<Option<f64>> =
            SIZES.iter().map(|&n| self.cpu("timers", n)[0]).collect();
        let timer_growth = growth(&evloop_cpu);
        for n in SIZES {
            let wall = self.wall("timers", n);
            let target = (n == largest).then(|| Verdict {
                text: "ahead of smol at 10^6 (wall)".into(),
                met: wall[0].zip(wall[2]).map(|(e, s)| e < s),
            });
            rows.push(row(
                "timers",
                size_label(n),
                "wall ns/timer",
                wall,
                self.ir_of("timers", n),
                target,
            ));
            let target = (n == largest).then(|| Verdict {
                text: format!(
                    "CPU/timer flat within 1.3x from 10^4 (grew {})",
                    ratio_cell(timer_growth)
                ),
                met: timer_growth.map(|g| g <= 1.3),
            });
            rows.push(row(
                "timers",
                size_label(n),
                "CPU ns/timer",
                self.cpu("timers", n),
                none,
                target,
            ));
        }

        for n in SIZES {
            let wall = self.wall("tasks", n);
            rows.push(row(
                "tasks",
                size_label(n),
                "wall ns/task",
                wall,
                self.ir_of("tasks", n),
                Some(Verdict {
                    text: "≤ smol".into(),
                    met: within(wall[0], 1.0, wall[2]),
                }),
            ));
            let rss = self.rss_mb("tasks", n);
            rows.push(row(
                "tasks",
                size_label(n),
                "peak RSS MB",
                rss,
                none,
                Some(Verdict {
                    text: "≤ smol".into(),
                    met: within(rss[0], 1.0, rss[2]),
                }),
            ));
        }

        let (ts_n, ts_ir_n) = self.threadsafe_n;
        let wall_us = self
            .wall("threadsafe", ts_n)
            .map(|v| v.map(|ns| ns / 1000.0));
        let floor_us = self
            .native_of("threadsafe", ts_n, FLOOR)
            .map(|m| m.ns_per_item / 1000.0);
        rows.push(row(
            "threadsafe (pinned)",
            format!("{} trips", number(ts_n as f64)),
            "µs/round trip",
            wall_us,
            self.ir_of("threadsafe", ts_ir_n),
            Some(Verdict {
                text: format!(
                    "≤ tokio and ≤ 1.5x eventfd floor ({} µs, {} Ir)",
                    cell(floor_us),
                    cell(
                        self.ir
                            .get(&("threadsafe".into(), ts_ir_n, FLOOR.into()))
                            .copied()
                    )
                ),
                met: both(
                    within(wall_us[0], 1.0, wall_us[1]),
                    within(wall_us[0], 1.5, floor_us),
                ),
            }),
        ));

        let (q_n, q_ir_n) = self.queue_n;
        rows.push(row(
            "queue (capacity 128)",
            size_label(q_n),
            "ns/item",
            self.wall("queue", q_n),
            self.ir_of("queue", q_ir_n),
            None,
        ));

        let echo = |map: &HashMap<String, f64>| {
            [map.get("evloop").copied(), map.get("tokio").copied(), None]
        };
        let rps = echo(&self.echo_rps);
        let cpu = echo(&self.echo_cpu_us);
        rows.push(row(
            "tcp echo",
            "50 conns".into(),
            "requests/s",
            rps,
            echo(&self.echo_ir),
            Some(Verdict {
                text: "≥ tokio".into(),
                met: rps[0].zip(rps[1]).map(|(e, t)| e >= t),
            }),
        ));
        rows.push(row(
            "tcp echo",
            "50 conns".into(),
            "server µs CPU/request",
            cpu,
            none,
            Some(Verdict {
                text: "≤ 0.85x tokio".into(),
                met: within(cpu[0], 0.85, cpu[1]),
            }),
        ));
        rows
    }
}

/// The table's header line and separator.
pub(crate) fn header() -> String {
    "| workload | n | figure | evloop | tokio | smol | evloop/tokio | evloop/smol \
     | Ir/item evloop | Ir tokio | Ir smol | Ir evloop/tokio | Ir evloop/smol | target | met |\n\
     |---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|"
        .to_string()
}

/// One row as a Markdown table line.
pub(crate) fn render(row: &Row) -> String {
    let [e, t, s] = row.values;
    let [ie, it, is] = row.ir;
    let (target, met) = match &row.target {
        None => (String::new(), String::new()),
        Some(v) => (
            v.text.clone(),
            match v.met {
                Some(true) => "met".into(),
                Some(false) => "**not met**".into(),
                None => "— (not measured)".into(),
            },
        ),
    };
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        row.workload,
        row.n,
        row.figure,
        cell(e),
        cell(t),
        cell(s),
        ratio_cell(ratio(e, t)),
        ratio_cell(ratio(e, s)),
        cell(ie),
        cell(it),
        cell(is),
        ratio_cell(ratio(ie, it)),
        ratio_cell(ratio(ie, is)),
        target,
        met
    )
}

/// The whole table.
pub(crate) fn markdown(results: &Results) -> String {
    let mut out = header();
    for row in results.rows() {
        out.push('\n');
        out.push_str(&render(&row));
    }
    out
}

/// The `--instructions` view: instructions per item for every (workload, n) measured, evloop
/// beside tokio and smol, with the ratios.
pub(crate) fn instructions_markdown(results: &Results) -> String {
    let mut keys: Vec<(String, u64)> = results
        .ir
        .keys()
        .map(|(workload, n, _)| (workload.clone(), *n))
        .collect();
    keys.sort();
    keys.dedup();
    let mut out = "| workload | n | evloop Ir/item | tokio | smol | evloop/tokio | evloop/smol | eventfd floor |\n\
                   |---|---|--:|--:|--:|--:|--:|--:|"
        .to_string();
    for (workload, n) in keys {
        let [e, t, s] = results.ir_of(&workload, n);
        let floor = results
            .ir
            .get(&(workload.clone(), n, FLOOR.into()))
            .copied();
        out.push_str(&format!(
            "\n| {workload} | {} | {} | {} | {} | {} | {} | {} |",
            size_label(n),
            cell(e),
            cell(t),
            cell(s),
            ratio_cell(ratio(e, t)),
            ratio_cell(ratio(e, s)),
            cell(floor)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ns: f64, cpu: f64, rss_kb: u64) -> Measured {
        Measured {
            n: 0,
            ns_per_item: ns,
            cpu_ns_per_item: cpu,
            peak_rss_kb: rss_kb,
        }
    }

    fn put(r: &mut Results, workload: &str, n: u64, imp: &str, measured: Measured) {
        r.native.insert((workload.into(), n, imp.into()), measured);
    }

    fn find<'a>(rows: &'a [Row], workload: &str, n: &str, figure: &str) -> &'a Row {
        rows.iter()
            .find(|r| r.workload == workload && r.n == n && r.figure == figure)
            .unwrap_or_else(|| panic!("no row {workload} {n} {figure}"))
    }

    #[test]
    fn ratio_and_within_handle_missing_figures() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(within(Some(8.5), 0.85, Some(10.0)), Some(true));
        assert_eq!(within(Some(8.6), 0.85, Some(10.0)), Some(false));
        assert_eq!(within(Some(1.0), 1.0, None), None);
    }

    #[test]
    fn growth_is_the_largest_rise_over_the_first_size() {
        assert_eq!(growth(&[Some(100.0), Some(120.0), Some(110.0)]), Some(1.2));
        assert_eq!(growth(&[Some(100.0), Some(90.0), Some(80.0)]), Some(0.9));
        assert_eq!(growth(&[Some(100.0), None, Some(80.0)]), None);
        assert_eq!(growth(&[None, Some(1.0)]), None);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(1_234_567.4), "1,234,567");
        assert_eq!(number(123.6), "124");
        assert_eq!(number(48.25), "48.2");
        assert_eq!(number(7.456), "7.46");
        assert_eq!(number(f64::NAN), "—");
        assert_eq!(size_label(100_000), "10^5");
        assert_eq!(size_label(20_000), "20,000");
    }

    #[test]
    fn the_targets_are_judged_from_the_figures() {
        let mut r = Results {
            threadsafe_n: (20_000, 2_000),
            queue_n: (100_000, 100_000),
            ..Results::default()
        };
        // call_soon: 28 ns at 10^6 meets the 30 ns target.
        put(&mut r, "callbacks", 1_000_000, "evloop", m(28.0, 28.0, 1));
        // timers: CPU per timer grows 1.5x from 10^4 to 10^6 (not flat), wall ahead of smol.
        for (n, cpu) in [(10_000, 800.0), (100_000, 900.0), (1_000_000, 1200.0)] {
            put(&mut r, "timers", n, "evloop", m(1000.0, cpu, 1));
            put(&mut r, "timers", n, "smol", m(1100.0, cpu, 1));
        }
        // tasks: faster than smol at every size, but more memory at 10^6.
        for n in SIZES {
            put(&mut r, "tasks", n, "evloop", m(200.0, 200.0, 10_000));
            let smol_rss = if n == 1_000_000 { 9_000 } else { 20_000 };
            put(&mut r, "tasks", n, "smol", m(250.0, 250.0, smol_rss));
        }
        // threadsafe: under tokio, but 1.6x the floor.
        put(&mut r, "threadsafe", 20_000, "evloop", m(16_000.0, 0.0, 1));
        put(&mut r, "threadsafe", 20_000, "tokio", m(17_000.0, 0.0, 1));
        put(&mut r, "threadsafe", 20_000, FLOOR, m(10_000.0, 0.0, 1));
        r.ir.insert(("threadsafe".into(), 2_000, "evloop".into()), 4000.0);
        r.ir.insert(("threadsafe".into(), 2_000, "tokio".into()), 5000.0);
        // echo: more requests/s than tokio, 0.8x its CPU per request.
        r.echo_rps
            .extend([("evloop".into(), 130_000.0), ("tokio".into(), 114_000.0)]);
        r.echo_cpu_us
            .extend([("evloop".into(), 4.0), ("tokio".into(), 5.0)]);

        let rows = r.rows();
        let met = |w: &str, n: &str, f: &str| find(&rows, w, n, f).target.as_ref().unwrap().met;
        assert_eq!(met("callbacks", "10^6", "wall ns/callback"), Some(true));
        assert!(
            find(&rows, "callbacks", "10^4", "wall ns/callback")
                .target
                .is_none()
        );
        assert_eq!(met("timers", "10^6", "wall ns/timer"), Some(true));
        assert_eq!(met("timers", "10^6", "CPU ns/timer"), Some(false));
        let flat = find(&rows, "timers", "10^6", "CPU ns/timer")
            .target
            .as_ref()
            .unwrap();
        assert!(flat.text.contains("1.50x"), "{}", flat.text);
        assert_eq!(met("tasks", "10^5", "wall ns/task"), Some(true));
        assert_eq!(met("tasks", "10^5", "peak RSS MB"), Some(true));
        assert_eq!(met("tasks", "10^6", "peak RSS MB"), Some(false));
        assert_eq!(
            met("threadsafe (pinned)", "20,000 trips", "µs/round trip"),
            Some(false)
        );
        assert_eq!(met("tcp echo", "50 conns", "requests/s"), Some(true));
        assert_eq!(
            met("tcp echo", "50 conns", "server µs CPU/request"),
            Some(true)
        );
        // Nothing measured for the queue: a row with no target and empty cells.
        let queue = find(&rows, "queue (capacity 128)", "10^5", "ns/item");
        assert_eq!(queue.values, [None; 3]);

        let ts = find(
            &rows,
            "threadsafe (pinned)",
            "20,000 trips",
            "µs/round trip",
        );
        assert_eq!(ts.values[0], Some(16.0));
        let line = render(ts);
        assert!(line.contains("| 16.0 | 17.0 | — | 0.94x | — |"), "{line}");
        assert!(line.contains("| 4,000 | 5,000 | — | 0.80x | — |"), "{line}");
        assert!(line.ends_with("**not met** |"), "{line}");
    }

    #[test]
    fn the_instructions_view_lists_each_workload_and_size_once() {
        let mut r = Results::default();
        for (imp, ir) in [("evloop", 500.0), ("tokio", 2000.0), ("smol", 1000.0)] {
            r.ir.insert(("callbacks".into(), 10_000, imp.into()), ir);
        }
        r.ir.insert(("threadsafe".into(), 2_000, "evloop".into()), 4_000.0);
        r.ir.insert(("threadsafe".into(), 2_000, FLOOR.into()), 1_000.0);
        let table = instructions_markdown(&r);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert_eq!(
            lines[2],
            "| callbacks | 10^4 | 500 | 2,000 | 1,000 | 0.25x | 0.50x | — |"
        );
        assert_eq!(
            lines[3],
            "| threadsafe | 2,000 | 4,000 | — | — | — | — | 1,000 |"
        );
    }

    #[test]
    fn a_target_with_a_missing_figure_says_so() {
        let rows = Results::default().rows();
        let line = render(find(&rows, "tasks", "10^4", "wall ns/task"));
        assert!(line.ends_with("| ≤ smol | — (not measured) |"), "{line}");
        let table = markdown(&Results::default());
        let columns = header().lines().next().unwrap().matches('|').count();
        for line in table.lines() {
            assert_eq!(line.matches('|').count(), columns, "{line}");
        }
    }
}
