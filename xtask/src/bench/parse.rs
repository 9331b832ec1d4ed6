//! Reading what the measuring programs print: the `key=value` lines of the `measure` example
//! and of the peers' scripts, and the totals of a callgrind output file. Pure functions, so the
//! table's inputs are tested without running anything.

use std::collections::HashMap;

/// The `key=value` fields of one line (`workload=tasks impl=evloop n=10000 ...`); tokens
/// without `=` are skipped. `None` for a comment (`# ...`) or a line with no field.
pub(crate) fn fields(line: &str) -> Option<HashMap<&str, &str>> {
    if line.trim_start().starts_with('#') {
        return None;
    }
    let map: HashMap<&str, &str> = line
        .split_whitespace()
        .filter_map(|token| token.split_once('='))
        .collect();
    (!map.is_empty()).then_some(map)
}

/// One figure from a peers-format line (`workload=<w> impl=<i> value=<v> unit=<u>`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PeerFigure {
    pub(crate) workload: String,
    pub(crate) imp: String,
    pub(crate) value: f64,
}

/// Every peers-format figure in `text`, in order; other lines are skipped.
pub(crate) fn peer_figures(text: &str) -> Vec<PeerFigure> {
    text.lines()
        .filter_map(fields)
        .filter_map(|f| {
            Some(PeerFigure {
                workload: f.get("workload")?.to_string(),
                imp: f.get("impl")?.to_string(),
                value: f.get("value")?.parse().ok()?,
            })
        })
        .collect()
}

/// The median of the values of (`workload`, `imp`) among `figures`.
pub(crate) fn median_of(figures: &[PeerFigure], workload: &str, imp: &str) -> Option<f64> {
    median(
        figures
            .iter()
            .filter(|f| f.workload == workload && f.imp == imp)
            .map(|f| f.value)
            .collect(),
    )
}

/// The median (the upper one of an even count), or `None` for no values.
pub(crate) fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// One run of the `measure` example.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Measured {
    pub(crate) n: u64,
    /// Median wall time per item.
    pub(crate) ns_per_item: f64,
    /// Median process CPU time per item over the same passes.
    pub(crate) cpu_ns_per_item: f64,
    pub(crate) peak_rss_kb: u64,
}

/// The result line of the `measure` example in its stdout.
pub(crate) fn measured(stdout: &str) -> Result<Measured, String> {
    let line = stdout
        .lines()
        .filter_map(fields)
        .find(|f| f.contains_key("ns_per_item"))
        .ok_or_else(|| format!("no result line in the output: {stdout:?}"))?;
    let get = |key: &str| {
        line.get(key)
            .ok_or_else(|| format!("the result line has no `{key}`"))
    };
    let number = |key: &str| -> Result<f64, String> {
        get(key)?
            .parse()
            .map_err(|_| format!("`{key}` is not a number"))
    };
    Ok(Measured {
        n: number("n")? as u64,
        ns_per_item: number("ns_per_item")?,
        cpu_ns_per_item: number("cpu_ns_per_item")?,
        peak_rss_kb: number("peak_rss_kb")? as u64,
    })
}

/// The instructions a callgrind output file counted: its `summary:` line (or `totals:`, which
/// older versions and part files write), the sum over every thread.
pub(crate) fn callgrind_total(out_file: &str) -> Result<u64, String> {
    out_file
        .lines()
        .find_map(|line| {
            line.strip_prefix("summary:")
                .or_else(|| line.strip_prefix("totals:"))
        })
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| "the callgrind output has no summary or totals line".to_string())?
        .parse()
        .map_err(|e| format!("bad callgrind total: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_reads_key_values_and_skips_comments() {
        let f = fields("workload=tasks impl=evloop n=10 junk").unwrap();
        assert_eq!(f["workload"], "tasks");
        assert_eq!(f["n"], "10");
        assert_eq!(f.len(), 3);
        assert!(fields("# workload=tasks").is_none());
        assert!(fields("| a | b |").is_none());
    }

    #[test]
    fn measured_parses_the_result_line_among_others() {
        let out = "warming up\nworkload=timers impl=smol n=100000 ns_per_item=1645.8 \
                   cpu_ns_per_item=990.5 passes=3 peak_rss_kb=26836\n";
        let m = measured(out).unwrap();
        assert_eq!(m.n, 100_000);
        assert_eq!(m.ns_per_item, 1645.8);
        assert_eq!(m.cpu_ns_per_item, 990.5);
        assert_eq!(m.peak_rss_kb, 26836);
    }

    #[test]
    fn measured_names_what_is_missing() {
        assert!(
            measured("nothing here")
                .unwrap_err()
                .contains("no result line")
        );
        let err = measured("workload=x n=1 ns_per_item=2 peak_rss_kb=3").unwrap_err();
        assert!(err.contains("cpu_ns_per_item"), "{err}");
        let err = measured("n=1 ns_per_item=fast cpu_ns_per_item=1 peak_rss_kb=3").unwrap_err();
        assert!(err.contains("not a number"), "{err}");
    }

    #[test]
    fn callgrind_total_reads_summary_or_totals() {
        let file = "version: 1\ncreator: callgrind-3.22.0\nevents: Ir\nfn=(1) main\n5 10\n\
                    summary: 5762519\n\n\ntotals: 5762519\n";
        assert_eq!(callgrind_total(file), Ok(5_762_519));
        assert_eq!(callgrind_total("events: Ir\ntotals: 42\n"), Ok(42));
        assert!(callgrind_total("events: Ir\n").is_err());
    }

    #[test]
    fn peer_figures_and_their_median() {
        let text = "# pass 1\nworkload=tcp_echo impl=evloop value=130000 unit=requests_per_s\n\
                    workload=tcp_echo impl=tokio value=110000 unit=requests_per_s\n\
                    workload=tcp_echo impl=evloop value=120000 unit=requests_per_s\n\
                    workload=tcp_echo impl=evloop value=150000 unit=requests_per_s\n\
                    | table | row |\n";
        let figures = peer_figures(text);
        assert_eq!(figures.len(), 4);
        assert_eq!(median_of(&figures, "tcp_echo", "evloop"), Some(130_000.0));
        assert_eq!(median_of(&figures, "tcp_echo", "tokio"), Some(110_000.0));
        assert_eq!(median_of(&figures, "tcp_echo", "uvloop"), None);
    }
}
