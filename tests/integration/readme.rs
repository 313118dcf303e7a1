//! The README's commands work as written: every `cargo run --release -- ..`
//! line of its shell blocks and every inline `bptt ..` command runs and
//! succeeds, and the schedule excerpt is what the command prints.
//!
//! Two kinds are shortened, not skipped: `train` runs with `--steps 0`
//! (planning, the memory lines and one held-out evaluation: what its figures
//! quote), and `bench`, minutes long, runs with `--help` after its flags, so
//! they must parse. `cargo test` is this command itself.

use std::process::Command;

const README: &str = include_str!("../../README.md");

/// The shell lines `cargo run --release -- ARGS  # comment`, as ARGS.
fn shell_commands() -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in README.lines() {
        if line.starts_with("```") {
            inside = line == "```sh";
            continue;
        }
        if let Some(args) = line
            .strip_prefix("cargo run --release -- ")
            .filter(|_| inside)
        {
            let args = args.split(" #").next().unwrap_or(args);
            out.push(args.trim().to_string());
        }
    }
    out
}

/// The inline `` `bptt ARGS` `` commands of the prose, as ARGS (an inline
/// span may wrap across lines); a bare `` `bptt plan` `` names a command
/// and is not one.
fn inline_commands() -> Vec<String> {
    README
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|span| span.strip_prefix("bptt "))
        .map(|args| args.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|args| args.contains("--"))
        .collect()
}

/// Runs bptt with `args` in the repository's folder; its standard output.
fn run(args: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bptt"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("bptt runs");
    assert!(
        out.status.success(),
        "`bptt {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The command as the test runs it: `train` without steps (and its
/// checkpoint in a temporary folder), `bench` parsing its flags only.
fn shortened(args: &str, dir: &std::path::Path) -> Vec<String> {
    let mut words: Vec<String> = args.split_whitespace().map(String::from).collect();
    match words.first().map(String::as_str) {
        Some("train") if !words.iter().any(|w| w == "--help") => {
            if let Some(i) = words.iter().position(|w| w == "--steps") {
                words.drain(i..i + 2);
            }
            let checkpoint = dir.join("readme.ckpt").display().to_string();
            words.extend(
                ["--steps", "0", "--sample", "0", "--quiet", "--checkpoint"].map(String::from),
            );
            words.push(checkpoint);
        }
        Some("bench") => words.push("--help".to_string()),
        _ => {}
    }
    words
}

#[test]
fn every_command_of_the_readme_runs() {
    let dir = tempfile::tempdir().unwrap();
    let commands: Vec<String> = shell_commands()
        .into_iter()
        .chain(inline_commands())
        .collect();
    assert!(
        commands.len() >= 15,
        "the README's commands were not found: {commands:?}"
    );
    for args in &commands {
        let out = run(&shortened(args, dir.path()));
        if args.contains("--len 100000 --memory 256MiB") && args.starts_with("train") {
            // The figures the README quotes for it.
            assert!(out.contains("(9.6% of store-all)"), "{out}");
            assert!(out.contains("holds 268.3 MB in all"), "{out}");
            assert!(out.contains("store-all would hold 2.6 GB"), "{out}");
        }
        if args.contains("--len 100000 --batch 4 --memory 192MiB") {
            assert!(out.contains("(4.5% of store-all)"), "{out}");
            assert!(out.contains("holds 201.2 MB in all"), "{out}");
            assert!(out.contains("store-all would hold 1.5 GB"), "{out}");
        }
    }
}

#[test]
fn the_schedule_excerpt_is_what_the_command_prints() {
    let excerpt: Vec<&str> = README
        .split("```text\nrestore   h[0] <- h0\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .map(|block| {
            std::iter::once("restore   h[0] <- h0")
                .chain(block.lines())
                .collect()
        })
        .expect("the README shows a schedule excerpt");
    let args = "schedule --len 12 --budget 3 --alpha 2 --policy msm";
    assert!(
        shell_commands().iter().any(|c| c == args),
        "the excerpt's command is not in the README"
    );
    let printed = run(&args.split(' ').map(String::from).collect::<Vec<_>>());
    // The excerpt's lines appear in order; `...` stands for any lines.
    let mut lines = printed.lines();
    for want in excerpt.iter().filter(|l| **l != "...") {
        assert!(
            lines.any(|l| l == *want),
            "`{want}` is not where the README shows it in:\n{printed}"
        );
    }
}
