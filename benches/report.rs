//! Shared by the benches: after criterion has run, print each operation next to its
//! baseline (both measured in this run) with the ratio, reading criterion's estimates.

use std::path::PathBuf;

/// Mean time per iteration in nanoseconds of a criterion benchmark id (`group/name`).
pub fn mean_ns(id: &str) -> Option<f64> {
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
    v.get("mean")?.get("point_estimate")?.as_f64()
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
/// target ratio) ids, and returns false if a target is missed.
pub fn print_ratios(rows: &[(&str, &str, f64)]) -> bool {
    let mut ok = true;
    println!(
        "\n{:<44} {:>12} {:>12} {:>8} {:>8}",
        "operation", "time/op", "baseline", "ratio", "target"
    );
    for (op, base, target) in rows {
        match (mean_ns(op), mean_ns(base)) {
            (Some(a), Some(b)) if b > 0.0 => {
                let ratio = a / b;
                let mark = if ratio <= *target { "ok" } else { "MISSED" };
                if ratio > *target {
                    ok = false;
                }
                println!(
                    "{op:<44} {:>12} {:>12} {ratio:>7.2}x {:>7.2}x {mark}",
                    human(a),
                    human(b),
                    target
                );
            }
            _ => println!("{op:<44} (not measured in this run)"),
        }
    }
    ok
}
