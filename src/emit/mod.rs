//! The Rust emitter behind the `#[bptt]` attribute.
//!
//! `#[bptt(seq_len = T, budget = M, alpha = A, policy = "msm", name = "...")]`
//! (or `memory = "256MiB", state_bytes = S, working_bytes = W` for `budget`)
//! goes on the struct (or enum, or union) that defines a type implementing
//! [`bptt_runtime::Cell`]: the cell is the unit that the schedule drives, and
//! a type definition works for the runtime's cells in a newtype as well as
//! for a cell written from scratch. At compile time, [`expand`] plans the
//! budget with [`Plan::new`](crate::Plan::new), expands the schedule,
//! proves it ([`Verified`](crate::Verified)) and lowers it to calls on arena
//! regions ([`Lowered`](crate::Lowered)), then emits the item unchanged and an inherent impl whose
//! training-step method is the whole schedule as calls on
//! [`bptt_runtime::Execution`]: each run of calls whose step and slots step
//! by a constant or alternate (see `crate::runs`) one loop, every other
//! call with constant steps and checkpoint slots. Nothing is planned,
//! interpreted or allocated at run time.
//!
//! The proc-macro crate `bptt-macros` is a thin shim over [`expand`]; the
//! command line's `bptt emit rust` prints [`emit_rust`], the same tokens
//! pretty-printed. Its `cell!` macro emits a whole cell from equations and,
//! given `#[bptt(..)]`, this impl too: see [`cell`].
//!
//! # Arguments
//!
//! | argument        | value                                                              | default      |
//! |-----------------|--------------------------------------------------------------------|--------------|
//! | `seq_len`       | integer literal: the sequence length `T`                           | required     |
//! | `budget`        | hidden-state units (`200`, `37.5`, `"200"`) or `"5%"` of store-all | `budget` or `memory` |
//! | `memory`        | bytes a step may hold: `"256MiB"`, `"1.5GB"` ([`crate::parse_bytes`]) or an integer of bytes | `budget` or `memory` |
//! | `state_bytes`   | with `memory`: bytes of one hidden state of the whole batch, `state_size × batch × 4` | with `memory` |
//! | `working_bytes` | with `memory`: bytes of the arena outside the checkpoints, `ArenaLayout::working_bytes()` | with `memory` |
//! | `alpha`         | number `>= 1`: the cell's tape size over its state size            | required     |
//! | `policy`        | `"hsm"`, `"ism"`, `"msm"`, `"store-all"`, `"sqrt"`, `"interval:K"` | `"msm"`      |
//! | `name`          | the training-step method's name, a string or an identifier         | `train_step` |
//!
//! `alpha` is needed at compile time because the cell's sizes are only known
//! at run time; a cell whose tape turns out larger than `alpha` states is
//! refused when its arena is laid out (its checkpoints would break the
//! budget), a smaller one simply uses less memory. A policy may also be a bare
//! identifier (`policy = hsm`).
//!
//! Exactly one of `budget` and `memory` is given. `memory` is a budget in
//! bytes ([`plan_within`](crate::planner::plan_within)): the plan of the
//! policy with the most checkpoints whose `working_bytes` plus checkpoint
//! stack (its peak in ticks, `ceil(ticks × state floats / ticks per
//! state) × 4` bytes, as the arena lays it out) fit. The sizes are the run
//! time's, so they are given (`state_bytes` and `working_bytes`, required
//! with `memory` and refused without it) and checked: `arena_layout`
//! refuses an arena of more than `memory` bytes, which is what a
//! `state_bytes` or `working_bytes` too small for the cell and batch gives.
//! A memory too small for any plan is a compile error at `memory` naming
//! what the smallest plan needs and what was given. In `cell!`, whose sizes
//! are known, `memory` takes `batch` and `classes` instead (see [`cell`]).
//!
//! # What is emitted
//!
//! For `#[bptt(...)] struct MyCell { .. }`: the struct unchanged, then an
//! anonymous `const _: () = { .. };` that scopes the alias
//! `use ::bptt_runtime::__private as __bptt;` (generated code names the
//! runtime through that hidden module only, never the user's imports) and
//! holds `impl MyCell` with:
//!
//! * `pub const SEQ_LEN: u32`, `TICKS_PER_STATE: u32` and `TICKS_PER_TAPE:
//!   u32` (alpha as a fraction), `CAPACITY_TICKS: u32` (the checkpoint
//!   stack: the schedule's peak) and `FORWARD_STEPS: u64`;
//! * with `memory`, `pub const MEMORY_BYTES: u64`: the bytes given;
//! * `pub fn arena_layout(&self, readout: &Readout, batch: usize) ->
//!   Result<ArenaLayout, Mismatch>` and `pub fn new_arena(&self, readout:
//!   &Readout, batch: usize) -> Result<Arena, Mismatch>`, to allocate the
//!   arena once, up front; with `memory`, they refuse (a `Mismatch` naming
//!   `MEMORY_BYTES` and the bytes asked for) an arena of more than
//!   `MEMORY_BYTES` bytes (in `cell!`, the arena and the gradients);
//! * `pub fn train_step(&self, readout: &Readout, arena: &mut Arena, inputs:
//!   ArrayView3<f32>, h0: ArrayView2<f32>, targets: Targets, grads: &mut
//!   Gradients) -> Result<f64, Mismatch>`, which checks that the arena was
//!   laid out for this schedule, starts an `Execution` and runs one statement
//!   per call, e.g. `exec.forward_tape(4, o.run[1], o.tape(1), o.run[0]);`
//!   (`o.tape(1)` is the tape slot at tick 1 of the checkpoint stack, `T1` in
//!   `bptt schedule`), then returns the loss.
//!
//! Methods carry `where Self: Cell` (spanned at the type's name), so a type
//! that is not a cell fails with "the trait bound `MyCell: Cell` is not
//! satisfied" pointing at it. One `#[bptt]` per type: the consts would clash.
//!
//! A schedule of more than [`SEGMENT_CALLS`] statements (calls and loops)
//! is split into nested `#[inline(never)]` functions `segment_0`,
//! `segment_1`, ... of that many statements each, called in order from the
//! method's body: rustc's and LLVM's time grow faster than linearly in one
//! function's size. (When every call was its own statement, T = 10,000's
//! 30,000 calls in one function took 67 s to build in release and 14 s in
//! dev, in segments of 128 calls 4.9 s and 3.6 s; with loops MSM at 5% is
//! about a hundred statements at any T from 10,000 up.)
//!
//! # Expansion time
//!
//! Planning is the expensive part of expansion (1.4 s at T = 10,000 with an
//! optimised planner). Cargo builds proc macros and their dependencies
//! without optimisation by default, which makes it about ten times slower; a
//! crate with long sequences should add
//!
//! ```toml
//! [profile.dev.package.bptt]
//! opt-level = 3
//! [profile.release.package.bptt]
//! opt-level = 3
//! ```
//!
//! # Errors
//!
//! Every error is a `compile_error!` pointing at the argument it is about:
//! unknown, duplicated or missing arguments (missing ones at the attribute),
//! values of the wrong kind, `seq_len = 0`, an unknown policy, alpha below
//! one, a budget too small (the message names the smallest that works),
//! both or neither of `budget` and `memory`, `memory` without its sizes or
//! its sizes without it, a memory below any plan (both figures), and
//! the attribute on an item that is not a type definition (at the item's
//! name). All problems found are reported together. On error the item is
//! emitted unchanged (without further `#[bptt]`s), so that the user's type
//! still exists and no follow-on errors drown the real one.

