//! Shared by the benches: after criterion has run, print each operation next to its
//! baseline (both measured in this run) with the ratio, reading criterion's estimates.

// Each bench includes this file and uses only what it needs.
#![allow(dead_code)]

use std::path::PathBuf;

/// Which of criterion's estimates a row compares.
#[derive(Debug, Clone, Copy)]
pub enum Stat {
    /// The mean time per iteration: what a long run costs, rare slow events included.
    Mean,
    /// The median: the typical iteration, for short runs where one rare event (a
    /// checkpoint of the database's log) would otherwise decide the figure.
    Median,
}

impl Stat {
    fn key(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::Median => "median",
        }
    }
}

/// Time per iteration in nanoseconds of a criterion benchmark id (`group/name`).
pub fn estimate_ns(id: &str, stat: Stat) -> Option<f64> {
    let dir: PathBuf = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("criterion")
        .join(id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(dir).ok()?;
    // Parsing a benchmark report: timing statistics are floats by nature (not money).
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get(stat.key())?.get("point_estimate")?.as_f64()
}

/// Mean time per iteration in nanoseconds of a criterion benchmark id (`group/name`).
pub fn mean_ns(id: &str) -> Option<f64> {
    estimate_ns(id, Stat::Mean)
}

fn human(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Prints `operation | time | baseline | ratio | target` rows for (operation, baseline,
/// target ratio) ids, comparing means, and returns false if a target is missed.
pub fn print_ratios(rows: &[(&str, &str, f64)]) -> bool {
    let rows: Vec<_> = rows
        .iter()
        .map(|&(a, b, t)| (a, b, t, Stat::Mean))
        .collect();
    print_ratios_by(&rows)
}

/// [`print_ratios`] with the statistic chosen per row; a median row is marked `(median)`.
pub fn print_ratios_by(rows: &[(&str, &str, f64, Stat)]) -> bool {
    print_header();
    let mut ok = true;
    for &(op, base, target, stat) in rows {
        ok &= print_row(op, base, Some(target), stat);
    }
    ok
}

/// Prints rows with no target: an operation next to its baseline, for a cost that is
/// reported (e.g. a network call against the offline floor) rather than held to a bound.
pub fn print_comparisons(rows: &[(&str, &str, Stat)]) {
    print_header();
    for &(op, base, stat) in rows {
        print_row(op, base, None, stat);
    }
}

fn print_header() {
    println!(
        "\n{:<44} {:>12} {:>12} {:>8} {:>8}",
        "operation", "time/op", "baseline", "ratio", "target"
    );
}

/// One row; false if its target is missed.
fn print_row(op: &str, base: &str, target: Option<f64>, stat: Stat) -> bool {
    let (Some(a), Some(b)) = (estimate_ns(op, stat), estimate_ns(base, stat)) else {
        println!("{op:<44} (not measured in this run)");
        return true;
    };
    if b <= 0.0 {
        println!("{op:<44} (no baseline in this run)");
        return true;
    }
    let ratio = a / b;
    let missed = target.is_some_and(|t| ratio > t);
    let (target, mark) = match target {
        Some(t) => (format!("{t:>7.2}x"), if missed { " MISSED" } else { " ok" }),
        None => (format!("{:>8}", "-"), ""),
    };
    let note = match stat {
        Stat::Mean => "",
        Stat::Median => " (median)",
    };
    println!(
        "{op:<44} {:>12} {:>12} {ratio:>7.2}x {target}{mark}{note}",
        human(a),
        human(b),
    );
    !missed
}
