//! The arguments of `#[bptt]` and `cell!`'s `#[bptt]` on token streams: a
//! budget given in bytes (`memory`) and its sizes, and the errors of each.

use proc_macro2::TokenStream;
use quote::quote;

use super::*;
use crate::planner::Plan;

/// The tokens as text without spaces.
fn text(tokens: TokenStream) -> String {
    tokens.to_string().replace(' ', "")
}

/// What `#[bptt(args)]` on a unit struct expands to, as text.
fn expanded(args: TokenStream) -> String {
    text(expand(
        args,
        quote!(
            pub struct C;
        ),
    ))
}

/// The messages of the `compile_error!`s of an expansion, or panics if it
/// has none.
fn errors(args: TokenStream) -> String {
    let out = expand(
        args,
        quote!(
            pub struct C;
        ),
    )
    .to_string();
    assert!(out.contains("compile_error"), "no error in {out}");
    out
}

#[test]
fn a_budget_in_bytes_emits_memory_bytes_and_its_check() {
    let out = expanded(quote! {
        seq_len = 100, memory = "64KiB", state_bytes = 1024, working_bytes = 20000, alpha = 3
    });
    assert!(!out.contains("compile_error"), "{out}");
    assert!(out.contains("pubconstMEMORY_BYTES:u64=65536;"), "{out}");
    assert!(
        out.contains("__bptt::check_memory(&layout,0,Self::MEMORY_BYTES,"),
        "{out}"
    );
    // An integer literal is bytes; without `memory` there is no const.
    let out = expanded(quote! {
        seq_len = 100, memory = 65536, state_bytes = 1024, working_bytes = 20000, alpha = 3
    });
    assert!(out.contains("pubconstMEMORY_BYTES:u64=65536;"), "{out}");
    let out = expanded(quote!(seq_len = 100, budget = "5%", alpha = 3));
    assert!(!out.contains("MEMORY_BYTES"), "{out}");
    assert!(!out.contains("check_memory"), "{out}");
}

#[test]
fn the_plan_within_memory_is_the_largest_that_fits() {
    let (args, _) = args::parse(
        quote!(
            seq_len = 100,
            memory = "64KiB",
            state_bytes = 1028,
            working_bytes = 20000,
            alpha = 1.5
        ),
        None,
        Span::call_site(),
    )
    .unwrap();
    let footprint = Footprint {
        state: 1028,
        working: 20_000,
        gradients: 0,
    };
    let alpha = Alpha::new(1.5).unwrap();
    // A tick is half a 257-float state, a stack of t ticks ceil(257 t / 2)
    // floats: 88 ticks (45,232 bytes) fit in the 45,536 bytes left, 89
    // (45,748) do not.
    let stack = |t| footprint.stack(alpha, crate::Ticks(t));
    assert_eq!([stack(87), stack(88), stack(89)], [44_720, 45_232, 45_748]);
    let plan = memory::plan(&args, 65536, &footprint).unwrap();
    let need = footprint.need(&plan);
    assert!(need <= 65536 && plan.peak().0 <= 88, "{need}");
    let more = Plan::new(
        Policy::Msm,
        alpha,
        100,
        Budget::Units(alpha.to_units(crate::Ticks(plan.budget().0 + 1))),
    )
    .unwrap();
    assert!(
        need * 1000 >= 65536 * 999 || footprint.need(&more) > 65536,
        "{need} bytes, and one tick more would fit"
    );
}

#[test]
fn budget_and_memory_are_one_or_the_other() {
    let both = errors(quote! {
        seq_len = 100, budget = 5, memory = "1MiB", state_bytes = 1024, working_bytes = 0, alpha = 3
    });
    assert!(
        both.contains("`budget`") && both.contains("not both"),
        "{both}"
    );
    let neither = errors(quote!(seq_len = 100, alpha = 3));
    assert!(
        neither.contains("missing argument `budget` or `memory`"),
        "{neither}"
    );
}

#[test]
fn memory_needs_its_sizes_and_the_sizes_need_memory() {
    let out = errors(quote!(
        seq_len = 100,
        memory = "1MiB",
        working_bytes = 0,
        alpha = 3
    ));
    assert!(out.contains("missing argument `state_bytes`"), "{out}");
    assert!(!out.contains("missing argument `working_bytes`"), "{out}");
    let out = errors(quote!(
        seq_len = 100,
        budget = 5,
        state_bytes = 1024,
        alpha = 3
    ));
    assert!(
        out.contains("`state_bytes` sizes a budget in bytes"),
        "{out}"
    );
    // The sizes of `cell!` are not the attribute's on a cell type.
    let out = errors(quote! {
        seq_len = 100, memory = "1MiB", batch = 4, classes = 3, alpha = 3
    });
    assert!(
        out.contains("`batch` is an argument of `#[bptt]` in `cell!`"),
        "{out}"
    );
    assert!(out.contains("missing argument `working_bytes`"), "{out}");
    // A state is whole f32s.
    let out = errors(quote! {
        seq_len = 100, memory = "1MiB", state_bytes = 1023, working_bytes = 0, alpha = 3
    });
    assert!(
        out.contains("state_bytes must be a positive multiple of 4"),
        "{out}"
    );
}

#[test]
fn a_memory_below_any_plan_names_both_figures() {
    let out = errors(quote! {
        seq_len = 100, memory = "50kB", state_bytes = 1024, working_bytes = 60000, alpha = 3
    });
    assert!(
        out.contains("memory = 50000 bytes is less than the 60000 bytes that the smallest msm plan of T = 100 needs"),
        "{out}"
    );
    // Store-all has one plan: all of its checkpoints count.
    let out = errors(quote! {
        seq_len = 10, memory = 30000, state_bytes = 1024, working_bytes = 10000, alpha = 3,
        policy = "store-all"
    });
    // 9 tapes of 3 hidden states: 27,648 bytes.
    assert!(
        out.contains("memory = 30000 bytes is less than the 37648 bytes that the smallest store-all plan of T = 10 needs (10000 of working set and 27.0 hidden states"),
        "{out}"
    );
}

#[test]
fn a_size_that_does_not_parse_is_refused() {
    let out = errors(quote! {
        seq_len = 100, memory = "lots", state_bytes = 1024, working_bytes = 0, alpha = 3
    });
    assert!(out.contains("cannot read the size 'lots'"), "{out}");
    let out = errors(quote! {
        seq_len = 100, memory = 1.5, state_bytes = 1024, working_bytes = 0, alpha = 3
    });
    assert!(out.contains("memory must be a size in bytes"), "{out}");
}
