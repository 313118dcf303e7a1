//! The command line: outputs and one-line errors with a non-zero exit.

use std::process::Command;

fn bptt(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bptt"))
        .args(args)
        .output()
        .expect("bptt runs");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn fails_with(args: &[&str], expected: &str) {
    let (ok, _, err) = bptt(args);
    assert!(!ok, "{args:?} succeeded");
    // One line of our own, or clap's one `error:` line with its usage.
    let errors = err.lines().filter(|l| l.starts_with("error")).count();
    assert_eq!(errors, 1, "not one error line: {err}");
    if !err.contains("For more information, try '--help'") {
        assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    }
    assert!(err.contains(expected), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn plan_json_reports_the_planning_model() {
    let (ok, out, _) = bptt(&[
        "plan", "--len", "1000", "--budget", "200", "--alpha", "4", "--policy", "msm", "--json",
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["policy"], "msm");
    assert_eq!(v["len"], 1000);
    assert_eq!(v["budget"], 200.0);
    assert_eq!(v["alpha"], 4.0);
    assert_eq!(v["forward_steps"], 1949);
    assert_eq!(v["backward_steps"], 1000);
    assert!(v["peak_units"].as_f64().unwrap() <= 200.0);
    assert_eq!(v["cost_per_step"], 1.949);
    assert_eq!(v["verified"], true);
}

#[test]
fn plan_takes_a_percentage_of_store_all() {
    let (ok, out, _) = bptt(&[
        "plan", "--len", "1000", "--budget", "5%", "--policy", "hsm", "--json",
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["budget"], 199.0);
}

#[test]
fn schedule_prints_one_op_per_line() {
    let (ok, out, _) = bptt(&["schedule", "--len", "5", "--budget", "2", "--alpha", "1"]);
    assert!(ok);
    let ops: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(ops[0], "restore   h[0] <- h0");
    assert_eq!(ops.iter().filter(|l| l.starts_with("backward")).count(), 5);
}

#[test]
fn curve_covers_every_policy() {
    let (ok, out, _) = bptt(&["curve", "--len", "100", "--alpha", "2"]);
    assert!(ok);
    assert!(out.contains("msm") && out.contains("store-all") && out.contains("sqrt"));
    let (ok, csv, _) = bptt(&["curve", "--len", "50", "--alpha", "2", "--csv"]);
    assert!(ok);
    assert!(csv.starts_with("policy,budget_units,budget_percent,cost_per_step"));
    assert!(csv.lines().any(|l| l.starts_with("msm,98,")));
}

#[test]
fn bad_input_gets_one_clear_line() {
    fails_with(&["plan", "--len", "0", "--budget", "5"], "at least 1");
    fails_with(
        &["plan", "--len", "100", "--budget", "5", "--alpha", "0.5"],
        "alpha must be",
    );
    fails_with(
        &[
            "plan", "--len", "100", "--budget", "5", "--policy", "revolve",
        ],
        "unknown policy",
    );
    fails_with(
        &["plan", "--len", "100", "--budget", "lots"],
        "cannot read the budget",
    );
    fails_with(
        &["plan", "--len", "100", "--budget", "-3"],
        "cannot read the budget",
    );
    fails_with(
        &[
            "plan",
            "--len",
            "100",
            "--budget",
            "10",
            "--policy",
            "store-all",
        ],
        "smallest that works is 396",
    );
    fails_with(&["plan", "--len", "x"], "invalid value");
    fails_with(&["curve", "--len", "0"], "at least 1");
}

#[test]
fn emit_clif_shows_a_cell_files_derived_kernels() {
    let (ok, out, err) = bptt(&[
        "emit",
        "clif",
        "--cell",
        "cells/mgu.cell",
        "--input",
        "3",
        "--hidden",
        "4",
    ]);
    assert!(ok, "{err}");
    for kernel in ["forward", "forward_tape", "state_from_tape", "backward"] {
        assert!(
            out.contains(&format!("function %{kernel}(")),
            "{kernel} missing:\n{out}"
        );
    }
    assert!(out.contains("f32x4"), "the loops are vectorised");
    assert!(
        out.contains("%bptt_cell_gemm_nn"),
        "products call the runtime"
    );
}

#[test]
fn emit_rust_shows_what_the_cell_macro_generates() {
    let (ok, out, err) = bptt(&[
        "emit",
        "rust",
        "--cell",
        "cells/peephole_lstm.cell",
        "--hidden",
        "4",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("pub struct PeepholeLstm"), "{out}");
    assert!(out.contains("impl __bptt::Cell for PeepholeLstm"), "{out}");
    for method in ["forward", "forward_tape", "state_from_tape", "backward"] {
        assert!(out.contains(&format!("fn {method}(")), "{method} missing");
    }
    assert!(
        out.contains("__bptt::gemm_tn_acc(") && out.contains("packed.matrix("),
        "the backward products call the runtime, dh through a packed transpose"
    );
}

/// The output of `bptt train --cell FILE SIZES..` for three short steps,
/// its checkpoint in a temporary directory.
fn train_cell(file: &str, sizes: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("cell.ckpt").display().to_string();
    let mut args = vec!["train", "--cell", file];
    args.extend_from_slice(sizes);
    args.extend([
        "--len",
        "40",
        "--batch",
        "2",
        "--steps",
        "3",
        "--eval-every",
        "3",
        "--sample",
        "10",
        "--quiet",
        "--checkpoint",
        &checkpoint,
    ]);
    let (ok, out, err) = bptt(&args);
    assert!(ok, "{err}");
    out
}

#[test]
fn train_takes_a_cell_file() {
    let out = train_cell("cells/mgu.cell", &["--hidden", "8"]);
    assert!(
        out.contains("cell cells/mgu.cell (derived, alpha 3)"),
        "{out}"
    );
}

/// A matrix-memory cell trains from its file with its sizes given by
/// `--size`, and the run names the sizes bound (the task's input, `key`
/// and `value`), not `--hidden`, which it has no use for.
#[test]
fn train_takes_a_matrix_memory_cell_with_its_sizes() {
    let sizes = ["--size", "key=4", "--size", "value=6"];
    let out = train_cell("cells/linear_attention.cell", &sizes);
    assert!(out.contains(", key = 4, value = 6, T = 40"), "{out}");
    assert!(!out.contains("hidden"), "{out}");
}

#[test]
fn bad_cells_get_one_clear_line() {
    fails_with(
        &["emit", "clif", "--cell", "no/such.cell"],
        "cannot read the cell file no/such.cell",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("depth.cell");
    let src = "cell deep {\n size input, hidden, depth;\n input x: [input];\n state h: [hidden + depth];\n h = h;\n}\n";
    std::fs::write(&path, src).unwrap();
    fails_with(
        &[
            "train",
            "--cell",
            &path.display().to_string(),
            "--task",
            "adding",
            "--steps",
            "1",
        ],
        "size `depth` has no value: give it with `--size depth=N`",
    );
    let (ok, out, err) = bptt(&[
        "emit",
        "clif",
        "--cell",
        &path.display().to_string(),
        "--size",
        "depth=2",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("state 18"), "hidden 16 + depth 2: {out}");
    fails_with(
        &[
            "emit",
            "clif",
            "--cell",
            &path.display().to_string(),
            "--size",
            "depth",
        ],
        "expected NAME=N",
    );
}

#[test]
fn train_takes_a_budget_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("memory.ckpt").display().to_string();
    let args = |memory: &'static str| {
        [
            "train",
            "--task",
            "adding",
            "--len",
            "3000",
            "--batch",
            "2",
            "--hidden",
            "16",
            "--steps",
            "1",
            "--quiet",
            "--memory",
            memory,
            "--checkpoint",
        ]
    };
    let mut ok_args = args("2MB").to_vec();
    ok_args.push(&ckpt);
    let (ok, out, err) = bptt(&ok_args);
    assert!(ok, "{err}");
    assert!(
        out.contains("memory: this run holds") && out.contains("(--memory 2.0 MB)"),
        "{out}"
    );
    assert!(out.contains("peak heap of the process"), "{out}");
    let mut small = args("100kB").to_vec();
    small.push(&ckpt);
    fails_with(&small, "--memory 100.0 kB is less than the");
    fails_with(
        &["train", "--memory", "1GB", "--budget", "5%"],
        "cannot be used with",
    );
}
