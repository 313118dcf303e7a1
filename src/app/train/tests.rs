//! Training: it learns, it resumes exactly, and bad input is refused.

use std::path::PathBuf;

use tempfile::TempDir;

use bptt::{BackendKind, Budget, Error, Policy};

use super::{TaskSpec, TrainConfig, Trainer};

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
        budget: Budget::Percent(10.0),
        memory: None,
        policy: Policy::Msm,
        lr: 1e-2,
        clip: 1.0,
        seed: 3,
        max_memory: None,
        cell_engine: None,
    }
}

/// A fresh model of the tiny text on the interpreter.
fn text_trainer(dir: &TempDir) -> Trainer {
    let cfg = config(TaskSpec::Text {
        path: tiny_text(dir),
    });
    Trainer::new(cfg, BackendKind::Interpreter).unwrap()
}

fn losses(trainer: &mut Trainer, steps: usize) -> Vec<u64> {
    (0..steps)
        .map(|_| trainer.step().unwrap().loss.to_bits())
        .collect()
}

/// The held-out loss before and after `steps` training steps.
fn held_out_before_and_after(trainer: &mut Trainer, steps: usize) -> (f64, f64) {
    let before = trainer.evaluate();
    for _ in 0..steps {
        trainer.step().unwrap();
    }
    (before, trainer.evaluate())
}

/// Training windows longer than the held-out part (as T = 100,000 on the
/// built-in text): evaluation reads the longest windows the part holds, and
/// the model still learns; a held-out part of one character is refused.
#[test]
fn windows_longer_than_the_held_out_part_train_and_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(TaskSpec::Text {
        path: tiny_text(&dir),
    });
    // 1,960 characters, a tenth of them held out.
    cfg.len = 400;
    let mut trainer = Trainer::new(cfg.clone(), BackendKind::Interpreter).unwrap();
    let super::Task::Text(corpus) = &trainer.task else {
        unreachable!("a text task")
    };
    let held_out = corpus.held_out().len();
    assert!(held_out < 400, "{held_out} characters held out");
    assert_eq!(trainer.task.eval_len(400) as usize, held_out - 1);
    let (before, after) = held_out_before_and_after(&mut trainer, 40);
    assert!(
        after < 0.6 * before,
        "held-out bits/char {before} -> {after}"
    );

    let one_out = temp(&dir, "one_out.txt");
    std::fs::write(&one_out, "abcdefghijklmno").unwrap();
    cfg.task = TaskSpec::Text { path: one_out };
    cfg.len = 5;
    let err = Trainer::new(cfg, BackendKind::Interpreter).err().unwrap();
    assert!(
        err.to_string()
            .contains("its held-out part needs 2 characters and has 1"),
        "{err}"
    );
}

#[test]
fn a_short_run_lowers_the_held_out_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = text_trainer(&dir);
    let (before, after) = held_out_before_and_after(&mut trainer, 60);
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
    other.policy = Policy::Hsm;
    other.budget = Budget::Units(2.0);
    let mut resumed = Trainer::resume(&path, other, BackendKind::Interpreter).unwrap();
    assert_eq!(resumed.steps_taken(), 4);
    got.extend(losses(&mut resumed, 6));
    assert_eq!(got, want);
}

#[test]
fn store_all_and_a_twentieth_of_its_memory_train_identically_on_the_adding_problem() {
    let mut cfg = config(TaskSpec::Adding);
    cfg.len = 400;
    cfg.policy = Policy::StoreAll;
    cfg.budget = Budget::Percent(100.0);
    let mut full = Trainer::new(cfg.clone(), BackendKind::Interpreter).unwrap();
    cfg.policy = Policy::Msm;
    cfg.budget = Budget::Percent(5.0);
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
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
            && err.to_string().contains("cannot read the text"),
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
    cfg.policy = Policy::StoreAll;
    cfg.budget = Budget::Units(3.0);
    let err = Trainer::new(cfg, BackendKind::Interpreter)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("smallest that works"), "{err}");
}

