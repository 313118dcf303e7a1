//! The Cranelift JIT backend: gradients bitwise identical to the interpreter
//! and to plain BPTT, a stable IR snapshot, errors instead of undefined
//! behaviour, no allocation per run. (That dropping compiled code frees it
//! is tested in `tests/jit_frees_code.rs`, a process of its own.)

use crate::common::{CELLS, DERIVED, Problem, clif_shape};
use bptt::jit::{CompiledSchedule, JitOptions, emit_clif, layout_for_alpha};
use bptt::{Alpha, Budget, Error, Op, Plan, Policy, Schedule, Verified};
use bptt_runtime::{Cell, Gru, LossKind, Lstm, Readout, Rng, Rnn, Targets};
use expect_test::expect;
use ndarray::{Array2, Array3};

fn schedule(cell: &dyn Cell, policy: Policy, len: u32, budget: Budget) -> Schedule {
    let alpha = Alpha::new(cell.alpha()).unwrap();
    Schedule::from_plan(&Plan::new(policy, alpha, len, budget).unwrap())
}

/// Loss and gradients of a problem through the JIT.
fn jit_run(
    problem: &Problem,
    policy: Policy,
    budget: Budget,
    options: JitOptions,
) -> (f64, bptt::Gradients, usize) {
    let schedule = schedule(&*problem.cell, policy, problem.len(), budget);
    let mut compiled = CompiledSchedule::compile_with(
        schedule,
        &*problem.cell,
        &problem.readout,
        problem.batch(),
        options,
    )
    .unwrap();
    let mut grads = compiled.gradients(&*problem.cell, &problem.readout);
    let loss = compiled
        .run(
            &*problem.cell,
            &problem.readout,
            problem.x.view(),
            problem.h0.view(),
            problem.targets(),
            &mut grads,
        )
        .unwrap();
    (loss, grads, compiled.functions())
}

const POLICIES: [Policy; 6] = [
    Policy::Hsm,
    Policy::Ism,
    Policy::Msm,
    Policy::StoreAll,
    Policy::Sqrt,
    Policy::Interval(7),
];

#[test]
fn gradients_are_bitwise_those_of_the_interpreter_and_plain_bptt() {
    for name in CELLS.into_iter().chain(DERIVED) {
        let problem = Problem::new(name, 37, 3, 7);
        let (plain_loss, plain) = problem.plain_bptt();
        for policy in POLICIES {
            let budgets: &[f64] = if policy.is_dynamic() {
                &[0.0, 2.0, 5.0, 20.0, 100.0]
            } else {
                &[100.0]
            };
            for &percent in budgets {
                let budget = Budget::Percent(percent);
                let case = format!("{name} {policy} {percent}%");
                let (interp_loss, interp) = problem.run(policy, budget);
                // One function or many small ones, loops or every call
                // unrolled: neither changes a bit.
                for (per_function, loops) in [
                    (JitOptions::DEFAULT_RUNS_PER_FUNCTION, true),
                    (5, true),
                    (JitOptions::DEFAULT_RUNS_PER_FUNCTION, false),
                ] {
                    let options = JitOptions {
                        runs_per_function: per_function,
                        verifier: true,
                        loops,
                    };
                    let (loss, grads, functions) = jit_run(&problem, policy, budget, options);
                    assert!(functions >= 1, "{case}");
                    assert_eq!(loss.to_bits(), interp_loss.to_bits(), "loss of {case}");
                    assert_eq!(loss.to_bits(), plain_loss.to_bits(), "loss of {case}");
                    assert!(
                        grads.bitwise_eq(&interp),
                        "gradients of {case} vs interpreter"
                    );
                    assert!(
                        grads.bitwise_eq(&plain),
                        "gradients of {case} vs plain BPTT"
                    );
                }
            }
        }
    }
}

#[test]
fn repeated_runs_give_the_same_bits() {
    let problem = Problem::new("lstm", 25, 2, 3);
    let schedule = schedule(&*problem.cell, Policy::Msm, 25, Budget::Percent(10.0));
    let mut compiled =
        CompiledSchedule::compile(schedule, &*problem.cell, &problem.readout, 2).unwrap();
    let mut first = compiled.gradients(&*problem.cell, &problem.readout);
    let mut again = first.clone();
    let args = (problem.x.view(), problem.h0.view());
    let a = compiled
        .run(
            &*problem.cell,
            &problem.readout,
            args.0,
            args.1,
            problem.targets(),
            &mut first,
        )
        .unwrap();
    let b = compiled
        .run(
            &*problem.cell,
            &problem.readout,
            args.0,
            args.1,
            problem.targets(),
            &mut again,
        )
        .unwrap();
    assert_eq!(a.to_bits(), b.to_bits());
    assert!(first.bitwise_eq(&again));
}