mod args;
pub mod cell;
mod codegen;
mod memory;

pub use codegen::{SEGMENT_CALLS, statements};

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{Attribute, Generics, Ident, Item};

use crate::cell_lang::CellProgram;
use crate::error::Error;
use crate::policy::Policy;
use crate::units::{Alpha, Budget};
use args::{Amount, Args, Sizes};
use codegen::MemoryCheck;
use memory::Footprint;

/// What `#[bptt(...)]` asks for: the arguments, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The sequence length `T` (`seq_len`).
    pub len: u32,
    /// The checkpoint budget (`budget`).
    pub budget: Budget,
    /// The tape-to-hidden-state size ratio (`alpha`).
    pub alpha: f64,
    /// The policy (`policy`, default MSM).
    pub policy: Policy,
    /// The training step's name (`name`, default `train_step`).
    pub name: Option<String>,
}

impl Spec {
    /// The attribute's arguments as a user writes them, e.g.
    /// `seq_len = 12, budget = 3, alpha = 2, policy = "msm"`.
    pub fn to_args(&self) -> TokenStream {
        let len = proc_macro2::Literal::u32_unsuffixed(self.len);
        let budget = match self.budget {
            Budget::Units(u) => proc_macro2::Literal::string(&u.to_string()),
            Budget::Percent(p) => proc_macro2::Literal::string(&format!("{p}%")),
        };
        let alpha = proc_macro2::Literal::f64_unsuffixed(self.alpha);
        let policy = self.policy.to_string();
        let name = self.name.as_ref().map(|n| quote!(, name = #n));
        quote!(seq_len = #len, budget = #budget, alpha = #alpha, policy = #policy #name)
    }
}

/// The name of the placeholder type [`emit_rust`] emits for.
pub const PLACEHOLDER: &str = "MyCell";

/// Expands `#[bptt(args)] item`: the macro's whole work, on token streams.
///
/// Returns the item unchanged followed by the generated impl, or, when
/// anything is wrong, the item unchanged followed by `compile_error!`s that
/// point at the arguments at fault.
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone(), SEGMENT_CALLS) {
        Ok(generated) => quote!(#item #generated),
        Err(error) => {
            let errors = error.to_compile_error();
            let item = without_bptt(item);
            quote!(#item #errors)
        }
    }
}

/// The item with any further `#[bptt]` attributes removed, so that a failed
/// expansion leaves the user's type as written and triggers no second one.
fn without_bptt(item: TokenStream) -> TokenStream {
    let Ok(mut parsed) = syn::parse2::<Item>(item.clone()) else {
        return item;
    };
    let attrs = match &mut parsed {
        Item::Struct(s) => &mut s.attrs,
        Item::Enum(e) => &mut e.attrs,
        Item::Union(u) => &mut u.attrs,
        _ => return item,
    };
    if !attrs.iter().any(is_bptt) {
        return item;
    }
    attrs.retain(|a| !is_bptt(a));
    parsed.into_token_stream()
}

fn try_expand(
    args: TokenStream,
    item: TokenStream,
    segment_calls: usize,
) -> syn::Result<TokenStream> {
    let parsed_args = args::parse(args, None, Span::call_site());
    let target = target(item);
    let ((args, spans), (ident, generics)) = match (parsed_args, target) {
        (Ok(a), Ok(t)) => (a, t),
        (Err(mut a), Err(t)) => {
            a.combine(t);
            return Err(a);
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    schedule(&args, spans, &ident, &generics, segment_calls, None)
}

/// Plans what `args` ask for (within `memory` bytes with the footprint of
/// the sizes given, or of `program`, the cell of `cell!`) and generates the
/// impl for the type `ident`; a planning error points at the argument at
/// fault.
fn schedule(
    args: &Args,
    spans: args::Spans,
    ident: &Ident,
    generics: &Generics,
    segment_calls: usize,
    program: Option<&CellProgram>,
) -> syn::Result<TokenStream> {
    let at = |e: Error| syn::Error::new(spans.of(&e), e.to_string());
    let (spec, compiled, memory) = match args.amount {
        Amount::Budget(budget) => {
            let spec = args.spec(budget);
            let compiled = codegen::compile(&spec).map_err(at)?;
            (spec, compiled, None)
        }
        Amount::Memory { bytes, sizes } => {
            let alpha = Alpha::new(args.alpha).map_err(at)?;
            let footprint = match (sizes, program) {
                (Sizes::Bytes { state, working }, _) => Footprint {
                    state,
                    working,
                    gradients: 0,
                },
                (Sizes::Rows { batch, classes }, Some(program)) => {
                    Footprint::of_program(program, batch, classes, alpha)
                        .map_err(|e| syn::Error::new(spans.budget, e))?
                }
                (Sizes::Rows { .. }, None) => {
                    return Err(syn::Error::new(
                        spans.budget,
                        "`batch` and `classes` size the cell of `cell!` only",
                    ));
                }
            };
            let plan = memory::plan(args, bytes, &footprint).map_err(at)?;
            let check = MemoryCheck {
                memory: bytes,
                need: footprint.need(&plan),
                gradients: matches!(sizes, Sizes::Rows { .. }),
            };
            let spec = args.spec(Budget::Units(plan.summary().budget));
            let compiled = codegen::compile_plan(plan).map_err(at)?;
            (spec, compiled, Some(check))
        }
    };
    codegen::generate(&spec, &compiled, ident, generics, segment_calls, memory)
        .map_err(|e| syn::Error::new(Span::call_site(), e.to_string()))
}

/// What `#[bptt(args)]` adds to the type `ident` of `program`'s cell
/// (`cell!`, see [`cell`]): the same impl, planned with the program's
/// alpha (`args` may not give `alpha`) and, with `memory`, its sizes; a
/// missing argument is reported at `at` (the attribute).
pub(crate) fn expand_derived(
    args: TokenStream,
    at: Span,
    ident: &Ident,
    program: &CellProgram,
) -> syn::Result<TokenStream> {
    let (args, spans) = args::parse(args, Some(program.alpha()), at)?;
    schedule(
        &args,
        spans,
        ident,
        &Generics::default(),
        SEGMENT_CALLS,
        Some(program),
    )
}

/// Whether an attribute is another `#[bptt]` (by its last path segment).
fn is_bptt(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "bptt")
}

/// The type the attribute applies to: its name and generics, or an error
/// pointing at the item that is not a type definition.
fn target(item: TokenStream) -> syn::Result<(Ident, Generics)> {
    let item: Item = syn::parse2(item)?;
    let (ident, generics, attrs) = match &item {
        Item::Struct(s) => (&s.ident, &s.generics, &s.attrs),
        Item::Enum(e) => (&e.ident, &e.generics, &e.attrs),
        Item::Union(u) => (&u.ident, &u.generics, &u.attrs),
        Item::Impl(imp) => {
            let ty = &imp.self_ty;
            return Err(syn::Error::new(
                ty.span(),
                format!(
                    "#[bptt] goes on the cell's type definition, not on an impl: put it on `struct {}`",
                    ty.to_token_stream().to_string().replace(' ', "")
                ),
            ));
        }
        other => {
            let (span, what) = describe(other);
            return Err(syn::Error::new(
                span,
                format!(
                    "#[bptt] goes on the struct or enum of a recurrent cell (a type that implements bptt_runtime::Cell), not on {what}"
                ),
            ));
        }
    };
    if let Some(again) = attrs.iter().find(|a| is_bptt(a)) {
        return Err(syn::Error::new(
            again.path().span(),
            "one #[bptt] per type: its associated consts and methods would clash (wrap the cell in a newtype for a second schedule)",
        ));
    }
    Ok((ident.clone(), generics.clone()))
}

/// The span of an item's name (or of its keyword when it has none) and a
/// description of an item that is not a type definition.
fn describe(item: &Item) -> (Span, &'static str) {
    match item {
        Item::Fn(f) => (f.sig.ident.span(), "a function"),
        Item::Trait(t) => (t.ident.span(), "a trait"),
        Item::Mod(m) => (m.ident.span(), "a module"),
        Item::Const(c) => (c.ident.span(), "a constant"),
        Item::Static(s) => (s.ident.span(), "a static"),
        Item::Type(t) => (t.ident.span(), "a type alias"),
        Item::TraitAlias(t) => (t.ident.span(), "a trait alias"),
        Item::Use(u) => (u.use_token.span, "a use declaration"),
        Item::ExternCrate(e) => (e.ident.span(), "an extern crate"),
        Item::ForeignMod(f) => (f.abi.extern_token.span, "an extern block"),
        Item::Macro(m) => (m.mac.path.span(), "a macro invocation"),
        other => (other.span(), "this item"),
    }
}

/// The tokens that `#[bptt(spec)]` emits for `item`, or the planning error.
fn generate(spec: &Spec, item: TokenStream, segment_calls: usize) -> Result<TokenStream, Error> {
    let compiled = codegen::compile(spec)?;
    let parsed: Item = syn::parse2(item.clone()).map_err(|e| Error::Verify(e.to_string()))?;
    let (ident, generics) = match &parsed {
        Item::Struct(s) => (&s.ident, &s.generics),
        _ => return Err(Error::Verify("the placeholder is not a struct".into())),
    };
    let generated = codegen::generate(spec, &compiled, ident, generics, segment_calls, None)?;
    Ok(quote!(#item #generated))
}

/// The code that `#[bptt(spec)]` emits on `pub struct MyCell;`, pretty-printed:
/// what `bptt emit rust` prints. Planning errors are returned as they are.
///
/// ```
/// use bptt::{Budget, Policy, emit::{Spec, emit_rust_spec}};
/// let spec = Spec { len: 4, budget: Budget::Units(2.0), alpha: 2.0, policy: Policy::Msm, name: None };
/// let code = emit_rust_spec(&spec).unwrap();
/// assert!(code.contains("pub fn train_step("));
/// assert!(code.contains("exec.backward(4, "));
/// ```
pub fn emit_rust_spec(spec: &Spec) -> Result<String, Error> {
    emit_rust_segmented(spec, SEGMENT_CALLS)
}

/// [`emit_rust_spec`] for a policy, an alpha, a length and a budget: the
/// arguments of `bptt emit rust --len T --budget M --alpha A --policy P`.
pub fn emit_rust(policy: Policy, alpha: f64, len: u32, budget: Budget) -> Result<String, Error> {
    emit_rust_spec(&Spec {
        len,
        budget,
        alpha,
        policy,
        name: None,
    })
}

/// [`emit_rust_spec`] with a given segment length; for measuring rustc's
/// build time against it.
#[doc(hidden)]
pub fn emit_rust_segmented(spec: &Spec, segment_calls: usize) -> Result<String, Error> {
    let placeholder = Ident::new(PLACEHOLDER, Span::call_site());
    let tokens = generate(spec, quote!(pub struct #placeholder;), segment_calls)?;
    let file: syn::File = syn::parse2(tokens).map_err(|e| Error::Verify(e.to_string()))?;
    Ok(prettyplease::unparse(&file))
}

#[cfg(test)]
mod tests;
