//! The Rust emitter behind `bptt_macros::cell!`: a derived cell as a type
//! with straight-line kernels.
//!
//! ```text
//! bptt_macros::cell! {
//!     /// A minimal gated unit.
//!     #[sizes(input = 8, hidden = 32)]          // required: concrete sizes
//!     #[bptt(seq_len = 100, budget = "5%")]    // optional: also plan a schedule
//!     // or: #[bptt(seq_len = 100, memory = "1MiB", batch = 8, classes = 16)]
//!     pub cell Mgu { size input, hidden; .. }
//! }
//! ```
//!
//! [`expand_cell`] parses the [`CellDef`], takes its `#[sizes(..)]` and
//! `#[bptt(..)]` attributes, [compiles](CellDef::compile) it for the sizes
//! and emits, from the [`CellProgram`]:
//!
//! * `pub struct Mgu { params: Vec<f32>, packed: PackedWeights }` (the
//!   weights packed for the products, refreshed after `params_mut`) with the
//!   definition's other
//!   attributes (doc comments, derives) and visibility, and a generated
//!   paragraph on its sizes and parameter layout;
//! * an inherent impl: the consts `INPUT_SIZE`, `STATE_SIZE`,
//!   `OUTPUT_SIZE`, `TAPE_SIZE`, `SCRATCH_SIZE`, `PARAM_COUNT` and `ALPHA:
//!   f64`, `new(rng: &mut Rng) -> Self` (initialised exactly as
//!   [`CellProgram::init_params`]) and `from_params(Vec<f32>) ->
//!   Result<Self, ShapeError>`;
//! * `impl Cell`, whose four methods are the program's kernels as
//!   straight-line Rust: shape checks, then one statement per instruction, a
//!   call of `gemm_nn_packed_acc` (on a packed `W` or `Wᵀ`) or `gemm_tn_acc`
//!   on sub-slices for a product and one loop over rows
//!   and a column loop over equal-length slices for a fused loop, every op
//!   one f32 operation; so the results are bitwise those of
//!   [`DerivedCell`](crate::cell_lang::DerivedCell) and of the JIT;
//! * with `#[bptt(..)]`, the schedule impl of the [`#[bptt]`](super)
//!   attribute (`train_step` and its consts), planned with the program's
//!   alpha; `alpha =` is refused there, it is the program's.
//!
//! # A budget in bytes
//!
//! `#[bptt(seq_len = T, memory = "1MiB", batch = B, classes = C)]` plans
//! within `memory` bytes for `B` batch rows and a read-out to `C` classes.
//! Every size per row is the program's, so `state_bytes` and
//! `working_bytes` are computed, not given (giving them is an error, as
//! `alpha` is): the working set is the runtime's own layout
//! (`ArenaLayout::from_sizes`) of the program's state, tape, scratch and
//! deferred-window floats and the read-out's scratch (`classes + output`
//! floats a row). The need also counts the gradients the step writes, as
//! `Gradients::zeros` allocates them: the cell's parameters, the
//! read-out's (`(output + 1) × classes`) and `dL/dh0` (`batch × state`), in
//! f32. The plan is the one with the most checkpoints whose arena and
//! gradients fit; `MEMORY_BYTES` is `memory`, and `arena_layout` refuses a
//! batch or a read-out whose arena and gradients exceed it.
//!
//! Generated code names the runtime only through `::bptt_runtime::__private`
//! (the alias `__bptt`), as `#[bptt]` does. [`emit_cell_rust`] gives the
//! same code pretty-printed, for `bptt emit rust --cell FILE`.
//!
//! # Errors
//!
//! Every mistake is a `compile_error!` at the offending token: the cell
//! language's errors at the token that made them
//! ([`CellError::to_syn_error`](crate::cell_lang::CellError::to_syn_error)),
//! the attributes' errors (missing `#[sizes]`, unknown, missing, duplicated
//! or non-integer sizes, `alpha` given, the schedule's arguments) at the
//! attribute or the argument. When the cell cannot be emitted, a
//! placeholder `struct` of its name is, so that uses of the type raise no
//! follow-on errors.

mod attrs;
mod fused;
mod item;
mod kernel;

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Ident, Visibility};

use crate::cell_lang::{CellDef, CellProgram, Checked};

/// A program that the emitter cannot express as safe Rust: one that
/// [`Checked`] refuses (a view outside its buffer, a store into a buffer
/// that the method only reads, overlapping product operands, scratch in
/// `state_from_tape`), or a loop that writes what it reads, or a name that
/// is not a Rust identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot emit cell `{cell}` as Rust: {reason}")]
pub struct EmitError {
    /// The cell's name.
    pub cell: String,
    /// What is wrong, naming the method.
    pub reason: String,
}

