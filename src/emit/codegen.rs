//! From a lowered schedule to Rust tokens: the inherent impl that `#[bptt]`
//! adds to a cell's type.

use bptt_runtime::Region;
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{Generics, Ident};

use super::Spec;
use crate::error::Error;
use crate::lower::{Call, Lowered};
use crate::planner::{Plan, PlanSummary};
use crate::runs::{Field, Run, Runs, SlotKind, parts, slot_args};
use crate::schedule::{StreamMemory, Verified};
use crate::units::Alpha;

/// Statements per function (a call, or a loop over a run of calls): a
/// schedule with more is split into segment functions of this many
/// statements each (rustc's time grows faster than linearly in the size of
/// one function; see `bptt::emit`'s docs).
pub const SEGMENT_CALLS: usize = 128;

/// A schedule planned, expanded, verified and lowered for one [`Spec`].
pub(crate) struct Compiled {
    alpha: Alpha,
    summary: PlanSummary,
    capacity: u32,
    lowered: Lowered,
}

/// Plans, expands, verifies and lowers what `spec` asks for.
pub(crate) fn compile(spec: &Spec) -> Result<Compiled, Error> {
    let alpha = Alpha::new(spec.alpha)?;
    compile_plan(Plan::new(spec.policy, alpha, spec.len, spec.budget)?)
}

/// Expands, verifies and lowers `plan`.
pub(crate) fn compile_plan(plan: Plan) -> Result<Compiled, Error> {
    let schedule = Verified::stream(plan.clone())?;
    Ok(Compiled {
        alpha: plan.alpha(),
        summary: plan.summary(),
        capacity: schedule.header().capacity.0,
        lowered: Lowered::new(&schedule),
    })
}

/// A schedule planned within a budget in bytes: what the emitted
/// `MEMORY_BYTES` and `arena_layout` check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemoryCheck {
    /// The bytes given (`memory`).
    pub memory: u64,
    /// What the plan needs of them, for the documentation.
    pub need: u128,
    /// Whether the gradients count (`cell!`): the cell's and the read-out's
    /// parameters and `dL/dh0`, as `Gradients::zeros` allocates them.
    pub gradients: bool,
}

