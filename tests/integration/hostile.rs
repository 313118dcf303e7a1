//! Hostile command lines: each is refused with a non-zero exit and one line
//! of error (clap's own errors add their usage after the one `error:` line),
//! never a panic, and quickly: every check runs before any work.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bptt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bptt"))
}

/// Files the table refers to, in a temporary folder.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let line = "the cat sat on the mat. the dog sat on the log.\n";
        std::fs::write(dir.path().join("text.txt"), line.repeat(200)).unwrap();
        std::fs::write(dir.path().join("latin1.txt"), b"caf\xe9 ".repeat(500)).unwrap();
        std::fs::write(dir.path().join("empty.txt"), "").unwrap();
        let mgu = concat!(env!("CARGO_MANIFEST_DIR"), "/cells/mgu.cell");
        std::fs::copy(mgu, dir.path().join("my.cell")).unwrap();
        std::fs::write(dir.path().join("garbage.ckpt"), "not a checkpoint").unwrap();
        std::fs::write(dir.path().join("file"), "a file, not a folder").unwrap();
        std::fs::create_dir(dir.path().join("folder")).unwrap();
        let deep = format!(
            "cell d {{ size input, hidden; input x: [input]; state h: [hidden]; h = {}x{}; }}",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        std::fs::write(dir.path().join("deep.cell"), deep).unwrap();
        let digits = format!(
            "cell d {{ size input, hidden; input x: [input]; state h: [hidden]; h = x * {}.0; }}",
            "9".repeat(100_000)
        );
        std::fs::write(dir.path().join("digits.cell"), digits).unwrap();
        std::fs::write(dir.path().join("huge.cell"), "x".repeat(2 << 20)).unwrap();
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `@NAME` in an argument becomes the path of that file.
    fn arg(&self, a: &str) -> String {
        match a.strip_prefix('@') {
            Some(name) => self.path(name).display().to_string(),
            None => a.to_string(),
        }
    }
}

