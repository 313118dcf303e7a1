//! The emitted item: the cell's struct, its inherent impl (sizes,
//! constructors) and its `impl Cell`.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::quote;
use syn::{Attribute, Visibility};

use super::kernel::{lit, method};
use crate::cell_lang::{CellProgram, Checked};

/// The paragraphs that the struct's documentation gets after the user's:
/// what the cell is and where its parameters live.
fn docs(program: &CellProgram) -> Vec<String> {
    let floats = |n: usize| if n == 1 { "float" } else { "floats" };
    let mut docs = vec![
        format!(
            " The cell `{}` derived from its equations by bptt for {}: a state of {} {} and a \
             tape of {} {} per batch row (alpha = {}).",
            program.name,
            program.sizes_text(),
            program.state_size,
            floats(program.state_size),
            program.tape_size,
            floats(program.tape_size),
            program.alpha(),
        ),
        String::new(),
        format!(
            " Its parameters are one flat vector of {} {}, in this order:",
            program.param_count,
            floats(program.param_count)
        ),
        String::new(),
    ];
    for p in &program.params {
        let shape: Vec<String> = p.shape.iter().map(ToString::to_string).collect();
        let values: Vec<String> = p.init.iter().map(ToString::to_string).collect();
        let init = match values.len() {
            0 => String::new(),
            1 => format!(", initialised to {}", values[0]),
            n => format!(", {n} blocks initialised to [{}]", values.join(", ")),
        };
        docs.push(format!(
            " * `{}`: `[{}]`, floats {}..{}{init}",
            p.name,
            shape.join(", "),
            p.offset,
            p.offset + p.len(),
        ));
    }
    docs
}

/// `Self::new`: every parameter initialised in declaration order as
/// [`CellProgram::init_params`] does, from one `Rng`.
fn new_fn(program: &CellProgram) -> TokenStream {
    let count = lit(program.param_count);
    let random = program.params.iter().any(|p| p.init.is_empty());
    let k = random.then(|| {
        let out = Literal::f32_suffixed(program.output_size.max(1) as f32);
        quote!(let k = 1.0 / f32::sqrt(#out);)
    });
    let fills = program.params.iter().map(|p| {
        let len = lit(p.len());
        match p.init[..] {
            [] => quote!(params.extend((0..#len).map(|_| rng.uniform(-k, k)));),
            [c] => {
                let c = super::fused::f32_tokens(c);
                quote!(params.extend(::core::iter::repeat_n(#c, #len));)
            }
            ref blocks => {
                let values = blocks.iter().map(|&c| super::fused::f32_tokens(c));
                let cols = lit(p.shape[p.shape.len() - 1]);
                let block = lit(p.shape[p.shape.len() - 1] / blocks.len());
                quote!(params.extend((0..#len).map(|f: usize| [#(#values),*][f % #cols / #block]));)
            }
        }
    });
    let unused = (!random).then(|| quote!(let _ = rng;));
    quote! {
        /// A cell with fresh parameters: constants where the definition
        /// gives them, the others drawn in order from
        /// `rng.uniform(-k, k)`, `k = 1/√(output size)`.
        pub fn new(rng: &mut __bptt::Rng) -> Self {
            #unused
            #k
            let mut params = ::std::vec::Vec::with_capacity(#count);
            #(#fills)*
            Self::with(params)
        }
    }
}

/// The struct, its inherent impl and `impl Cell` of a checked program, or
/// what else keeps it from being safe Rust.
pub(super) fn item(
    program: Checked<'_>,
    attrs: &[Attribute],
    vis: &Visibility,
    name: &Ident,
) -> Result<TokenStream, String> {
    let program = program.program();
    let methods = program
        .kernels()
        .into_iter()
        .map(|(m, kernel)| method(program, name, m, kernel))
        .collect::<Result<Vec<_>, _>>()?;
    let separator = attrs
        .iter()
        .any(|a| a.path().is_ident("doc"))
        .then(|| quote!(#[doc = ""]));
    let docs = docs(program);
    let [input, state, output, tape, scratch, count] = [
        program.input_size,
        program.state_size,
        program.output_size,
        program.tape_size,
        program.scratch_size,
        program.param_count,
    ]
    .map(lit);
    let alpha = Literal::f64_suffixed(program.alpha());
    let what = format!("{name} ({})", program.sizes_text());
    let new_fn = new_fn(program);
    let packings = program.packings().into_iter().map(|p| {
        let (offset, rows, cols, transposed) = (lit(p.offset), lit(p.rows), lit(p.cols), p.transposed);
        quote!(__bptt::Packing { offset: #offset, rows: #rows, cols: #cols, transposed: #transposed })
    });
    Ok(quote! {
        #(#attrs)*
        #separator
        #(#[doc = #docs])*
        #vis struct #name {
            params: ::std::vec::Vec<f32>,
            packed: ::bptt_runtime::__private::PackedWeights,
        }

        const _: () = {
            use ::bptt_runtime::__private as __bptt;

            impl #name {
                /// Features per batch row of the input `x`.
                pub const INPUT_SIZE: usize = #input;
                /// Floats per batch row of the state: the states in
                /// declaration order.
                pub const STATE_SIZE: usize = #state;
                /// Floats per batch row of the output a loss reads: the
                /// first state.
                pub const OUTPUT_SIZE: usize = #output;
                /// Floats per batch row of the tape.
                pub const TAPE_SIZE: usize = #tape;
                /// Floats per batch row of scratch.
                pub const SCRATCH_SIZE: usize = #scratch;
                /// Floats in the flat parameter vector.
                pub const PARAM_COUNT: usize = #count;
                /// The tape's size over the state's: the planning model's
                /// alpha.
                pub const ALPHA: f64 = #alpha;

                #new_fn

                /// A cell with the given parameters (layout in the type's
                /// documentation).
                ///
                /// # Errors
                ///
                /// A `ShapeError` unless there are `PARAM_COUNT` of them.
                pub fn from_params(
                    params: ::std::vec::Vec<f32>,
                ) -> ::core::result::Result<Self, __bptt::ShapeError> {
                    __bptt::ShapeError::check(
                        || ::std::string::String::from(#what),
                        Self::PARAM_COUNT,
                        params.len(),
                    )?;
                    ::core::result::Result::Ok(Self::with(params))
                }

                /// The cell with `params` and buffers for the packed
                /// copies of the weights its products read.
                fn with(params: ::std::vec::Vec<f32>) -> Self {
                    let packings = ::std::vec![#(#packings),*];
                    Self { params, packed: __bptt::PackedWeights::new(packings) }
                }
            }

            impl __bptt::Cell for #name {
                fn input_size(&self) -> usize {
                    Self::INPUT_SIZE
                }

                fn state_size(&self) -> usize {
                    Self::STATE_SIZE
                }

                fn tape_size(&self) -> usize {
                    Self::TAPE_SIZE
                }

                fn output_size(&self) -> usize {
                    Self::OUTPUT_SIZE
                }

                fn scratch_size(&self) -> usize {
                    Self::SCRATCH_SIZE
                }

                fn params(&self) -> &[f32] {
                    &self.params
                }

                fn params_mut(&mut self) -> &mut [f32] {
                    self.packed.invalidate();
                    &mut self.params
                }

                fn packed_floats(&self) -> usize {
                    self.packed.floats()
                }

                #(#methods)*
            }
        };
    })
}
