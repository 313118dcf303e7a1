//! `bptt bench` runs with small flags and prints every policy's row and
//! writes its figures; `bptt curve --plot` draws the paper's figure. What
//! the rows hold is tested in the binary (`app::bench::tests`).

use std::path::PathBuf;
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bptt-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn the_small_benchmark_runs_from_the_command_line() {
    // The command line: `bptt bench` with small flags, and `bptt curve --plot`.
    let dir = scratch("cli");
    let out = Command::new(env!("CARGO_BIN_EXE_bptt"))
        .args([
            "bench",
            "--len",
            "30",
            "--hidden",
            "8",
            "--input",
            "3",
            "--batch",
            "2",
            "--runs",
            "1",
            "--percents",
            "5,20",
            "--weighted",
            "msm",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for label in [
        "store-all",
        "sqrt",
        "interval:3",
        "hsm",
        "ism",
        "msm",
        "msm-w",
    ] {
        assert!(stdout.contains(label), "{label} missing: {stdout}");
    }
    assert!(dir.join("time-memory.svg").exists());
    let plot = dir.join("curve.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_bptt"))
        .args(["curve", "--len", "50", "--alpha", "3", "--plot"])
        .arg(&plot)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));
    std::fs::remove_dir_all(&dir).unwrap();
}
