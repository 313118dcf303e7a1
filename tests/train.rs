//! Training: it learns, it resumes exactly, and bad input is refused.

use std::path::PathBuf;

use tempfile::TempDir;

use bptt::train::{TaskSpec, TrainConfig, Trainer};
use bptt::{BackendKind, Error};

/// A file in the test's own temporary directory (removed when it drops).
fn temp(dir: &TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// A small text in the test's directory.
fn tiny_text(dir: &TempDir) -> PathBuf {
    let path = temp(dir, "tiny.txt");
    let line = "the cat sat on the mat. the dog sat on the log.\n";
    std::fs::write(&path, line.repeat(40)).unwrap();
    path
}

fn config(task: TaskSpec) -> TrainConfig {
    TrainConfig {
        task,
        len: 30,
        batch: 4,
        hidden: 24,
        cell: None,
        sizes: Vec::new(),
        budget: "10%".to_string(),
        policy: "msm".to_string(),
        lr: 1e-2,
        clip: 1.0,
        seed: 3,
    }
}

fn losses(trainer: &mut Trainer, steps: usize) -> Vec<u64> {
    (0..steps)
        .map(|_| trainer.step().unwrap().loss.to_bits())
        .collect()
}

#[test]
fn a_short_run_lowers_the_held_out_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = Trainer::new(
        config(TaskSpec::Text {
            path: tiny_text(&dir),
        }),
        BackendKind::Interpreter,
    )
    .unwrap();
    let before = trainer.evaluate();
    for _ in 0..60 {
        trainer.step().unwrap();
    }
    let after = trainer.evaluate();
    assert!(
        after < 0.6 * before,
        "held-out bits/char {before} -> {after}"
    );
}

#[test]
fn resuming_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(TaskSpec::Text {
        path: tiny_text(&dir),
    });
    let mut straight = Trainer::new(cfg.clone(), BackendKind::Interpreter).unwrap();
    let want = losses(&mut straight, 10);
    let mut first = Trainer::new(cfg.clone(), BackendKind::Interpreter).unwrap();
    let mut got = losses(&mut first, 4);
    let path = temp(&dir, "resume.ckpt");
    first.save(&path).unwrap();
    drop(first);
    // Another policy and budget on resume: the gradients are the same.
    let mut other = cfg;
    other.policy = "hsm".to_string();
    other.budget = "2".to_string();
    let mut resumed = Trainer::resume(&path, other, BackendKind::Interpreter).unwrap();
    assert_eq!(resumed.steps_taken(), 4);
    got.extend(losses(&mut resumed, 6));
    assert_eq!(got, want);
}

#[test]
fn store_all_and_a_twentieth_of_its_memory_train_identically_on_the_adding_problem() {
    let mut cfg = config(TaskSpec::Adding);
    cfg.len = 400;
    cfg.policy = "store-all".to_string();
    cfg.budget = "100%".to_string();
    let mut full = Trainer::new(cfg.clone(), BackendKind::Interpreter).unwrap();
    cfg.policy = "msm".to_string();
    cfg.budget = "5%".to_string();
    let mut small = Trainer::new(cfg, BackendKind::Interpreter).unwrap();
    assert!(small.checkpoint_bytes() * 19 <= full.checkpoint_bytes());
    assert_eq!(losses(&mut full, 5), losses(&mut small, 5));
}