/// `(command line, a piece of the error)`; `@NAME` names a file of [`Files`].
const HOSTILE: &[(&str, &str)] = &[
    // train: numbers out of range.
    ("train --lr nan", "--lr must be a number"),
    ("train --lr inf", "--lr must be a number"),
    ("train --lr 1e39", "--lr must be a number"),
    ("train --lr -1", "--lr must be a number"),
    ("train --lr 0", "--lr must be a number"),
    ("train --lr 2", "--lr must be a number"),
    ("train --clip nan", "--clip must be a number"),
    ("train --clip 0", "--clip must be a number"),
    ("train --clip -3", "--clip must be a number"),
    ("train --clip inf", "--clip must be a number"),
    ("train --temperature nan", "--temperature must be a number"),
    ("train --temperature -0.5", "--temperature must be a number"),
    ("train --temperature inf", "--temperature must be a number"),
    ("train --eval-every 0", "--eval-every must be at least 1"),
    ("train --sample 99999999999999", "--sample"),
    ("train --sample 18446744073709551615", "--sample"),
    // train: flags that would be ignored.
    (
        "train --task adding --text @text.txt",
        "--text has no use with --task adding",
    ),
    ("train --size proj=4", "--size sets a size of a --cell"),
    // train: budgets.
    ("train --budget 150%", "out of range"),
    ("train --budget 100.5%", "out of range"),
    ("train --budget -5%", "budget"),
    ("train --budget lots", "cannot read the budget"),
    ("train --budget nan", "budget"),
    ("train --policy fastest", "unknown policy"),
    ("train --backend gpu", "unknown backend"),
    // train: memory, before anything is allocated.
    ("train --hidden 20000", "would need"),
    ("train --hidden 18446744073709551615", "would need"),
    ("train --batch 18446744073709551615", "would need"),
    ("train --batch 100000000", "would need"),
    ("train --task adding --hidden 1000000", "would need"),
    ("train --task adding --max-memory 1kB", "--max-memory"),
    ("train --max-memory 0", "out of range"),
    // Too little for the fewest checkpoints T = 100,000 can be planned with.
    (
        "train --len 100000 --batch 8 --memory 256MiB",
        "--memory 268.4 MB is less than the",
    ),
    ("train --max-memory lots", "cannot read the size"),
    ("train --max-memory 5parsecs", "cannot read the size"),
    ("train --hidden 0", "each at least 1"),
    ("train --batch 0", "each at least 1"),
    ("train --len 0", "at least 1"),
    ("train --task adding --len 4294967295", "too long"),
    // train: texts.
    ("train --text @missing.txt", "cannot read the text"),
    ("train --text @latin1.txt", "not UTF-8"),
    ("train --text @empty.txt", "is empty"),
    ("train --text /dev/zero", "larger than"),
    ("train --text @folder", "cannot read the text"),
    (
        "train --text @text.txt --len 9000",
        "its training part needs 9001 characters",
    ),
    // train: checkpoint paths.
    (
        "train --text @text.txt --checkpoint @text.txt",
        "would be overwritten",
    ),
    (
        "train --cell @my.cell --checkpoint @my.cell",
        "would be overwritten",
    ),
    ("train --checkpoint @folder", "directory"),
    ("train --checkpoint /", "directory"),
    ("train --checkpoint @folder/", "directory"),
    (
        "train --checkpoint @file/sub.ckpt",
        "cannot write the checkpoint",
    ),
    (
        "train --checkpoint /proc/version/x.ckpt",
        "cannot write the checkpoint",
    ),
    ("train --resume @garbage.ckpt", "not a bptt checkpoint"),
    ("train --resume @missing.ckpt", "cannot read the checkpoint"),
    ("train --resume /dev/zero", "not a regular file"),
    ("train --resume @folder", "checkpoint"),
    // train: cells.
    ("train --cell @missing.cell", "cannot read the cell file"),
    ("train --cell @deep.cell", "nested more than"),
    ("train --cell @digits.cell", "longer than 64 characters"),
    ("train --cell @huge.cell", "larger than"),
    ("train --cell /dev/zero", "larger than"),
    (
        "train --cell @text.txt",
        "names and numbers in one statement",
    ),
    ("train --cell @latin1.txt", "not UTF-8"),
    ("train --cell @my.cell --size nope=3", "no size `nope`"),
    (
        "train --cell @my.cell --hidden 100000000",
        "at most 16777216",
    ),
    // demo.
    ("demo --hidden 20000000", "would need"),
    ("demo --batch 18446744073709551615", "would need"),
    (
        "demo --len 100000 --hidden 4096 --policy sqrt",
        "would need",
    ),
    ("demo --iters 18446744073709551615", "--iters"),
    ("demo --iters 0", "each at least 1"),
    ("demo --budget 101%", "out of range"),
    ("demo --policy nope", "unknown policy"),
    ("demo --backend nope", "unknown backend"),
    ("demo --max-memory 1kB", "--max-memory"),
    // bench.
    ("bench --interval 0", "--interval must be at least 1"),
    ("bench --runs 18446744073709551615", "--runs"),
    ("bench --warmup 18446744073709551615", "--warmup"),
    ("bench --out /dev/null", "not a folder"),
    ("bench --out @file", "not a folder"),
    ("bench --quick --hidden 18446744073709551615", "would need"),
    ("bench --quick --batch 100000000000", "would need"),
    ("bench --percents 0", "budget"),
    ("bench --percents 150", "budget"),
    ("bench --quick --max-memory 1kB", "--max-memory"),
    ("bench --weighted sqrt", "time-weighted planning needs"),
    // emit.
    (
        "emit rust --len 1000000 --policy sqrt --max-memory 10MB",
        "would need",
    ),
    (
        "emit clif --len 1000000 --policy sqrt --max-memory 10MB",
        "would need",
    ),
    ("emit rust --len 10 --hidden 4", "give the cell file too"),
    ("emit rust --len 10 --budget 120%", "out of range"),
    ("emit rust --cell @deep.cell", "nested more than"),
    ("emit clif --cell @digits.cell", "longer than 64 characters"),
    (
        "emit rust --cell @missing.cell",
        "cannot read the cell file",
    ),
    ("emit rust --cell @my.cell --size nope=3", "no size `nope`"),
    ("emit rust", "--len"),
    // plan, schedule, curve: bad values.
    ("plan --len 0 --budget 5", "at least 1"),
    ("plan --len 100 --alpha 0.5", "alpha must be"),
    ("plan --len 100 --policy fastest", "unknown policy"),
    ("schedule --len 10 --budget lots", "cannot read the budget"),
    ("curve --len 100 --alpha nan", "alpha"),
    // clap's errors: the one `error:` line, then the usage.
    ("plan", "--len"),
    ("trian", "train"),
    ("train --hiden 3", "--hidden"),
    ("train --task speech", "possible values"),
    ("train --hidden lots", "invalid value"),
    ("demo --len lots", "invalid value"),
];

