//! One `Cell` method: its signature, its shape checks, and its kernel's
//! instructions as statements, products as `gemm_*_acc` calls on sub-slices.

use std::collections::BTreeSet;

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::quote;

use super::fused;
use crate::cell_lang::{
    Buffer, CellProgram, Instr, Kernel, Matrix, Method, ParamMatrix, RowProduct, Temp,
};

/// How a method sees one of its array arguments.
#[derive(Debug, Clone, Copy)]
pub(super) struct Binding {
    /// The argument, and the slice bound to it: `x`, `h_prev`, ...
    pub name: &'static str,
    /// Floats per row.
    pub width: usize,
    /// Whether the method writes it.
    pub writable: bool,
}

/// What one method binds, and what its kernel has used of it so far.
pub(super) struct Frame<'a> {
    /// The method's name.
    method: &'static str,
    /// The program.
    program: &'a CellProgram,
    /// The array arguments but scratch, in the signature's order.
    buffers: Vec<(Buffer, Binding)>,
    /// Whether the method receives scratch.
    scratch: bool,
    /// Whether the method receives `grads`.
    grads: bool,
    /// The slices the emitted statements name: buffers, `scratch`,
    /// `params`, `grads`, `packed`.
    used: BTreeSet<&'static str>,
}

/// A `usize` literal.
pub(super) fn lit(n: usize) -> Literal {
    Literal::usize_unsuffixed(n)
}