#[test]
fn a_corrupted_checkpoint_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(TaskSpec::Text {
        path: tiny_text(&dir),
    });
    let trainer = Trainer::new(cfg.clone(), BackendKind::Interpreter).unwrap();
    let path = temp(&dir, "corrupt.ckpt");
    trainer.save(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = Trainer::resume(&path, cfg, BackendKind::Interpreter)
        .err()
        .unwrap();
    assert!(err.to_string().contains("corrupted"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_checkpoint_of_another_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(TaskSpec::Text {
        path: tiny_text(&dir),
    });
    let path = temp(&dir, "other.ckpt");
    Trainer::new(cfg.clone(), BackendKind::Interpreter)
        .unwrap()
        .save(&path)
        .unwrap();
    let mut bigger = cfg;
    bigger.hidden = 32;
    let err = Trainer::resume(&path, bigger, BackendKind::Interpreter)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("hidden 24") && err.contains("32"), "{err}");
    let garbage = temp(&dir, "garbage.ckpt");
    std::fs::write(&garbage, b"hello").unwrap();
    let err = Trainer::resume(&garbage, config(TaskSpec::Adding), BackendKind::Interpreter)
        .err()
        .unwrap();
    assert!(err.to_string().contains("not a bptt checkpoint"), "{err}");
}

#[test]
fn bad_texts_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = config(TaskSpec::Text {
        path: temp(&dir, "does-not-exist.txt"),
    });
    let err = Trainer::new(missing, BackendKind::Interpreter)
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::Io(_)) && err.to_string().contains("cannot read the text"),
        "{err}"
    );
    let empty = temp(&dir, "empty.txt");
    std::fs::write(&empty, "").unwrap();
    let err = Trainer::new(
        config(TaskSpec::Text { path: empty }),
        BackendKind::Interpreter,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("is empty"), "{err}");
    let short = temp(&dir, "short.txt");
    std::fs::write(&short, "just a few words").unwrap();
    let err = Trainer::new(
        config(TaskSpec::Text { path: short }),
        BackendKind::Interpreter,
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("too short for sequences of length 30"),
        "{err}"
    );
}

#[test]
fn a_baseline_over_budget_names_the_minimum() {
    let mut cfg = config(TaskSpec::Adding);
    cfg.policy = "store-all".to_string();
    cfg.budget = "3".to_string();
    let err = Trainer::new(cfg, BackendKind::Interpreter)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("smallest that works"), "{err}");
}

/// Cells nobody wrote by hand, defined by their equations in files, train
/// under a budget with the alpha their tapes give (the normalised ones use
/// sums over features, rsqrt and per-block initial values): the loss falls,
/// and both backends give the same losses bit for bit.
#[test]
fn a_cell_from_a_file_trains_under_a_budget() {
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_text(&dir);
    for (file, alpha) in [
        ("mgu.cell", 3.0),
        ("layernorm_lstm.cell", 5.125),
        ("rmsnorm_gru.cell", 5.0 + 1.0 / 24.0),
    ] {
        let mut cfg = config(TaskSpec::Text { path: text.clone() });
        cfg.cell = Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("cells")
                .join(file),
        );
        let mut trainer = Trainer::new(cfg.clone(), BackendKind::Interpreter).unwrap();
        assert_eq!(trainer.alpha(), alpha, "{file}");
        let before = trainer.evaluate();
        for _ in 0..60 {
            trainer.step().unwrap();
        }
        let after = trainer.evaluate();
        assert!(
            after < 0.7 * before,
            "{file}: held-out bits/char {before} -> {after}"
        );
        let mut interp = Trainer::new(cfg.clone(), BackendKind::Interpreter).unwrap();
        let mut jit = Trainer::new(cfg, BackendKind::Jit).unwrap();
        assert_eq!(losses(&mut interp, 5), losses(&mut jit, 5), "{file}");
    }
}

/// A cell file with a mistake is an error naming the file, line and column.
#[test]
fn a_bad_cell_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp(&dir, "bad.cell");
    std::fs::write(&path, "cell bad {\n  size input, hidden;\n  input x: [input];\n  state h: [hidden];\n  h = tanh(hh);\n}\n").unwrap();
    let mut cfg = config(TaskSpec::Text {
        path: tiny_text(&dir),
    });
    cfg.cell = Some(path.clone());
    let err = Trainer::new(cfg, BackendKind::Interpreter)
        .err()
        .expect("a bad cell is refused");
    let msg = err.to_string();
    assert!(
        msg.contains("bad.cell")
            && msg.contains("line 5, column 12")
            && msg.contains("unknown name `hh`"),
        "{msg}"
    );
}