/// The IR text depends on the target's calling convention: the snapshot is
/// taken on 64-bit Linux (System V on x86-64 and AArch64). It records the
/// code's shape, with value numbers erased (`clif_shape`): Cranelift's
/// numbering is not what the test is about.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[test]
fn the_ir_of_a_tiny_schedule_is_stable() {
    let mut rng = Rng::new(1);
    let cell = Rnn::new(2, 3, &mut rng);
    let readout = Readout::new(LossKind::SquaredError, 3, 1, &mut rng);
    let schedule = schedule(&cell, Policy::Msm, 4, Budget::Units(1.0));
    let compiled = CompiledSchedule::compile(schedule.clone(), &cell, &readout, 2).unwrap();
    let text = compiled.clif().unwrap();
    assert_eq!(text, compiled.clif().unwrap(), "the text is deterministic");
    assert_eq!(
        text,
        emit_clif(compiled.verified(), compiled.layout()).unwrap(),
        "emit_clif prints the same functions"
    );
    expect![[r#"
        ; bptt: msm schedule, T = 4, alpha = 2, budget = 1 (in hidden states)
        ; 17 calls in 17 runs (a run of more than one call is a loop) in 1 function, run in order; each call passes the frame pointer
        ; then the step and offsets in floats from the arena base (batch 2, state 3, tape 6):
        ;   run0 = 0, run1 = 16, state = 32, grad0 = 48, grad1 = 64, W = 80
        ;   H<p>, T<p> (tick p of the checkpoint stack) = 1152 + ceil(p * 6 / 1); the stack holds 1 ticks

        function %bptt_chunk_0(i64) system_v {
            sig0 = (i64, i64) system_v
            sig1 = (i64, i64, i64) system_v
            sig2 = (i64, i64, i64) system_v
            sig3 = (i64, i64, i64, i64) system_v
            sig4 = (i64, i64, i64, i64, i64) system_v
            sig5 = (i64, i64, i64, i64, i64) system_v
            fn0 = %bptt_restore_initial sig0
            fn1 = %bptt_copy_state sig1
            fn2 = %bptt_state_from_tape sig2
            fn3 = %bptt_forward sig3
            fn4 = %bptt_forward_tape sig4
            fn5 = %bptt_backward sig5

        block0(v: i64):
            v = iconst.i64 0
            call fn0(v, v)                     ; restore h0 -> run0
            v = iconst.i64 1
            v = iconst.i64 0
            v = iconst.i64 16
            call fn3(v, v, v, v)             ; forward 1: run0 -> run1
            v = iconst.i64 16
            v = iconst.i64 1152
            call fn1(v, v, v)                 ; copy run1 -> H0
            v = iconst.i64 2
            v = iconst.i64 16
            v = iconst.i64 0
            call fn3(v, v, v, v)             ; forward 2: run1 -> run0
            v = iconst.i64 3
            v = iconst.i64 0
            v = iconst.i64 16
            call fn3(v, v, v, v)          ; forward 3: run0 -> run1
            v = iconst.i64 4
            v = iconst.i64 16
            v = iconst.i64 80
            v = iconst.i64 0
            call fn4(v, v, v, v, v)     ; forward 4: run1 -> run0, tape W
            v = iconst.i64 4
            v = iconst.i64 80
            v = iconst.i64 48
            v = iconst.i64 64
            call fn5(v, v, v, v, v)     ; backward 4 with W: grad0 -> grad1
            v = iconst.i64 1152
            v = iconst.i64 0
            call fn1(v, v, v)               ; copy H0 -> run0
            v = iconst.i64 2
            v = iconst.i64 0
            v = iconst.i64 16
            call fn3(v, v, v, v)          ; forward 2: run0 -> run1
            v = iconst.i64 3
            v = iconst.i64 16
            v = iconst.i64 80
            v = iconst.i64 0
            call fn4(v, v, v, v, v)     ; forward 3: run1 -> run0, tape W
            v = iconst.i64 3
            v = iconst.i64 80
            v = iconst.i64 64
            v = iconst.i64 48
            call fn5(v, v, v, v, v)     ; backward 3 with W: grad1 -> grad0
            v = iconst.i64 1152
            v = iconst.i64 0
            call fn1(v, v, v)               ; copy H0 -> run0
            v = iconst.i64 2
            v = iconst.i64 0
            v = iconst.i64 80
            v = iconst.i64 16
            call fn4(v, v, v, v, v)     ; forward 2: run0 -> run1, tape W
            v = iconst.i64 2
            v = iconst.i64 80
            v = iconst.i64 48
            v = iconst.i64 64
            call fn5(v, v, v, v, v)     ; backward 2 with W: grad0 -> grad1
            v = iconst.i64 16
            call fn0(v, v)                    ; restore h0 -> run1
            v = iconst.i64 1
            v = iconst.i64 16
            v = iconst.i64 80
            v = iconst.i64 0
            call fn4(v, v, v, v, v)     ; forward 1: run1 -> run0, tape W
            v = iconst.i64 1
            v = iconst.i64 80
            v = iconst.i64 64
            v = iconst.i64 48
            call fn5(v, v, v, v, v)     ; backward 1 with W: grad1 -> grad0
            return
        }
    "#]]
    .assert_eq(&clif_shape(&text));
}

#[test]
fn the_ir_names_shims_and_hides_addresses() {
    let mut rng = Rng::new(2);
    let cell = Gru::new(3, 4, &mut rng);
    let schedule = schedule(&cell, Policy::Hsm, 30, Budget::Units(3.0));
    let layout = layout_for_alpha(schedule.header());
    let text = emit_clif(&Verified::new(schedule).unwrap(), &layout).unwrap();
    for shim in [
        "%bptt_restore_initial",
        "%bptt_copy_state",
        "%bptt_state_from_tape",
        "%bptt_forward",
        "%bptt_forward_tape",
        "%bptt_backward",
    ] {
        assert!(text.contains(shim), "{shim} missing");
    }
    assert!(!text.contains("0x"), "an address leaked into the IR");
    assert!(!text.contains("u0:"), "an unnamed function in the IR");
    assert_eq!(text.matches("; backward ").count(), 30);
}

#[test]
fn a_tampered_schedule_is_refused_before_compiling() {
    let mut rng = Rng::new(3);
    let cell = Lstm::new(3, 4, &mut rng);
    let readout = Readout::new(LossKind::SquaredError, 4, 2, &mut rng);
    let good = schedule(&cell, Policy::Msm, 12, Budget::Units(3.0));
    let tamperings: [fn(&mut Vec<Op>); 3] = [
        // A backward step missing.
        |ops| {
            let at = ops
                .iter()
                .position(|op| matches!(op, Op::Backward { .. }))
                .unwrap();
            ops.remove(at);
        },
        // A forward step run from a state that is not there.
        |ops| {
            let at = ops.iter().position(|op| op.is_forward()).unwrap();
            ops.remove(at.saturating_sub(1));
        },
        // Operations out of order.
        |ops| ops.reverse(),
    ];
    for tamper in tamperings {
        let mut ops = good.ops().to_vec();
        tamper(&mut ops);
        let bad = good.clone().with_ops(ops);
        let err = CompiledSchedule::compile(bad.clone(), &cell, &readout, 2).unwrap_err();
        assert!(matches!(err, Error::Verify(_)), "{err}");
        let err = Verified::new(bad).unwrap_err();
        assert!(matches!(err, Error::Verify(_)), "{err}");
    }
}

#[test]
fn a_layout_too_small_for_the_schedule_is_an_error() {
    let mut rng = Rng::new(4);
    let cell = Rnn::new(3, 4, &mut rng);
    let schedule = schedule(&cell, Policy::Sqrt, 40, Budget::Percent(100.0));
    let mut layout = layout_for_alpha(schedule.header());
    layout.capacity_ticks -= 1;
    let err = emit_clif(&Verified::new(schedule).unwrap(), &layout).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
}

#[test]
fn mismatched_shapes_are_errors_before_anything_runs() {
    let (len, batch) = (10usize, 3usize);
    let mut rng = Rng::new(5);
    let cell = Lstm::new(3, 4, &mut rng);
    let readout = Readout::new(LossKind::SoftmaxCrossEntropy, 4, 5, &mut rng);
    let schedule = schedule(&cell, Policy::Msm, len as u32, Budget::Percent(20.0));
    let mut compiled = CompiledSchedule::compile(schedule, &cell, &readout, batch).unwrap();
    let mut grads = compiled.gradients(&cell, &readout);
    let x = Array3::<f32>::zeros((len, batch, 3));
    let h0 = Array2::<f32>::zeros((batch, cell.state_size()));
    let y = Array2::<u32>::zeros((len, batch));
    let shape_error = |result: Result<f64, Error>| {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Shape { .. }), "{err}");
    };
    // Inputs of the wrong width, length and batch.
    let wide = Array3::<f32>::zeros((len, batch, 4));
    shape_error(compiled.run(
        &cell,
        &readout,
        wide.view(),
        h0.view(),
        Targets::Classes(y.view()),
        &mut grads,
    ));
    let short = Array3::<f32>::zeros((len - 1, batch, 3));
    shape_error(compiled.run(
        &cell,
        &readout,
        short.view(),
        h0.view(),
        Targets::Classes(y.view()),
        &mut grads,
    ));
    let small = Array3::<f32>::zeros((len, batch - 1, 3));
    shape_error(compiled.run(
        &cell,
        &readout,
        small.view(),
        h0.view(),
        Targets::Classes(y.view()),
        &mut grads,
    ));
    // An h0 that is not [batch, state].
    let h_bad = Array2::<f32>::zeros((batch, 4));
    shape_error(compiled.run(
        &cell,
        &readout,
        x.view(),
        h_bad.view(),
        Targets::Classes(y.view()),
        &mut grads,
    ));
    // Another cell than the one compiled for: an RNN has other sizes.
    let other = Rnn::new(3, 4, &mut rng);
    let mut other_grads = bptt::Gradients::zeros(&other, &readout, batch);
    shape_error(compiled.run(
        &other,
        &readout,
        x.view(),
        h0.view(),
        Targets::Classes(y.view()),
        &mut other_grads,
    ));
    // Gradients for another batch size.
    let mut wrong_grads = bptt::Gradients::zeros(&cell, &readout, batch + 1);
    shape_error(compiled.run(
        &cell,
        &readout,
        x.view(),
        h0.view(),
        Targets::Classes(y.view()),
        &mut wrong_grads,
    ));
    // And the right shapes still run.
    assert!(
        compiled
            .run(
                &cell,
                &readout,
                x.view(),
                h0.view(),
                Targets::Classes(y.view()),
                &mut grads
            )
            .is_ok()
    );
}