/// Runs one line; what went wrong, if anything.
fn check(files: &Files, line: &str, expected: &str) -> Result<(), String> {
    std::panic::catch_unwind(|| check_line(files, line, expected))
        .map_err(|e| e.downcast_ref::<String>().cloned().unwrap_or_default())
}

fn check_line(files: &Files, line: &str, expected: &str) {
    let args: Vec<String> = line.split_whitespace().map(|a| files.arg(a)).collect();
    let start = Instant::now();
    let out = bptt()
        .args(&args)
        .current_dir(files.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "`{line}` succeeded");
    assert!(!err.contains("panicked"), "`{line}` panicked: {err}");
    let errors = err.lines().filter(|l| l.starts_with("error")).count();
    assert_eq!(errors, 1, "`{line}`: not one error line: {err}");
    if out.status.code() == Some(1) {
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "`{line}`: not one line: {err}"
        );
    } else {
        assert_eq!(
            out.status.code(),
            Some(2),
            "`{line}`: {:?} {err}",
            out.status
        );
    }
    assert!(
        err.contains(expected),
        "`{line}`: expected '{expected}' in: {err}"
    );
    assert!(took < Duration::from_secs(5), "`{line}` took {took:?}");
}

#[test]
fn every_hostile_command_line_is_refused_in_one_line_at_once() {
    assert!(HOSTILE.len() >= 80, "{} lines", HOSTILE.len());
    let files = Files::new();
    let failures: Vec<String> = HOSTILE
        .iter()
        .filter_map(|(line, expected)| check(&files, line, expected).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Nothing was overwritten, and no checkpoint written by a refused run.
    let text = std::fs::read_to_string(files.path("text.txt")).unwrap();
    assert!(text.starts_with("the cat"));
    assert!(!files.path("bptt-train.ckpt").exists());
}

/// Bare `bptt` lists the commands; clap's errors come in full.
#[test]
fn clap_speaks_in_full() {
    let out = bptt().output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for command in [
        "train", "plan", "schedule", "curve", "emit", "bench", "demo",
    ] {
        assert!(err.contains(command), "{command} missing from: {err}");
    }
    let out = bptt().arg("plan").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--len <LEN>") && err.contains("Usage:"),
        "{err}"
    );
    let out = bptt().args(["trian"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("similar") && err.contains("train"), "{err}");
    let out = bptt().args(["train", "--task", "x"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("text") && err.contains("adding"), "{err}");
}

/// Reads a few bytes of a command's output and closes the pipe: the command
/// ends quietly (success, or killed by SIGPIPE as a Unix tool is), no panic.
fn closes_quietly(args: &[&str]) {
    let mut child = bptt()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is dropped here.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && err.is_empty(),
        "{args:?}: {err}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.success() || out.status.signal() == Some(13),
            "{args:?}: {:?}",
            out.status
        );
    }
}

#[test]
fn a_closed_pipe_ends_quietly() {
    closes_quietly(&[
        "schedule", "--len", "3000", "--budget", "50", "--alpha", "2",
    ]);
    closes_quietly(&["curve", "--len", "300", "--alpha", "2", "--csv"]);
    closes_quietly(&[
        "emit", "clif", "--len", "400", "--budget", "20", "--alpha", "2",
    ]);
    closes_quietly(&[
        "emit", "rust", "--len", "400", "--budget", "20", "--alpha", "2",
    ]);
}

/// The README's main command works from any folder and with any target
/// folder: the default checkpoint goes to the current folder. Held-out
/// lines are printed when the output is not a terminal.
/// Trains a tiny adding problem in `dir` with `extra` flags; its output.
fn train_in(dir: &Path, extra: &[&str]) -> String {
    let out = bptt()
        .args([
            "train",
            "--task",
            "adding",
            "--len",
            "20",
            "--hidden",
            "4",
            "--batch",
            "2",
            "--eval-every",
            "2",
        ])
        .args(extra)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("elsewhere"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout} {stderr}");
    stdout
}

#[test]
fn train_works_from_any_folder_and_logs_without_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = train_in(dir.path(), &["--steps", "4"]);
    let held_out = stdout.lines().filter(|l| l.contains("held-out")).count();
    assert_eq!(held_out, 4, "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("step     2")),
        "{stdout}"
    );
    assert!(dir.path().join("bptt-train.ckpt").is_file());
    // Resuming from another spelling of the same path continues the run.
    let stdout = train_in(
        dir.path(),
        &["--steps", "6", "--resume", "./bptt-train.ckpt"],
    );
    assert!(stdout.contains("starting at step 4"), "{stdout}");
}
