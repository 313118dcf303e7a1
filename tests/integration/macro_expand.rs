//! What `#[bptt]` emits: a snapshot of a small expansion, `bptt emit rust`'s
//! output equal to the attribute's expansion for the same arguments, segment
//! splitting, and the error path.

use bptt::emit::{SEGMENT_CALLS, emit_rust, expand};
use bptt::{Alpha, Budget, Error, Lowered, Plan, Policy, Schedule, Verified};
use expect_test::expect;
use proc_macro2::TokenStream;
use quote::quote;

#[test]
fn small_expansion_snapshot() {
    // `bptt schedule --len 6 --budget 3 --alpha 2`: a hidden state at tick 0
    // (H0), a tape stacked above it at tick 1 (T1), and the working tape.
    let code = emit_rust(Policy::Msm, 2.0, 6, Budget::Units(3.0)).unwrap();
    expect![[r#"
        pub struct MyCell;
        const _: () = {
            use ::bptt_runtime::__private as __bptt;
            impl MyCell {
                /// The sequence length that `train_step` runs: the `T` of its inputs.
                pub const SEQ_LEN: u32 = 6;
                /// Ticks per hidden state in the checkpoint stack of `train_step` (the denominator of alpha).
                pub const TICKS_PER_STATE: u32 = 1;
                /// Ticks per tape in the checkpoint stack of `train_step` (the numerator of alpha).
                pub const TICKS_PER_TAPE: u32 = 2;
                /// The checkpoint stack of `train_step` in ticks: the schedule's peak, at most the budget.
                pub const CAPACITY_TICKS: u32 = 3;
                /// Forward steps that one `train_step` computes (`T` for store-all).
                pub const FORWARD_STEPS: u64 = 10;
                /// The layout of the arena that the generated training step
                /// runs in, for a read-out and a batch size.
                ///
                /// # Errors
                ///
                /// A `Mismatch` if the cell's tape is larger than the alpha
                /// the schedule was planned with.
                pub fn arena_layout(
                    &self,
                    readout: &__bptt::Readout,
                    batch: usize,
                ) -> ::core::result::Result<__bptt::ArenaLayout, __bptt::Mismatch>
                where
                    Self: __bptt::Cell,
                {
                    let layout = __bptt::ArenaLayout::new(
                        self,
                        readout,
                        batch,
                        (Self::TICKS_PER_STATE, Self::TICKS_PER_TAPE),
                        Self::CAPACITY_TICKS,
                    )?;
                    ::core::result::Result::Ok(layout)
                }
                /// A zeroed arena for the generated training step: allocate it
                /// once and reuse it for every step.
                ///
                /// # Errors
                ///
                /// As `arena_layout`.
                pub fn new_arena(
                    &self,
                    readout: &__bptt::Readout,
                    batch: usize,
                ) -> ::core::result::Result<__bptt::Arena, __bptt::Mismatch>
                where
                    Self: __bptt::Cell,
                {
                    ::core::result::Result::Ok(
                        __bptt::Arena::new(self.arena_layout(readout, batch)?),
                    )
                }
                /// One training step: runs `inputs` (`[6, batch, input]`) from `h0` (`[batch, state]`) forward and backward through the cell and `readout`, writes the gradients of the mean loss over `targets` into `grads` and returns the loss.
                ///
                /// Planned by `#[bptt]` at compile time: msm at T = 6, alpha = 2, budget 3 units (30% of store-all's 10); 10 forward steps (1.667 per step) and 6 backward; checkpoints peak at 3 units, a stack of 3 hidden states.
                ///
                /// # Errors
                ///
                /// A `Mismatch` if the arena was not made by `new_arena` for
                /// this cell, or if a shape does not fit.
                #[allow(clippy::too_many_arguments)]
                pub fn train_step(
                    &self,
                    readout: &__bptt::Readout,
                    arena: &mut __bptt::Arena,
                    inputs: __bptt::ArrayView3<'_, f32>,
                    h0: __bptt::ArrayView2<'_, f32>,
                    targets: __bptt::Targets<'_>,
                    grads: &mut __bptt::Gradients,
                ) -> ::core::result::Result<f64, __bptt::Mismatch>
                where
                    Self: __bptt::Cell,
                {
                    __bptt::check_arena(
                        arena.layout(),
                        Self::TICKS_PER_STATE,
                        Self::TICKS_PER_TAPE,
                        Self::CAPACITY_TICKS,
                    )?;
                    let o = __bptt::Offsets::new(arena.layout());
                    let mut exec = __bptt::Execution::start(
                        self,
                        readout,
                        arena,
                        Self::SEQ_LEN,
                        inputs,
                        h0,
                        targets,
                        grads,
                    )?;
                    exec.restore_initial(o.run[0]);
                    exec.forward(1, o.run[0], o.run[1]);
                    exec.copy_state(o.run[1], o.hidden(0));
                    exec.forward(2, o.run[1], o.run[0]);
                    exec.forward(3, o.run[0], o.run[1]);
                    exec.forward_tape(4, o.run[1], o.tape(1), o.run[0]);
                    exec.forward(5, o.run[0], o.run[1]);
                    exec.forward_tape(6, o.run[1], o.work, o.run[0]);
                    exec.backward(6, o.work, o.grad[0], o.grad[1]);
                    exec.state_from_tape(o.tape(1), o.run[0]);
                    exec.forward_tape(5, o.run[0], o.work, o.run[1]);
                    exec.backward(5, o.work, o.grad[1], o.grad[0]);
                    exec.backward(4, o.tape(1), o.grad[0], o.grad[1]);
                    exec.copy_state(o.hidden(0), o.run[1]);
                    exec.forward_tape(2, o.run[1], o.tape(1), o.run[0]);
                    exec.forward_tape(3, o.run[0], o.work, o.run[1]);
                    exec.backward(3, o.work, o.grad[1], o.grad[0]);
                    exec.backward(2, o.tape(1), o.grad[0], o.grad[1]);
                    exec.restore_initial(o.run[1]);
                    exec.forward_tape(1, o.run[1], o.work, o.run[0]);
                    exec.backward(1, o.work, o.grad[1], o.grad[0]);
                    ::core::result::Result::Ok(exec.finish(o.grad[0]))
                }
            }
        };
    "#]]
    .assert_eq(&code);
}

/// `bptt emit rust`'s text for its command-line arguments, as a user runs it.
fn command_text(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bptt"))
        .args(["emit", "rust"])
        .args(args)
        .output()
        .expect("bptt runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The attribute as a user writes it and the command line as a user types
/// it give the same code: two parsers (the attribute's tokens and the
/// command's flags) and their defaults must agree, which a change to either
/// alone breaks.
#[test]
fn bptt_emit_rust_prints_the_attributes_expansion() {
    let cases = [
        (
            quote!(seq_len = 6, budget = 3, alpha = 2),
            &["--len", "6", "--budget", "3", "--alpha", "2"][..],
        ),
        (
            quote!(seq_len = 40, budget = "10%", alpha = 3, policy = hsm),
            &[
                "--len", "40", "--budget", "10%", "--alpha", "3", "--policy", "hsm",
            ][..],
        ),
        (
            quote!(
                seq_len = 20,
                budget = "100%",
                alpha = 1.5,
                policy = "store-all"
            ),
            &[
                "--len",
                "20",
                "--budget",
                "100%",
                "--alpha",
                "1.5",
                "--policy",
                "store-all",
            ][..],
        ),
        (
            quote!(seq_len = 300, budget = 4, alpha = 3),
            &["--len", "300", "--budget", "4", "--alpha", "3"][..],
        ),
    ];
    for (attribute, flags) in cases {
        let tokens = expand(
            attribute.clone(),
            quote!(
                pub struct MyCell;
            ),
        );
        let file: syn::File = syn::parse2(tokens).expect("the expansion parses");
        let expanded = prettyplease::unparse(&file);
        assert!(expanded.contains("impl MyCell"), "{attribute}: {expanded}");
        assert_eq!(command_text(flags), expanded, "{attribute} vs {flags:?}");
    }
}

/// The statements on `exec` in a piece of generated code (a call, or the
/// body of a loop over a run of calls).
fn statements(code: &str) -> usize {
    code.lines()
        .filter(|l| l.trim_start().starts_with("exec."))
        .count()
}

/// The calls on `exec` that a piece of generated code makes: a loop's body
/// counts its iterations.
fn calls(code: &str) -> usize {
    let mut iterations = 1;
    let mut total = 0;
    for line in code.lines().map(str::trim_start) {
        if let Some(n) = line
            .strip_prefix("for i in 0..")
            .and_then(|rest| rest.strip_suffix(" {"))
        {
            iterations = n.parse().expect("a loop's count is a literal");
        } else if line.starts_with("exec.") {
            total += iterations;
            iterations = 1;
        }
    }
    total
}

#[test]
fn long_schedules_are_split_into_segments_of_loops_and_calls() {
    let code = emit_rust(Policy::Msm, 3.0, 300, Budget::Units(4.0)).unwrap();
    let plan = Plan::new(
        Policy::Msm,
        Alpha::new(3.0).unwrap(),
        300,
        Budget::Units(4.0),
    )
    .unwrap();
    let lowered = Lowered::new(&Verified::new(Schedule::from_plan(&plan)).unwrap());
    // Every call of the schedule, some in loops; more statements than fit
    // one segment.
    assert_eq!(calls(&code), lowered.count());
    assert!(code.contains("for i in 0.."), "no loop in:\n{code}");
    assert!(statements(&code) > SEGMENT_CALLS);
    assert!(statements(&code) < lowered.count());
    let segments: Vec<&str> = code.split("fn segment_").skip(1).collect();
    assert_eq!(segments.len(), statements(&code).div_ceil(SEGMENT_CALLS));
    for (i, segment) in segments.iter().enumerate() {
        let body = segment.split("\n            }\n").next().unwrap();
        assert!(
            statements(body) <= SEGMENT_CALLS,
            "segment {i} holds {} statements",
            statements(body)
        );
        assert!(
            segment.starts_with(&format!("{i}(")),
            "segments are numbered in order"
        );
    }
    for i in 0..segments.len() {
        assert!(code.contains(&format!("segment_{i}(&mut exec, &o);")));
    }
}

#[test]
fn a_long_regular_schedule_is_a_few_loops() {
    let len = 100_000;
    let code = emit_rust(Policy::Msm, 3.0, len, Budget::Percent(5.0)).unwrap();
    let plan = Plan::new(
        Policy::Msm,
        Alpha::new(3.0).unwrap(),
        len,
        Budget::Percent(5.0),
    )
    .unwrap();
    let lowered = Lowered::new(&Verified::stream(plan).unwrap());
    assert_eq!(calls(&code), lowered.count());
    assert!(
        statements(&code) * 1000 < lowered.count(),
        "{} statements for {} calls",
        statements(&code),
        lowered.count()
    );
}

#[test]
fn short_schedules_are_one_body() {
    // Store-all: restore h0, the forward steps keeping tapes (a loop), the
    // last one on the working tape and its backward step, then the backward
    // steps over the tapes (a loop).
    let len = (SEGMENT_CALLS as u32 - 1) / 2;
    let code = emit_rust(Policy::StoreAll, 3.0, len, Budget::Percent(100.0)).unwrap();
    assert!(!code.contains("fn segment_"));
    assert_eq!(calls(&code), 1 + 2 * len as usize);
    assert_eq!(statements(&code), 5);
    assert_eq!(
        code.matches(&format!("for i in 0..{} {{", len - 1)).count(),
        2
    );
    assert!(code.contains(&format!("exec.forward_tape({len}, ")));
}

#[test]
fn planning_errors_are_returned_as_they_are() {
    let err = emit_rust(Policy::StoreAll, 4.0, 100, Budget::Units(10.0)).unwrap_err();
    assert!(
        matches!(err, Error::Infeasible { minimum, .. } if minimum == 396.0),
        "{err:?}"
    );
    assert!(matches!(
        emit_rust(Policy::Msm, 4.0, 0, Budget::Units(1.0)).unwrap_err(),
        Error::ZeroLength
    ));
}

/// The attribute's output for `args` on `pub struct Kept;`, as text.
fn expand_text(args: TokenStream) -> String {
    expand(
        args,
        quote!(
            pub struct Kept;
        ),
    )
    .to_string()
}

#[test]
fn errors_keep_the_item_and_emit_compile_errors() {
    let out = expand_text(quote!(seq_len = 0, budget = 3, alpha = 2));
    assert!(out.starts_with("pub struct Kept ;"), "{out}");
    assert!(
        out.contains("compile_error") && out.contains("at least 1"),
        "{out}"
    );
    assert!(!out.contains("impl"), "{out}");
    // Every problem is reported, not just the first.
    let out = expand_text(quote!(seq_len = 10, seq_len = 20, colour = 1, alpha = 0.5));
    for message in [
        "duplicate argument `seq_len`",
        "unknown argument `colour`",
        "alpha must be",
        "missing argument `budget`",
    ] {
        assert!(out.contains(message), "{message} in {out}");
    }
    assert_eq!(out.matches("compile_error").count(), 4, "{out}");
}

#[test]
fn the_attribute_refuses_items_that_are_not_types() {
    let out = expand(
        quote!(seq_len = 10, budget = 3, alpha = 2),
        quote!(
            fn train() {}
        ),
    )
    .to_string();
    assert!(out.starts_with("fn train () { }"), "{out}");
    assert!(out.contains("not on a function"), "{out}");
    let out = expand(
        quote!(seq_len = 10, budget = 3, alpha = 2),
        quote!(impl Cell for Mine {}),
    )
    .to_string();
    assert!(out.contains("put it on `struct Mine`"), "{out}");
}

#[test]
fn arguments_accept_their_documented_forms() {
    for args in [
        quote!(seq_len = 1_000, budget = "5%", alpha = 3),
        quote!(seq_len = 1000, budget = 149, alpha = 3.0, policy = msm),
        quote!(
            seq_len = 1000,
            budget = "149",
            alpha = 3,
            policy = "msm",
            name = "train_step"
        ),
        quote!(seq_len = 1000u32, budget = 149.9, alpha = 3, policy = "MSM",),
    ] {
        let out = expand_text(args.clone());
        assert!(!out.contains("compile_error"), "{args}: {out}");
        assert!(
            out.contains("pub const CAPACITY_TICKS : u32 = 149"),
            "{args}: {out}"
        );
    }
    let out = expand_text(quote!(
        seq_len = 20,
        budget = "100%",
        alpha = 2,
        policy = "interval:5",
        name = step
    ));
    assert!(out.contains("pub fn step ("), "{out}");
}