/// Cells nobody wrote by hand, defined by their equations in files, train
/// under a budget with the alpha their tapes give (the normalised ones use
/// sums over features, rsqrt and per-block initial values; the matrix
/// memories `[key, value]` states, bound as `--size key=8 --size value=24`
/// binds them): the loss falls, and both backends give the same losses bit
/// for bit.
#[test]
fn a_cell_from_a_file_trains_under_a_budget() {
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_text(&dir);
    let matrix = vec![("key".to_string(), 8), ("value".to_string(), 24)];
    for (file, alpha, sizes) in [
        ("mgu.cell", 3.0, Vec::new()),
        ("layernorm_lstm.cell", 5.125, Vec::new()),
        ("rmsnorm_gru.cell", 5.0 + 1.0 / 24.0, Vec::new()),
        // The old memory and the step's vectors: the new memory is recomputed.
        ("linear_attention.cell", 233.0 / 216.0, matrix.clone()),
        ("mlstm.cell", 268.0 / 225.0, matrix),
    ] {
        let mut cfg = config(TaskSpec::Text { path: text.clone() });
        cfg.sizes = sizes;
        cfg.cell = Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("cells")
                .join(file),
        );
        let mut trainer = Trainer::new(cfg.clone(), BackendKind::Interpreter).unwrap();
        assert_eq!(trainer.alpha(), alpha, "{file}");
        let (before, after) = held_out_before_and_after(&mut trainer, 60);
        assert!(
            after < 0.7 * before,
            "{file}: held-out bits/char {before} -> {after}"
        );
        let mut interp = Trainer::new(cfg.clone(), BackendKind::Interpreter).unwrap();
        let mut jit = Trainer::new(cfg.clone(), BackendKind::Jit).unwrap();
        let expected = losses(&mut interp, 5);
        assert_eq!(expected, losses(&mut jit, 5), "{file}");
        // The cell's engine is chosen independently of the schedule's.
        for (schedule, cell) in [
            (BackendKind::Interpreter, BackendKind::Jit),
            (BackendKind::Jit, BackendKind::Interpreter),
        ] {
            let mixed = TrainConfig {
                cell_engine: Some(cell),
                ..cfg.clone()
            };
            let mut trainer = Trainer::new(mixed, schedule).unwrap();
            assert_eq!(
                expected,
                losses(&mut trainer, 5),
                "{file}: {schedule} with a {cell} cell"
            );
        }
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

/// A checkpoint continues only the run it came from, by content: an edited
/// cell, another text or vocabulary at the same path is refused in words,
/// and the same file under another spelling of its path resumes.
#[test]
fn resuming_compares_content_not_paths() {
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_text(&dir);
    let cell = temp(&dir, "my.cell");
    let mgu = concat!(env!("CARGO_MANIFEST_DIR"), "/cells/mgu.cell");
    std::fs::copy(mgu, &cell).unwrap();
    let mut cfg = config(TaskSpec::Text { path: text.clone() });
    cfg.cell = Some(cell.clone());
    let path = temp(&dir, "run.ckpt");
    Trainer::new(cfg.clone(), BackendKind::Interpreter)
        .unwrap()
        .save(&path)
        .unwrap();
    let refused = |cfg: TrainConfig| {
        let err = Trainer::resume(&path, cfg, BackendKind::Interpreter)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            !err.contains("Some(") && !err.contains("{ path"),
            "debug formatting: {err}"
        );
        err
    };
    // The same files spelled otherwise resume.
    let mut spelled = cfg.clone();
    spelled.cell = Some(dir.path().join(".").join("my.cell"));
    spelled.task = TaskSpec::Text {
        path: dir.path().join(".").join("tiny.txt"),
    };
    Trainer::resume(&path, spelled, BackendKind::Interpreter).unwrap();
    // Comments and spacing do not count; an edited equation does.
    let source = std::fs::read_to_string(mgu).unwrap();
    std::fs::write(&cell, format!("// a comment\n{source}\n\n")).unwrap();
    Trainer::resume(&path, cfg.clone(), BackendKind::Interpreter).unwrap();
    std::fs::write(
        &cell,
        source.replace("(1.0 - f) * h", "(1.0 - f) * candidate"),
    )
    .unwrap();
    let err = refused(cfg.clone());
    assert!(err.contains("cell's definition differs"), "{err}");
    std::fs::copy(mgu, &cell).unwrap();
    // Another text with the same characters, then one with other characters.
    let line = "the cat sat on the mat. the dog sat on the log.\n";
    std::fs::write(
        &text,
        line.repeat(39) + "the log sat on the dog. the mat sat on the cat.\n",
    )
    .unwrap();
    let err = refused(cfg.clone());
    assert!(err.contains("the text differs"), "{err}");
    std::fs::write(&text, line.replace('c', "k").repeat(40)).unwrap();
    let err = refused(cfg.clone());
    assert!(err.contains("vocabulary"), "{err}");
    // A setting that shapes the model, in words.
    let mut lstm = cfg;
    lstm.cell = None;
    let err = refused(lstm);
    assert!(
        err.contains("cell a cell file, this run asks for the runtime's LSTM"),
        "{err}"
    );
}

/// Why a fresh model of `cfg` is refused.
fn refusal(cfg: TrainConfig) -> String {
    match Trainer::new(cfg, BackendKind::Interpreter) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

/// Memory is counted before it is spent: a hidden size whose parameters
/// cannot fit is refused in one line naming both figures (allocating
/// them first would abort the test process).
#[test]
fn a_model_too_large_for_memory_is_refused_before_allocating() {
    let mut cfg = config(TaskSpec::Adding);
    cfg.hidden = 1 << 40;
    let err = refusal(cfg.clone());
    assert!(
        err.contains("would need") && err.contains("more than"),
        "{err}"
    );
    cfg.hidden = 24;
    cfg.max_memory = Some(1000);
    let err = refusal(cfg);
    assert!(err.contains("1.0 kB --max-memory"), "{err}");
}

/// A text is read with a cap and checked as UTF-8 while it streams (an
/// endless file is refused at the cap, where reading it whole never ends).
#[test]
fn texts_are_capped_and_checked_as_they_stream() {
    let dir = tempfile::tempdir().unwrap();
    let latin1 = temp(&dir, "latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 au lait".repeat(100)).unwrap();
    let err = refusal(config(TaskSpec::Text { path: latin1 }));
    assert!(err.contains("not UTF-8 (at byte 3)"), "{err}");
    #[cfg(unix)]
    {
        let err = refusal(config(TaskSpec::Text {
            path: PathBuf::from("/dev/zero"),
        }));
        assert!(err.contains("larger than"), "{err}");
    }
}

/// Temperature 0 takes the likeliest character: the same text every time.
#[test]
fn temperature_zero_samples_greedily() {
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = text_trainer(&dir);
    losses(&mut trainer, 20);
    let a = trainer.sample(60, 0.0, 1);
    assert_eq!(
        a,
        trainer.sample(60, 0.0, 2),
        "greedy does not depend on the seed"
    );
    assert_eq!(a.chars().count(), 60);
    assert!(
        a.chars().collect::<std::collections::HashSet<_>>().len() > 1,
        "{a}"
    );
}