#[test]
fn a_long_schedule_compiles_as_loops() {
    let mut rng = Rng::new(6);
    let cell = Rnn::new(1, 1, &mut rng);
    let readout = Readout::new(LossKind::SquaredError, 1, 1, &mut rng);
    let len = 100_000;
    let schedule = schedule(&cell, Policy::Sqrt, len, Budget::Percent(100.0));
    let options = JitOptions {
        verifier: false,
        ..JitOptions::default()
    };
    let mut compiled =
        CompiledSchedule::compile_with(schedule, &cell, &readout, 1, options).unwrap();
    let runs = compiled.engine().runs();
    assert_eq!(
        runs.div_ceil(JitOptions::DEFAULT_RUNS_PER_FUNCTION),
        compiled.functions()
    );
    // Sqrt(t)'s segments are loops: the code holds far fewer runs than calls.
    assert!(
        runs * 50 < compiled.calls(),
        "{runs} runs for {} calls",
        compiled.calls()
    );
    let x = Array3::<f32>::zeros((len as usize, 1, 1));
    let y = Array3::<f32>::zeros((len as usize, 1, 1));
    let h0 = Array2::<f32>::zeros((1, 1));
    let mut grads = compiled.gradients(&cell, &readout);
    let loss = compiled
        .run(
            &cell,
            &readout,
            x.view(),
            h0.view(),
            Targets::Values(y.view()),
            &mut grads,
        )
        .unwrap();
    assert!(loss.is_finite());
}

