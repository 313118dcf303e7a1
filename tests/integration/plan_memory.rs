//! `bptt plan` with budgets in bytes, the inverse query, and the method and
//! gap it reports.

use std::process::{Command, Output};

/// Runs `bptt plan ARGS`.
fn plan(args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_bptt");
    Command::new(bin)
        .arg("plan")
        .args(args)
        .output()
        .expect("bptt runs")
}

/// `bptt plan ARGS --json`, parsed.
fn json(args: &[&str]) -> serde_json::Value {
    let out = plan(&[args, &["--json"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {err}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `bptt plan ARGS` fails with one line containing `expected`.
fn one_line_error(args: &[&str], expected: &str) {
    let out = plan(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains(expected), "{args:?}: {err}");
}

#[test]
fn long_plans_report_their_method_and_gap() {
    let v = json(&["--len", "1000000", "--budget", "1%"]);
    assert_eq!(v["method"], "closed-form");
    assert_eq!(v["gap"], 0);
    assert_eq!(v["forward_steps"], v["lower_bound"]);
    assert_eq!(v["verified"], true);
    let v = json(&["--len", "1000", "--budget", "200"]);
    assert_eq!(v["method"], "table");
    assert_eq!(v["forward_steps"], 1949);
    let v = json(&["--len", "200000", "--budget", "400"]);
    assert_eq!(v["method"], "certified");
    assert!(v["gap"].as_u64().unwrap() > 0);
}

#[test]
fn a_byte_budget_holds_the_whole_step() {
    let v = json(&[
        "--len", "100000", "--memory", "256MiB", "--hidden", "128", "--batch", "8",
    ]);
    let bytes = &v["bytes"];
    let total = bytes["total_bytes"].as_u64().unwrap();
    assert!(total <= 256 << 20, "{total}");
    assert!(
        total > 250 << 20,
        "{total}: the budget should be nearly used"
    );
    assert_eq!(bytes["memory_bytes"], 256u64 << 20);
    // The LSTM's tape over its state.
    assert_eq!(v["alpha"], 3.0);
    let v = json(&[
        "--len",
        "1000",
        "--memory",
        "1MB",
        "--state-bytes",
        "1000",
        "--tape-bytes",
        "4000",
        "--working-bytes",
        "9000",
    ]);
    assert_eq!(v["budget"], 991.0);
    one_line_error(
        &[
            "--len", "1000", "--memory", "1k", "--hidden", "128", "--batch", "8",
        ],
        "smaller than the working set of 65536 bytes",
    );
    one_line_error(&["--len", "1000", "--memory", "1M"], "needs the sizes");
    one_line_error(
        &[
            "--len", "1000", "--memory", "lots", "--hidden", "4", "--batch", "1",
        ],
        "cannot read the size",
    );
}

#[test]
fn the_least_memory_for_a_slowdown() {
    // MSM at T = 1000, alpha 4: 5% of store-all (200 units) costs 1949 steps,
    // a slowdown of (1949 + 2000) / 3000 = 1.316.
    let v = json(&["--len", "1000", "--max-slowdown", "1.3164"]);
    assert!(v["slowdown"].as_f64().unwrap() <= 1.3164);
    let least = v["budget"].as_f64().unwrap();
    assert!(least <= 200.0, "{least}");
    // One unit less does worse than asked.
    let less = format!("{}", least - 1.0);
    let w = json(&["--len", "1000", "--budget", &less]);
    assert!(w["slowdown"].as_f64().unwrap() > 1.3164);
    // At a million steps, from the closed forms.
    let v = json(&["--len", "1000000", "--max-slowdown", "1.3"]);
    assert_eq!(v["method"], "closed-form");
    assert!(v["slowdown"].as_f64().unwrap() <= 1.3);
    one_line_error(
        &["--len", "1000", "--max-slowdown", "0.9"],
        "at best 1.0000",
    );
}