impl From<EmitError> for crate::Error {
    fn from(e: EmitError) -> Self {
        crate::Error::Cell(e.to_string())
    }
}

/// The tokens of a derived cell: the struct `name` with `attrs` and `vis`,
/// its inherent impl and its `impl Cell` (see the [module docs](self)).
///
/// # Errors
///
/// An [`EmitError`] if the program breaks one of its invariants.
pub fn cell_tokens(
    program: &CellProgram,
    attrs: &[Attribute],
    vis: &Visibility,
    name: &Ident,
) -> Result<TokenStream, EmitError> {
    let error = |reason| EmitError {
        cell: program.name.clone(),
        reason,
    };
    let checked = Checked::new(program).map_err(error)?;
    item::item(checked, attrs, vis, name).map_err(error)
}

/// [`cell_tokens`] for a `pub struct` named `name` (e.g. `Mgu`),
/// pretty-printed: what `bptt emit rust --cell FILE` prints.
///
/// ```
/// use bptt::cell_lang::CellDef;
/// use bptt::emit::cell::emit_cell_rust;
///
/// let def = CellDef::parse_str(include_str!("../../../cells/rnn.cell")).unwrap();
/// let program = def.compile(&[("input", 3), ("hidden", 4)]).unwrap();
/// let code = emit_cell_rust(&program, "Rnn").unwrap();
/// assert!(code.contains("pub struct Rnn {"));
/// assert!(code.contains("__bptt::gemm_nn_packed_acc("));
/// ```
///
/// # Errors
///
/// An [`EmitError`] if `name` is not an identifier or the program breaks
/// one of its invariants.
pub fn emit_cell_rust(program: &CellProgram, name: &str) -> Result<String, EmitError> {
    let error = |reason: String| EmitError {
        cell: program.name.clone(),
        reason,
    };
    let name = syn::parse_str::<Ident>(name)
        .map_err(|_| error(format!("`{name}` is not a Rust identifier")))?;
    let vis: Visibility = syn::parse_quote!(pub);
    let tokens = cell_tokens(program, &[], &vis, &name)?;
    let file: syn::File = syn::parse2(tokens)
        .map_err(|e| error(format!("the generated code does not parse: {e}")))?;
    Ok(prettyplease::unparse(&file))
}

/// Expands `cell! { .. }`: the macro's whole work, on token streams.
///
/// Returns the cell's struct and impls (and, with `#[bptt(..)]`, its
/// schedule), or `compile_error!`s at the tokens at fault and, when the
/// cell's name is known, a placeholder struct of that name.
pub fn expand_cell(input: TokenStream) -> TokenStream {
    let def = match crate::cell_lang::limits::parse2::<CellDef>(input.clone()) {
        Ok(def) => def,
        Err(e) => {
            let placeholder = crate::cell_lang::limits::parse2::<Header>(input)
                .ok()
                .map(|h| placeholder(&attrs::others(&h.attrs), &h.vis, &h.name));
            let error = e.to_compile_error();
            return quote!(#error #placeholder);
        }
    };
    let others = attrs::others(&def.attrs);
    let fail = |e: syn::Error| {
        let error = e.to_compile_error();
        let placeholder = placeholder(&others, &def.vis, &def.name);
        quote!(#error #placeholder)
    };
    let options = match attrs::read(&def) {
        Ok(options) => options,
        Err(e) => return fail(e),
    };
    let sizes: Vec<(&str, usize)> = options.sizes.iter().map(|(n, v)| (&**n, *v)).collect();
    let program = match def.compile(&sizes) {
        Ok(program) => program,
        Err(e) => return fail(e.to_syn_error()),
    };
    let cell = match cell_tokens(&program, &others, &def.vis, &def.name) {
        Ok(cell) => cell,
        Err(e) => return fail(syn::Error::new(def.name.span(), e)),
    };
    let schedule = options.bptt.map(|(args, at)| {
        super::expand_derived(args, at, &def.name, &program)
            .unwrap_or_else(|e| e.to_compile_error())
    });
    quote!(#cell #schedule)
}

/// A struct of the cell's name and nothing else, emitted with the errors
/// when the cell cannot be, so that uses of the type do not fail too.
fn placeholder(attrs: &[Attribute], vis: &Visibility, name: &Ident) -> TokenStream {
    quote!(#(#attrs)* #vis struct #name {})
}

/// What precedes a cell's body, `#[..] pub cell Name`: enough to emit the
/// placeholder when the rest does not parse.
struct Header {
    attrs: Vec<Attribute>,
    vis: Visibility,
    name: Ident,
}

mod kw {
    syn::custom_keyword!(cell);
}

impl Parse for Header {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        input.parse::<kw::cell>()?;
        let name = input.parse()?;
        input.parse::<TokenStream>()?;
        Ok(Header { attrs, vis, name })
    }
}

#[cfg(test)]
mod tests;