/// A compiled schedule can move to another thread (checked at compile time).
const _: () = {
    const fn send<T: Send>() {}
    send::<CompiledSchedule>();
};

#[test]
fn a_run_of_calls_is_one_loop() {
    let cell = Rnn::new(3, 4, &mut Rng::new(5));
    // Store-all: forward steps 1..=8 keeping tapes one tape apart (a loop),
    // step 9 on the working tape and its backward step (two calls), then the
    // backward steps 8..=1 over the tapes (a loop).
    let schedule = schedule(&cell, Policy::StoreAll, 9, Budget::Percent(100.0));
    let layout = layout_for_alpha(schedule.header());
    let text = emit_clif(&Verified::new(schedule).unwrap(), &layout).unwrap();
    let calls = |shim: &str| {
        text.lines()
            .filter(|l| l.contains(&format!("call {shim}(")))
            .count()
    };
    assert_eq!((calls("fn4"), calls("fn5")), (2, 2), "{text}");
    assert_eq!(text.matches("brif").count(), 2, "{text}");
    assert!(text.contains("; 19 calls in 5 runs"), "{text}");
    for run in [
        "8 calls, forward 1: run0 -> run1, tape T0 .. forward 8: run1 -> run0, tape T14",
        "8 calls, backward 8 with T14: grad1 -> grad0 .. backward 1 with T0: grad0 -> grad1",
    ] {
        assert!(text.contains(run), "{run} is not in {text}");
    }
}