/// `batch · k` as short as it reads.
fn scaled(k: usize) -> TokenStream {
    match k {
        0 => quote!(0),
        1 => quote!(batch),
        k => {
            let k = lit(k);
            quote!(batch * #k)
        }
    }
}

impl<'a> Frame<'a> {
    /// The frame of the `Cell` method that runs `program`'s kernel `method`:
    /// its array arguments in the trait's order, named as the trait names
    /// them; which it may write, and whether it receives scratch, are
    /// [`Method`]'s, which the interpreter and the JIT also follow.
    fn new(program: &'a CellProgram, method: &'static str) -> Self {
        use Buffer::*;
        let m = Method::ALL
            .into_iter()
            .find(|m| m.name() == method)
            .expect("a kernel of a `Cell` method");
        let arguments: &[(Buffer, &'static str)] = match m {
            Method::Forward => &[(Input, "x"), (StatePrev, "h_prev"), (StateNext, "h_next")],
            Method::ForwardTape => &[
                (Input, "x"),
                (StatePrev, "h_prev"),
                (Tape, "tape"),
                (StateNext, "h_next"),
            ],
            Method::StateFromTape => &[(Tape, "tape"), (StateNext, "h")],
            Method::Backward | Method::BackwardDeferred => &[
                (Input, "x"),
                (Tape, "tape"),
                (GradState, "dh"),
                (GradStatePrev, "dh_prev"),
            ],
        };
        let width = |buffer| match buffer {
            Input => program.input_size,
            Tape => program.tape_size,
            _ => program.state_size,
        };
        let buffers = arguments
            .iter()
            .map(|&(buffer, name)| {
                debug_assert!(m.reads(buffer) || m.writes(buffer), "{method} {buffer:?}");
                let writable = m.writes(buffer);
                let width = width(buffer);
                (
                    buffer,
                    Binding {
                        name,
                        width,
                        writable,
                    },
                )
            })
            .collect();
        Frame {
            method,
            program,
            buffers,
            scratch: m.reads(Scratch),
            grads: matches!(m, Method::Backward | Method::BackwardDeferred),
            used: BTreeSet::new(),
        }
    }

    /// The binding of `buffer`, recorded as used.
    pub fn buffer(&mut self, buffer: Buffer) -> Result<Binding, String> {
        let binding = self
            .buffers
            .iter()
            .find(|(b, _)| *b == buffer)
            .map(|&(_, binding)| binding)
            .ok_or_else(|| format!("{buffer:?} is not an argument of `{}`", self.method))?;
        self.used.insert(binding.name);
        Ok(binding)
    }

    /// The range of scratch that holds `temp`, recorded as used (inside
    /// scratch, which the method receives: the program is [`Checked`]).
    ///
    /// [`Checked`]: crate::cell_lang::Checked
    pub fn temp(&mut self, temp: Temp) -> TokenStream {
        self.used.insert("scratch");
        let (start, end) = (scaled(temp.offset), scaled(temp.offset + temp.width));
        quote!(#start..#end)
    }

    /// The range `offset .. offset + len` of the parameters (or of `grads`
    /// when `grad`), recorded as used (inside them: the program is
    /// checked).
    pub fn params(&mut self, offset: usize, len: usize, grad: bool) -> TokenStream {
        self.used.insert(if grad { "grads" } else { "params" });
        let (start, end) = (lit(offset), lit(offset + len));
        quote!(#start..#end)
    }

    /// A matrix product's weight gradient.
    fn weight_grads(&mut self, w: ParamMatrix) -> TokenStream {
        let range = self.params(w.offset, w.rows * w.cols, true);
        quote!(&mut grads[#range])
    }

    /// The packed copy of `w` (`transposed`: of `Wᵀ`) that a product reads.
    fn packed(&mut self, w: ParamMatrix, transposed: bool) -> TokenStream {
        self.used.insert("packed");
        let i = lit(self.program.packing_index(w, transposed));
        quote!(packed.matrix(#i))
    }

    /// A product's read-only operand.
    fn operand(&mut self, a: Matrix) -> Result<TokenStream, String> {
        match a {
            Matrix::Input => {
                self.buffer(Buffer::Input)?;
                Ok(quote!(x))
            }
            Matrix::Temp(t) => {
                let range = self.temp(t);
                Ok(quote!(&scratch[#range]))
            }
        }
    }

    /// A product's operand `a` and the temporary `out` it accumulates into
    /// (of the widths the product needs, apart: the program is checked):
    /// the call `gemm(a, out)` makes of them, in a block that splits scratch
    /// when both live there.
    fn product(
        &mut self,
        a: Matrix,
        out: Temp,
        gemm: impl FnOnce(TokenStream, TokenStream) -> TokenStream,
    ) -> Result<TokenStream, String> {
        let out_range = self.temp(out);
        let Matrix::Temp(t) = a else {
            let a = self.operand(a)?;
            return Ok(gemm(a, quote!(&mut scratch[#out_range])));
        };
        let a_range = self.temp(t);
        let call = gemm(quote!(a), quote!(out));
        Ok(quote! {{
            let [a, out] = scratch.get_disjoint_mut([#a_range, #out_range]).unwrap();
            #call
        }})
    }
}

/// One instruction as a statement.
fn statement(frame: &mut Frame, instr: &Instr) -> Result<TokenStream, String> {
    match instr {
        Instr::MatMul { a, w, out } => {
            let weights = frame.packed(*w, false);
            let (k, n) = (lit(w.rows), lit(w.cols));
            frame.product(
                *a,
                *out,
                |a, out| quote!(__bptt::gemm_nn_packed_acc(batch, #k, #n, #a, #weights, #out);),
            )
        }
        Instr::MatMulT { a, w, out } => {
            let weights = frame.packed(*w, true);
            let (k, n) = (lit(w.cols), lit(w.rows));
            frame.product(
                Matrix::Temp(*a),
                *out,
                |a, out| quote!(__bptt::gemm_nn_packed_acc(batch, #k, #n, #a, #weights, #out);),
            )
        }
        Instr::WeightGrad { a, dy, w } => {
            let a = frame.operand(*a)?;
            let dy = frame.temp(*dy);
            let grads = frame.weight_grads(*w);
            let (m, n) = (lit(w.rows), lit(w.cols));
            Ok(quote!(__bptt::gemm_tn_acc(#m, batch, #n, #a, &scratch[#dy], #grads);))
        }
        Instr::RowSum { a, out } => {
            let width = lit(a.width);
            frame.product(Matrix::Temp(*a), *out, |a, out| {
                quote! {
                    for (row, o) in #a.chunks_exact(#width).zip(#out.iter_mut()) {
                        let mut s = 0.0f32;
                        for &v in row {
                            s += v;
                        }
                        *o = s;
                    }
                }
            })
        }
        Instr::RowProduct {
            op,
            m,
            n,
            a,
            b,
            out,
        } => {
            let (ra, rb, ro) = (frame.temp(*a), frame.temp(*b), frame.temp(*out));
            let variant = match op {
                RowProduct::Outer => quote!(Outer),
                RowProduct::VecMat => quote!(VecMat),
                RowProduct::MatVec => quote!(MatVec),
            };
            let (m, n) = (lit(*m), lit(*n));
            Ok(quote! {
                __bptt::row_product_in(
                    __bptt::RowProduct::#variant, batch, #m, #n, scratch, #ra, #rb, #ro,
                );
            })
        }
        Instr::Loop(l) => fused::fused(frame, l),
    }
}

/// The `Cell` method `method` (`forward`, `forward_tape`, `state_from_tape`,
/// `backward` or `backward_deferred`, with `weight_gradients` beside it)
/// running `kernel`: its signature, the checks of its arguments' shapes,
/// which panic naming both shapes, and the statements. Nothing for
/// `backward_deferred` when the program defers nothing.
pub(super) fn method(
    program: &CellProgram,
    type_name: &Ident,
    method: &'static str,
    kernel: &Kernel,
) -> Result<TokenStream, String> {
    let deferring = method == "backward_deferred";
    if deferring && program.deferred.is_empty() {
        // The trait's default: `backward`.
        return Ok(TokenStream::new());
    }
    let mut frame = Frame::new(program, method);
    let mut statements = kernel
        .instrs
        .iter()
        .enumerate()
        .map(|(i, instr)| {
            statement(&mut frame, instr).map_err(|e| format!("`{method}`, instruction {i}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if deferring {
        statements.push(deferred_operands(&mut frame)?);
    }
    let what = format!("{type_name}::{method}");
    let mut args = Vec::new();
    let mut checks = Vec::new();
    for (_, b) in &frame.buffers {
        let name = Ident::new(b.name, Span::call_site());
        let text = b.name;
        let width = lit(b.width);
        let (ty, rows) = if b.writable {
            (quote!(ArrayViewMut2), quote!(rows_mut))
        } else {
            (quote!(ArrayView2), quote!(rows))
        };
        args.push(quote!(#name: __bptt::#ty<'_, f32>));
        let check = quote!(__bptt::#rows(WHAT, #text, #name, batch, #width));
        checks.push(bind(&frame, b.name, check));
    }
    if frame.grads {
        args.push(quote!(grads: &mut [f32]));
        let count = lit(program.param_count);
        checks.push(quote!(__bptt::check_grads(WHAT, grads, #count);));
    }
    if frame.scratch {
        args.push(quote!(scratch: __bptt::ArrayViewMut2<'_, f32>));
        let width = lit(program.scratch_size);
        let check = quote!(__bptt::scratch_rows(WHAT, scratch, batch, #width));
        checks.push(bind(&frame, "scratch", check));
    }
    let weight_gradients = deferring.then(|| {
        args.push(quote!(operands: __bptt::Operands<'_>));
        weight_gradients(program)
    });
    if frame.used.contains("params") {
        checks.push(quote!(let params: &[f32] = &self.params;));
    }
    if frame.used.contains("packed") {
        checks.push(quote!(let packed = self.packed.get(&self.params);));
    }
    let first = Ident::new(frame.buffers[0].1.name, Span::call_site());
    let body = if frame.grads {
        quote!(#(#statements)*)
    } else {
        by_rows(program, &frame, &statements)
    };
    let method = Ident::new(method, Span::call_site());
    Ok(quote! {
        fn #method(&self, #(#args),*) {
            const WHAT: &str = #what;
            let batch = #first.nrows();
            #(#checks)*
            #body
        }
        #weight_gradients
    })
}

/// `backward_deferred`'s last statement: the step's rows of each deferred
/// product's operands copied into the executor's window, `A` as its
/// operands side by side.
fn deferred_operands(frame: &mut Frame) -> Result<TokenStream, String> {
    let program = frame.program;
    let mut copies = Vec::new();
    let mut names = Vec::new();
    for (i, d) in program.deferred.iter().enumerate() {
        let (a, dy) = (
            Ident::new(&format!("a{i}"), Span::call_site()),
            Ident::new(&format!("d{i}"), Span::call_site()),
        );
        let mut col = 0;
        for operand in &d.a {
            let (src, width) = match *operand {
                Matrix::Input => {
                    let x = frame.buffer(Buffer::Input)?;
                    (quote!(x), x.width)
                }
                Matrix::Temp(t) => {
                    let range = frame.temp(t);
                    (quote!(&scratch[#range]), t.width)
                }
            };
            let (rows, start, end) = (lit(d.w.rows), lit(col), lit(col + width));
            copies.push(quote!(__bptt::scatter_cols(#src, #a, #rows, #start..#end);));
            col += width;
        }
        let range = frame.temp(d.dy);
        copies.push(quote!(#dy.copy_from_slice(&scratch[#range]);));
        names.push(quote!((#a, #dy)));
    }
    let n = lit(names.len());
    Ok(quote! {
        let [#(#names),*] = operands.rows::<#n>();
        #(#copies)*
    })
}

/// `Cell::weight_gradients`: the program's deferred products.
fn weight_gradients(program: &CellProgram) -> TokenStream {
    let products = program.deferred.iter().map(|d| {
        let (rows, cols, weight) = (lit(d.w.rows), lit(d.w.cols), lit(d.w.offset));
        quote!(__bptt::WeightGradient { rows: #rows, cols: #cols, weight: #weight, bias: None })
    });
    let n = lit(program.deferred.len());
    quote! {
        fn weight_gradients(&self) -> &[__bptt::WeightGradient] {
            static PRODUCTS: [__bptt::WeightGradient; #n] = [#(#products),*];
            &PRODUCTS
        }
    }
}

/// A forward method's statements run row-parallel
/// (`bptt_runtime::par_rows_mut`), as `ProgramCell` runs them: each part
/// rebinds `batch` and the slices the statements name to its own rows.
/// Every instruction of a forward kernel works row by row, so the result is
/// bitwise one call's.
fn by_rows(program: &CellProgram, frame: &Frame, statements: &[TokenStream]) -> TokenStream {
    let used = |name: &str| frame.used.contains(name);
    let mut writes = Vec::new();
    let mut names = Vec::new();
    let mut reads = Vec::new();
    for (_, b) in frame.buffers.iter().filter(|(_, b)| used(b.name)) {
        let (name, width) = (Ident::new(b.name, Span::call_site()), lit(b.width));
        if b.writable {
            writes.push(quote!((#name, #width)));
            names.push(name);
        } else {
            reads.push(quote!(let #name = &#name[r.start * #width..r.end * #width];));
        }
    }
    if frame.scratch && used("scratch") {
        let width = lit(program.scratch_size);
        writes.push(quote!((scratch, #width)));
        names.push(Ident::new("scratch", Span::call_site()));
    }
    quote! {
        __bptt::par_rows_mut(batch, [#(#writes),*], |r, [#(#names),*]| {
            #[allow(unused_variables)]
            let batch = r.len();
            #(#reads)*
            #(#statements)*
        });
    }
}

/// `let name = check;` when the statements use `name`, else `check;`.
fn bind(frame: &Frame, name: &'static str, check: TokenStream) -> TokenStream {
    if frame.used.contains(name) {
        let name = Ident::new(name, Span::call_site());
        quote!(let #name = #check;)
    } else {
        quote!(#check;)
    }
}