/// A float in hidden-state units, as short as it reads well: `3`, `149.5`,
/// `0.333`.
fn units(x: f64) -> String {
    let text = format!("{x:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

/// The offset expression of a region in generated code: its buffer index
/// or tick a constant, or, in a loop, `index` (an `i64` expression of the
/// iteration) cast to the index's type.
fn region(r: Region, index: Option<&TokenStream>) -> Result<TokenStream, Error> {
    let at = |constant: u32, ty: TokenStream| match index {
        None => {
            let constant = Literal::u32_unsuffixed(constant);
            quote!(#constant)
        }
        Some(e) => quote!(#e as #ty),
    };
    Ok(match r {
        Region::Run(i) => {
            let i = at(u32::from(i), quote!(usize));
            quote!(o.run[#i])
        }
        Region::Grad(i) => {
            let i = at(u32::from(i), quote!(usize));
            quote!(o.grad[#i])
        }
        Region::WorkTape => quote!(o.work),
        Region::Hidden(tick) => {
            let tick = at(tick, quote!(u32));
            quote!(o.hidden(#tick))
        }
        Region::Tape(tick) => {
            let tick = at(tick, quote!(u32));
            quote!(o.tape(#tick))
        }
        other => {
            return Err(Error::Verify(format!(
                "a lowered call names the region {other:?}, which generated code does not address"
            )));
        }
    })
}

/// One call as one statement on `exec`, its step and regions constants.
fn statement(call: &Call) -> Result<TokenStream, Error> {
    let (method, step, regions) = parts(call);
    let method = format_ident!("{method}");
    let mut args: Vec<TokenStream> = step
        .map(|s| {
            let s = Literal::u32_unsuffixed(s);
            quote!(#s)
        })
        .into_iter()
        .collect();
    for r in regions {
        args.push(region(r, None)?);
    }
    Ok(quote!(exec.#method(#(#args),*);))
}

/// A run's field at iteration `i` of its loop, as an `i64` expression that
/// can stand before `as` (written as a person would, so the user crate's
/// lints have nothing to say: `7`, `i`, `(7 + i)`, `(30 - 3 * i)`).
fn field(f: Field) -> TokenStream {
    let lit = Literal::i64_unsuffixed;
    match f {
        Field::Step { start, delta: 0 } => {
            let start = lit(start);
            quote!(#start)
        }
        Field::Step { start, delta } => {
            let magnitude = lit(delta.abs());
            let term = if delta.abs() == 1 {
                quote!(i)
            } else {
                quote!(#magnitude * i)
            };
            let (zero, start) = (start == 0, lit(start));
            match (zero, delta > 0) {
                (true, true) if delta == 1 => quote!(i),
                (true, true) => quote!((#term)),
                (true, false) => quote!((-#term)),
                (false, true) => quote!((#start + #term)),
                (false, false) => quote!((#start - #term)),
            }
        }
        Field::Alternate { first, second } => {
            let (first, second) = (lit(first), lit(second));
            quote!((if i % 2 == 0 { #first } else { #second }))
        }
    }
}

/// A run of more than one call as a loop on `exec`: its step and each
/// region's index or tick computed from the iteration.
fn loop_statement(run: &Run<SlotKind>) -> Result<TokenStream, Error> {
    let (method, step, regions) = parts(&run.first);
    let method = format_ident!("{method}");
    let mut fields = run.fields().iter().copied();
    let mut args = Vec::new();
    if step.is_some() {
        let s = field(fields.next().expect("a step's field"));
        args.push(quote!(#s as u32));
    }
    for (r, f) in regions.into_iter().zip(fields) {
        args.push(region(r, Some(&field(f)))?);
    }
    let count = Literal::i64_unsuffixed(i64::from(run.count));
    Ok(quote!(for i in 0..#count { exec.#method(#(#args),*); }))
}

/// The runs of lowered calls (see `crate::runs`), grouped as they stream.
fn runs(lowered: &Lowered) -> Vec<Run<SlotKind>> {
    let mut runs = Runs::new(true);
    lowered.for_each(&mut StreamMemory::default(), |call| {
        let (kind, args) = slot_args(&call);
        runs.push(call, kind, &args);
    });
    runs.finish().0
}

/// How many statements (calls and loops) the code of `plan`'s schedule
/// holds: what generated code, Rust or Cranelift's, grows with. Streams the
/// schedule once, holding only its runs.
pub fn statements(plan: &Plan) -> Result<usize, Error> {
    Ok(runs(&Lowered::new(&Verified::stream(plan.clone())?)).len())
}

/// The body of the training step after `exec` and `o` exist: each run of
/// calls a statement (one call, or a loop over a run of them), or, past
/// `segment_calls` statements, calls of segment functions that each hold
/// that many of them.
fn body(compiled: &Compiled, segment_calls: usize) -> Result<TokenStream, Error> {
    let statements = runs(&compiled.lowered)
        .iter()
        .map(|run| {
            if run.count == 1 {
                statement(&run.first)
            } else {
                loop_statement(run)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if statements.len() <= segment_calls {
        return Ok(quote!(#(#statements)*));
    }
    let chunks: Vec<&[TokenStream]> = statements.chunks(segment_calls.max(1)).collect();
    let names: Vec<Ident> = (0..chunks.len())
        .map(|i| format_ident!("segment_{}", i))
        .collect();
    let functions = chunks.iter().zip(&names).map(|(chunk, name)| {
        quote! {
            #[inline(never)]
            fn #name(exec: &mut __bptt::Execution<'_>, o: &__bptt::Offsets) {
                #(#chunk)*
            }
        }
    });
    Ok(quote! {
        #(#functions)*
        #(#names(&mut exec, &o);)*
    })
}

/// The one-line description of the plan in the method's documentation.
fn plan_doc(compiled: &Compiled) -> String {
    let s = &compiled.summary;
    let percent = if s.store_all_units > 0.0 {
        format!(
            " ({}% of store-all's {})",
            units(100.0 * s.budget / s.store_all_units),
            units(s.store_all_units)
        )
    } else {
        String::new()
    };
    let (capacity, den) = (compiled.capacity, compiled.alpha.denominator());
    let stack = match (capacity, den) {
        (1, 1) => "1 hidden state".to_string(),
        (c, 1) => format!("{c} hidden states"),
        (c, d) => format!("{c} ticks of 1/{d} hidden state"),
    };
    format!(
        " Planned by `#[bptt]` at compile time: {} at T = {}, alpha = {}, budget {} units{}; \
         {} forward steps ({} per step) and {} backward; checkpoints peak at {} units, \
         a stack of {}.",
        s.policy,
        s.len,
        compiled.alpha,
        units(s.budget),
        percent,
        s.forward_steps,
        units(s.cost_per_step),
        s.backward_steps,
        units(s.peak_units),
        stack,
    )
}

/// The inherent impl for the type `ident` with `generics`, wrapped in an
/// anonymous const that scopes the runtime alias `__bptt`.
pub(crate) fn generate(
    spec: &Spec,
    compiled: &Compiled,
    ident: &Ident,
    generics: &Generics,
    segment_calls: usize,
    memory: Option<MemoryCheck>,
) -> Result<TokenStream, Error> {
    let method = format_ident!("{}", spec.name.as_deref().unwrap_or("train_step"));
    let s = &compiled.summary;
    let len = Literal::u32_unsuffixed(s.len);
    let per_state = Literal::u32_unsuffixed(compiled.alpha.denominator());
    let per_tape = Literal::u32_unsuffixed(compiled.alpha.numerator());
    let capacity = Literal::u32_unsuffixed(compiled.capacity);
    let forward_steps = Literal::u64_unsuffixed(s.forward_steps);
    let body = body(compiled, segment_calls)?;
    let final_grad = region(compiled.lowered.final_grad(), None)?;

    let plan_doc = plan_doc(compiled);
    let len_doc = format!(" The sequence length that `{method}` runs: the `T` of its inputs.");
    let per_state_doc = format!(
        " Ticks per hidden state in the checkpoint stack of `{method}` (the denominator of alpha)."
    );
    let per_tape_doc =
        format!(" Ticks per tape in the checkpoint stack of `{method}` (the numerator of alpha).");
    let capacity_doc = format!(
        " The checkpoint stack of `{method}` in ticks: the schedule's peak, at most the budget."
    );
    let steps_doc = format!(" Forward steps that one `{method}` computes (`T` for store-all).");
    let step_doc = format!(
        " One training step: runs `inputs` (`[{}, batch, input]`) from `h0` (`[batch, state]`) \
         forward and backward through the cell and `readout`, writes the gradients of the mean \
         loss over `targets` into `grads` and returns the loss.",
        s.len
    );

    // The bound that every method carries, spanned at the type's name so that
    // a type that is not a cell is reported there.
    let is_cell = quote_spanned!(ident.span()=> Self: __bptt::Cell);
    let (memory_const, memory_check, memory_error) = memory_items(memory, &method);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    Ok(quote! {
        const _: () = {
            use ::bptt_runtime::__private as __bptt;

            impl #impl_generics #ident #ty_generics #where_clause {
                #[doc = #len_doc]
                pub const SEQ_LEN: u32 = #len;
                #[doc = #per_state_doc]
                pub const TICKS_PER_STATE: u32 = #per_state;
                #[doc = #per_tape_doc]
                pub const TICKS_PER_TAPE: u32 = #per_tape;
                #[doc = #capacity_doc]
                pub const CAPACITY_TICKS: u32 = #capacity;
                #[doc = #steps_doc]
                pub const FORWARD_STEPS: u64 = #forward_steps;
                #memory_const

                /// The layout of the arena that the generated training step
                /// runs in, for a read-out and a batch size.
                ///
                /// # Errors
                ///
                /// A `Mismatch` if the cell's tape is larger than the alpha
                /// the schedule was planned with.
                #memory_error
                pub fn arena_layout(
                    &self,
                    readout: &__bptt::Readout,
                    batch: usize,
                ) -> ::core::result::Result<__bptt::ArenaLayout, __bptt::Mismatch>
                where
                    #is_cell,
                {
                    let layout = __bptt::ArenaLayout::new(
                        self,
                        readout,
                        batch,
                        (Self::TICKS_PER_STATE, Self::TICKS_PER_TAPE),
                        Self::CAPACITY_TICKS,
                    )?;
                    #memory_check
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
                    #is_cell,
                {
                    ::core::result::Result::Ok(__bptt::Arena::new(self.arena_layout(readout, batch)?))
                }

                #[doc = #step_doc]
                ///
                #[doc = #plan_doc]
                ///
                /// # Errors
                ///
                /// A `Mismatch` if the arena was not made by `new_arena` for
                /// this cell, or if a shape does not fit.
                #[allow(clippy::too_many_arguments)]
                pub fn #method(
                    &self,
                    readout: &__bptt::Readout,
                    arena: &mut __bptt::Arena,
                    inputs: __bptt::ArrayView3<'_, f32>,
                    h0: __bptt::ArrayView2<'_, f32>,
                    targets: __bptt::Targets<'_>,
                    grads: &mut __bptt::Gradients,
                ) -> ::core::result::Result<f64, __bptt::Mismatch>
                where
                    #is_cell,
                {
                    __bptt::check_arena(
                        arena.layout(),
                        Self::TICKS_PER_STATE,
                        Self::TICKS_PER_TAPE,
                        Self::CAPACITY_TICKS,
                    )?;
                    let o = __bptt::Offsets::new(arena.layout());
                    let mut exec = __bptt::Execution::start(
                        self, readout, arena, Self::SEQ_LEN, inputs, h0, targets, grads,
                    )?;
                    #body
                    ::core::result::Result::Ok(exec.finish(#final_grad))
                }
            }
        };
    })
}

/// With a budget in bytes: the const `MEMORY_BYTES`, the check of
/// `arena_layout` against it, and the line of its documentation that says
/// so (no tokens without).
fn memory_items(
    memory: Option<MemoryCheck>,
    method: &Ident,
) -> (TokenStream, TokenStream, TokenStream) {
    let Some(m) = memory else {
        return (TokenStream::new(), TokenStream::new(), TokenStream::new());
    };
    let bytes = Literal::u64_unsuffixed(m.memory);
    let (counted, extra, what) = if m.gradients {
        (
            "the arena and the gradients",
            quote! {
                <Self as __bptt::Cell>::params(self).len()
                    + readout.params().len()
                    + batch * <Self as __bptt::Cell>::state_size(self)
            },
            "bytes of the arena and the gradients (cell and read-out parameters, dL/dh0) over MEMORY_BYTES, the memory the schedule was planned within: [memory]",
        )
    } else {
        (
            "the arena",
            quote!(0),
            "bytes of the arena over MEMORY_BYTES, the memory the schedule was planned within (were state_bytes and working_bytes those of this cell and batch?): [memory]",
        )
    };
    let doc = format!(
        " The memory in bytes that `{method}` was planned within (`memory`): the plan with the \
         most checkpoints whose {counted} fit, {} of them at the sizes planned for. \
         `arena_layout` refuses an arena over it.",
        m.need
    );
    let constant = quote! {
        #[doc = #doc]
        pub const MEMORY_BYTES: u64 = #bytes;
    };
    let check = quote! {
        __bptt::check_memory(&layout, #extra, Self::MEMORY_BYTES, #what)?;
    };
    let error = format!(
        " A `Mismatch` naming both figures if {counted} would take more than `MEMORY_BYTES`."
    );
    (constant, check, quote!(#[doc = ""] #[doc = #error]))
}
