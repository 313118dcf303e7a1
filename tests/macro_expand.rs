//! What `#[bptt]` emits: a snapshot of a small expansion, `bptt emit rust`'s
//! text equal to the macro's tokens, segment splitting, and the error path.

use bptt::emit::{SEGMENT_CALLS, Spec, emit_rust, emit_rust_spec, expand};
use bptt::{Alpha, Budget, Error, Plan, Policy, Schedule, lower};
use expect_test::expect;
use proc_macro2::TokenStream;
use quote::quote;

/// The macro's output for `spec` on `pub struct MyCell;`, pretty-printed.
fn macro_text(spec: &Spec) -> String {
    let tokens = expand(spec.to_args(), quote!(pub struct MyCell;));
    let file: syn::File = syn::parse2(tokens).expect("the expansion parses");
    prettyplease::unparse(&file)
}

#[test]
fn small_expansion_snapshot() {
    let code = emit_rust(Policy::Msm, 2.0, 6, Budget::Units(2.0)).unwrap();
    expect![[r#""#]]
    .assert_eq(&code);
}

#[test]
fn emit_rust_is_exactly_the_macro_expansion() {
    let specs = [
        (Policy::Msm, 2.0, 6, Budget::Units(2.0), None),
        (Policy::Hsm, 3.0, 40, Budget::Percent(10.0), Some("step")),
        (Policy::StoreAll, 1.5, 20, Budget::Percent(100.0), None),
        (Policy::Msm, 3.0, 300, Budget::Units(4.0), None),
    ];
    for (policy, alpha, len, budget, name) in specs {
        let spec = Spec {
            len,
            budget,
            alpha,
            policy,
            name: name.map(str::to_string),
        };
        assert_eq!(macro_text(&spec), emit_rust_spec(&spec).unwrap(), "{spec:?}");
    }
}

/// The number of calls on `exec` in a piece of generated code.
fn calls(code: &str) -> usize {
    code.lines().filter(|l| l.trim_start().starts_with("exec.")).count()
}

#[test]
fn long_schedules_are_split_into_straight_line_segments() {
    let code = emit_rust(Policy::Msm, 3.0, 300, Budget::Units(4.0)).unwrap();
    let plan = Plan::new(Policy::Msm, Alpha::new(3.0).unwrap(), 300, Budget::Units(4.0)).unwrap();
    let lowered = lower(&Schedule::from_plan(&plan));
    assert!(lowered.calls.len() > SEGMENT_CALLS);
    assert_eq!(calls(&code), lowered.calls.len());
    let segments: Vec<&str> = code.split("fn segment_").skip(1).collect();
    assert_eq!(segments.len(), lowered.calls.len().div_ceil(SEGMENT_CALLS));
    for (i, segment) in segments.iter().enumerate() {
        let body = segment.split("\n            }\n").next().unwrap();
        assert!(calls(body) <= SEGMENT_CALLS, "segment {i} holds {} calls", calls(body));
        assert!(segment.starts_with(&format!("{i}(")), "segments are numbered in order");
    }
    for i in 0..segments.len() {
        assert!(code.contains(&format!("segment_{i}(&mut exec, &o);")));
    }
}

#[test]
fn short_schedules_are_one_straight_line_body() {
    let code = emit_rust(Policy::StoreAll, 3.0, 100, Budget::Percent(100.0)).unwrap();
    assert!(!code.contains("fn segment_"));
    // Restore h0, T forward steps with their tapes, T backward steps.
    assert_eq!(calls(&code), 1 + 100 + 100);
    assert!(code.contains("exec.forward_tape(100, "));
    assert!(code.contains("exec.backward(1, o.tape(0), "));
}

#[test]
fn planning_errors_are_returned_as_they_are() {
    let err = emit_rust(Policy::StoreAll, 4.0, 100, Budget::Units(10.0)).unwrap_err();
    assert!(matches!(err, Error::Infeasible { minimum, .. } if minimum == 396.0), "{err:?}");
    assert_eq!(emit_rust(Policy::Msm, 4.0, 0, Budget::Units(1.0)).unwrap_err(), Error::ZeroLength);
}

/// The attribute's output for `args` on `pub struct Kept;`, as text.
fn expand_text(args: TokenStream) -> String {
    expand(args, quote!(pub struct Kept;)).to_string()
}

#[test]
fn errors_keep_the_item_and_emit_compile_errors() {
    let out = expand_text(quote!(seq_len = 0, budget = 3, alpha = 2));
    assert!(out.starts_with("pub struct Kept ;"), "{out}");
    assert!(out.contains("compile_error") && out.contains("at least 1"), "{out}");
    assert!(!out.contains("impl"), "{out}");
    // Every problem is reported, not just the first.
    let out = expand_text(quote!(seq_len = 10, seq_len = 20, colour = 1, alpha = 0.5));
    for message in ["duplicate argument `seq_len`", "unknown argument `colour`", "alpha must be", "missing argument `budget`"] {
        assert!(out.contains(message), "{message} in {out}");
    }
    assert_eq!(out.matches("compile_error").count(), 4, "{out}");
}

#[test]
fn the_attribute_refuses_items_that_are_not_types() {
    let out = expand(quote!(seq_len = 10, budget = 3, alpha = 2), quote!(fn train() {})).to_string();
    assert!(out.starts_with("fn train () { }"), "{out}");
    assert!(out.contains("not on a function"), "{out}");
    let out = expand(quote!(seq_len = 10, budget = 3, alpha = 2), quote!(impl Cell for Mine {})).to_string();
    assert!(out.contains("put it on `struct Mine`"), "{out}");
}

#[test]
fn arguments_accept_their_documented_forms() {
    for args in [
        quote!(seq_len = 1_000, budget = "5%", alpha = 3),
        quote!(seq_len = 1000, budget = 149, alpha = 3.0, policy = msm),
        quote!(seq_len = 1000, budget = "149", alpha = 3, policy = "msm", name = "train_step"),
        quote!(seq_len = 1000u32, budget = 149.9, alpha = 3, policy = "MSM",),
    ] {
        let out = expand_text(args.clone());
        assert!(!out.contains("compile_error"), "{args}: {out}");
        assert!(out.contains("pub const CAPACITY_TICKS : u32 = 149"), "{args}: {out}");
    }
    let out = expand_text(quote!(seq_len = 20, budget = "100%", alpha = 2, policy = "interval:5", name = step));
    assert!(out.contains("pub fn step ("), "{out}");
}
