//! One fused elementwise loop as Rust that LLVM vectorises: the loop's
//! temporaries split off scratch and its parameter vectors and gradients
//! sliced once, then one loop over the rows of every array it touches
//! (`chunks_exact`), each view sliced once per row to exactly the loop's
//! width, and a call of `columns`, a local function of those equal-length
//! slices whose loop over the columns runs the ops, each one f32 operation
//! or one call of the runtime's activations; the ops whose value is the same
//! in every column (`LoopOp::is_row_invariant`) run once, before the loop.
//! Passing the slices as arguments tells LLVM that they do not overlap: a loop over a dozen
//! slices is vectorised without run-time overlap checks (which LLVM gives
//! up on past a few slices). Rows call `simd_columns`, which the runtime's
//! `simd_fn!` compiles, with `columns` inlined, for each vector instruction
//! set, running the widest the CPU has, with the same bits (no `mul_add`,
//! no contraction).
//!
//! A view that the loop writes is split off its row with `split_at_mut`,
//! apart from the row's other views, so the code is safe Rust; a loop that
//! writes what it reads is refused.

use std::collections::BTreeMap;

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use super::kernel::{Frame, lit};
use crate::cell_lang::{Binary, Buffer, FusedLoop, LoopOp, Reg, Sink, Temp, Unary, View};

/// An array that a loop walks by rows: a method's buffer or a temporary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Array {
    Buffer(Buffer),
    Temp(usize, usize),
}

/// The views of one array that a loop touches.
struct Rows {
    /// The slice walked: a buffer's name or `t0`, `t1`, ...
    slice: Ident,
    /// Floats per row.
    stride: usize,
    /// Whether the loop writes it.
    writable: bool,
    /// The views as blocks of a row, sorted; one per view until merged.
    blocks: Vec<Block>,
}

/// Columns `start..end` of a row: one stored view, or loaded views that
/// overlap one another.
struct Block {
    start: usize,
    end: usize,
    stored: bool,
    /// `(first column, end column, view index)`.
    views: Vec<(usize, usize, usize)>,
}

/// The loop `l` as one block statement.
pub(super) fn fused(frame: &mut Frame, l: &FusedLoop) -> Result<TokenStream, String> {
    let live = live(l);
    let width = l.width;
    if width == 0 {
        return Ok(TokenStream::new());
    }
    // Each view once, loaded by a live op or stored by a sink, with the
    // columns it spans: the loop's width, or one for a broadcast column.
    let mut views: Vec<(View, bool, usize)> = Vec::new();
    let loaded = l.ops.iter().zip(&live).filter_map(|(op, &live)| match op {
        LoopOp::Load(view) if live => Some((*view, false, width)),
        LoopOp::LoadScalar(view) if live => Some((*view, false, 1)),
        _ => None,
    });
    let stored = l.sinks.iter().filter_map(|s| match s {
        Sink::Store(view, _) => Some((*view, true, width)),
        Sink::AccumulateGrad(..) => None,
    });
    for (view, store, span) in loaded.chain(stored) {
        match views.iter().find(|(v, _, w)| *v == view && *w == span) {
            Some(&(_, s, _)) if s != store => {
                return Err("a loop loads and stores the same elements".into());
            }
            Some(_) => {}
            None => views.push((view, store, span)),
        }
    }
    let arrays = arrays(frame, &views)?;
    // Views are named `v0`, `v1`, ... in the order rows slice them.
    let mut names = vec![format_ident!("v"); views.len()];
    let order: Vec<usize> = (arrays.values())
        .flat_map(|rows| rows.blocks.iter().map(|b| b.views[0].2))
        .collect();
    for (k, &index) in order.iter().enumerate() {
        names[index] = format_ident!("v{}", k);
    }
    let name = |view: View, span: usize| {
        let at = views.iter().position(|(v, _, w)| *v == view && *w == span);
        &names[at.unwrap_or(0)]
    };

    // Before the rows: temporaries, parameter vectors and gradients.
    let mut prelude = temps(frame, &arrays)?;
    let params = slices(
        'p',
        l.ops.iter().zip(&live).filter_map(|(op, &live)| match op {
            LoopOp::Param(offset) if live => Some((*offset, width)),
            LoopOp::ParamScalar(offset) if live => Some((*offset, 1)),
            _ => None,
        }),
    );
    for (&(offset, span), p) in &params {
        let range = frame.params(offset, span, false);
        prelude.extend(quote!(let #p = &params[#range];));
    }
    let grads = slices(
        'g',
        l.sinks.iter().filter_map(|s| match s {
            Sink::AccumulateGrad(offset, _) => Some((*offset, width)),
            Sink::Store(..) => None,
        }),
    );
    prelude.extend(grad_slices(frame, &grads, width)?);

    // The rows, every view sliced once per row.
    let mut walk: Option<(TokenStream, TokenStream)> = None;
    let mut row_views = TokenStream::new();
    for (a, rows) in arrays.values().enumerate() {
        let row = format_ident!("a{}", a);
        let (slice, stride) = (&rows.slice, lit(rows.stride));
        let iter = if rows.writable {
            quote!(#slice.chunks_exact_mut(#stride))
        } else {
            quote!(#slice.chunks_exact(#stride))
        };
        walk = Some(match walk {
            None => (quote!(#row), iter),
            Some((pattern, iters)) => (quote!((#pattern, #row)), quote!(#iters.zip(#iter))),
        });
        row_views.extend(slice_row(&row, rows, &names)?);
    }
    let (pattern, iter) = walk.unwrap_or((quote!(_), quote!(0..batch)));

    // The column loop: the live ops in order, then the sinks in order. The
    // row-invariant ops (`LoopOp::is_row_invariant`) go before it, computed
    // once per row as the interpreter and the JIT compute them: the same
    // operations on the same operands, so the same bits.
    let mut invariant = vec![false; l.ops.len()];
    let (mut before, mut body) = (TokenStream::new(), TokenStream::new());
    for (i, op) in l.ops.iter().enumerate().filter(|&(i, _)| live[i]) {
        let r = format_ident!("r{}", i);
        let value = match *op {
            LoopOp::Load(view) => {
                let v = name(view, width);
                quote!(#v[j])
            }
            LoopOp::LoadScalar(view) => {
                let v = name(view, 1);
                quote!(#v[0])
            }
            LoopOp::Param(offset) => {
                let p = &params[&(offset, width)];
                quote!(#p[j])
            }
            LoopOp::ParamScalar(offset) => {
                let p = &params[&(offset, 1)];
                quote!(#p[0])
            }
            LoopOp::Const(c) => f32_tokens(c),
            LoopOp::Unary(f, a) => unary(f, reg(a)),
            LoopOp::Binary(f, a, b) => binary(f, reg(a), reg(b)),
        };
        let row_invariant = op.is_row_invariant(|a| invariant[a.0 as usize]);
        invariant[i] = row_invariant;
        let ops = if row_invariant {
            &mut before
        } else {
            &mut body
        };
        ops.extend(quote!(let #r = #value;));
    }
    for sink in &l.sinks {
        body.extend(match *sink {
            Sink::Store(view, r) => {
                let (v, r) = (name(view, width), reg(r));
                quote!(#v[j] = #r;)
            }
            Sink::AccumulateGrad(offset, r) => {
                let (g, r) = (&grads[&(offset, width)], reg(r));
                quote!(#g[j] += #r;)
            }
        });
    }
    // The column loop is a function of the row's slices: slice arguments do
    // not alias (LLVM's `noalias`), so LLVM vectorises it without checking
    // at run time whether any two of the many slices overlap.
    let slice = |mutable: bool| match mutable {
        true => quote!(&mut [f32]),
        false => quote!(&[f32]),
    };
    let args: Vec<(&Ident, TokenStream)> = (order.iter())
        .map(|&index| (&names[index], slice(views[index].1)))
        .chain(params.values().map(|p| (p, slice(false))))
        .chain(grads.values().map(|g| (g, slice(true))))
        .collect();
    let (args, types): (Vec<_>, Vec<_>) = args.into_iter().unzip();
    let width = lit(width);
    Ok(quote! {{
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        fn columns(#(#args: #types),*) {
            #before
            for j in 0..#width {
                #body
            }
        }
        __bptt::simd_fn! {
            #[allow(clippy::too_many_arguments)]
            fn simd_columns(#(#args: #types),*) { columns(#(#args),*) }
        }
        #prelude
        for #pattern in #iter {
            #row_views
            simd_columns(#(#args),*);
        }
    }})
}

/// Which ops the sinks need, directly or through other ops (every register
/// is defined before it is read: the program is checked).
fn live(l: &FusedLoop) -> Vec<bool> {
    let n = l.ops.len();
    let mut live = vec![false; n];
    for sink in &l.sinks {
        let (Sink::Store(_, r) | Sink::AccumulateGrad(_, r)) = *sink;
        live[r.0 as usize] = true;
    }
    for i in (0..n).rev() {
        let operands = match l.ops[i] {
            LoopOp::Unary(_, a) => [Some(a), None],
            LoopOp::Binary(_, a, b) => [Some(a), Some(b)],
            _ => [None, None],
        };
        for r in operands.into_iter().flatten() {
            live[r.0 as usize] |= live[i];
        }
    }
    live
}

/// Distinct `(offset, length)` slices, sorted, each with its name: `p0`,
/// `p1`, ... for `prefix` `p`.
fn slices(
    prefix: char,
    offsets: impl Iterator<Item = (usize, usize)>,
) -> BTreeMap<(usize, usize), Ident> {
    let mut offsets: Vec<(usize, usize)> = offsets.collect();
    offsets.sort_unstable();
    offsets.dedup();
    let name = |k| format_ident!("{}{}", prefix, k);
    offsets
        .into_iter()
        .enumerate()
        .map(|(k, o)| (o, name(k)))
        .collect()
}

/// An `f32` constant that reads back as the same bits.
pub(super) fn f32_tokens(v: f32) -> TokenStream {
    if v.is_finite() {
        let lit = Literal::f32_suffixed(v.abs());
        if v.is_sign_negative() {
            quote!(-#lit)
        } else {
            quote!(#lit)
        }
    } else {
        let bits = Literal::u32_suffixed(v.to_bits());
        quote!(f32::from_bits(#bits))
    }
}

/// A register's name.
fn reg(r: Reg) -> Ident {
    format_ident!("r{}", r.0)
}

/// `f(a)`: one f32 operation, or one activation of the runtime.
fn unary(f: Unary, a: Ident) -> TokenStream {
    match f {
        Unary::Neg => quote!(-#a),
        Unary::Sigmoid => quote!(__bptt::sigmoid(#a)),
        Unary::Tanh => quote!(__bptt::tanh(#a)),
        Unary::Exp => quote!(__bptt::exp(#a)),
        Unary::Relu => quote!(if #a > 0.0 { #a } else { 0.0 }),
        Unary::Sqrt => quote!(f32::sqrt(#a)),
        Unary::Abs => quote!(f32::abs(#a)),
        Unary::Log => quote!(__bptt::log(#a)),
        Unary::Softplus => quote!(__bptt::softplus(#a)),
    }
}

/// `f(a, b)`: one f32 operation.
fn binary(f: Binary, a: Ident, b: Ident) -> TokenStream {
    match f {
        Binary::Add => quote!(#a + #b),
        Binary::Sub => quote!(#a - #b),
        Binary::Mul => quote!(#a * #b),
        Binary::ReluGrad => quote!(if #b > 0.0 { #a } else { 0.0 }),
        Binary::Div => quote!(#a / #b),
        Binary::Max => quote!(if #a > #b { #a } else { #b }),
        Binary::Min => quote!(if #a < #b { #a } else { #b }),
        Binary::Greater => quote!(if #a > #b { 1.0f32 } else { 0.0f32 }),
    }
}

/// The arrays that the views live in, temporaries named `t0`, `t1`, ... in
/// order; errors for views outside their array and stores into what the
/// method only reads.
fn arrays(
    frame: &mut Frame,
    views: &[(View, bool, usize)],
) -> Result<BTreeMap<Array, Rows>, String> {
    let mut arrays: BTreeMap<Array, Rows> = BTreeMap::new();
    for (index, &(view, stored, width)) in views.iter().enumerate() {
        let (array, slice, stride, col) = match view {
            // Views are inside their buffers and stores only into what
            // the method writes: the program is checked.
            View::Rows {
                buffer,
                stride,
                col,
            } => {
                let b = frame.buffer(buffer)?;
                (
                    Array::Buffer(buffer),
                    format_ident!("{}", b.name),
                    stride,
                    col,
                )
            }
            View::Temp { temp, col } => (
                Array::Temp(temp.offset, temp.width),
                format_ident!("t"),
                temp.width,
                col,
            ),
        };
        let rows = arrays.entry(array).or_insert(Rows {
            slice,
            stride,
            writable: false,
            blocks: Vec::new(),
        });
        rows.writable |= stored;
        rows.blocks.push(Block {
            start: col,
            end: col + width,
            stored,
            views: vec![(col, col + width, index)],
        });
    }
    let temps = arrays
        .iter_mut()
        .filter(|(a, _)| matches!(a, Array::Temp(..)));
    for (k, (_, rows)) in temps.enumerate() {
        rows.slice = format_ident!("t{}", k);
    }
    for rows in arrays.values_mut() {
        rows.blocks.sort_by_key(|b| b.start);
    }
    Ok(arrays)
}

/// `let t0 = ..;` for the temporaries the loop touches, split off scratch;
/// an error if two overlap.
fn temps(frame: &mut Frame, arrays: &BTreeMap<Array, Rows>) -> Result<TokenStream, String> {
    let mut temps = Vec::new();
    let mut end = 0;
    for (array, rows) in arrays {
        if let Array::Temp(offset, width) = *array {
            if offset < end {
                return Err("a loop touches two temporaries that overlap".into());
            }
            end = offset + width;
            let range = frame.temp(Temp { offset, width });
            temps.push((&rows.slice, range, rows.writable));
        }
    }
    if temps.len() > 1 && temps.iter().any(|t| t.2) {
        let (names, ranges): (Vec<_>, Vec<_>) = temps.into_iter().map(|t| (t.0, t.1)).unzip();
        return Ok(quote! {
            let [#(#names),*] = scratch.get_disjoint_mut([#(#ranges),*]).unwrap();
        });
    }
    Ok(temps
        .into_iter()
        .map(|(t, range, writable)| {
            if writable {
                quote!(let #t = &mut scratch[#range];)
            } else {
                quote!(let #t = &scratch[#range];)
            }
        })
        .collect())
}

/// `let g0 = ..;` for the gradients the loop accumulates into, `width`
/// floats at each offset; an error if two overlap.
fn grad_slices(
    frame: &mut Frame,
    grads: &BTreeMap<(usize, usize), Ident>,
    width: usize,
) -> Result<TokenStream, String> {
    let offsets: Vec<usize> = grads.keys().map(|k| k.0).collect();
    if offsets.windows(2).any(|w| w[1] < w[0] + width) {
        return Err("a loop accumulates into overlapping gradients".into());
    }
    let ranges: Vec<TokenStream> = offsets
        .iter()
        .map(|&o| frame.params(o, width, true))
        .collect();
    let names: Vec<&Ident> = grads.values().collect();
    Ok(match (names.as_slice(), ranges.as_slice()) {
        ([], _) => TokenStream::new(),
        ([g], [range]) => quote!(let #g = &mut grads[#range];),
        _ => quote!(let [#(#names),*] = grads.get_disjoint_mut([#(#ranges),*]).unwrap();),
    })
}

/// The views of the row `row` of `rows`, named as `names` says: `let v0 =
/// &row[..];`, or, in a row the loop writes, blocks split apart with
/// `split_at_mut`.
fn slice_row(row: &Ident, rows: &Rows, names: &[Ident]) -> Result<TokenStream, String> {
    let mut out = TokenStream::new();
    if !rows.writable {
        for block in &rows.blocks {
            let (col, end, index) = block.views[0];
            let (v, start, end) = (&names[index], lit(col), lit(end));
            out.extend(quote!(let #v = &#row[#start..#end];));
        }
        return Ok(out);
    }
    let mut merged: Vec<Block> = Vec::new();
    for block in &rows.blocks {
        match merged.last_mut() {
            Some(last) if block.start < last.end => {
                if last.stored || block.stored {
                    return Err("a loop writes columns of a row that it also reads".into());
                }
                last.end = last.end.max(block.end);
                last.views.extend(&block.views);
            }
            _ => merged.push(Block {
                views: block.views.clone(),
                ..*block
            }),
        }
    }
    let (mut at, last) = (0, merged.len() - 1);
    for (k, block) in merged.iter().enumerate() {
        if block.start > at {
            let skip = lit(block.start - at);
            out.extend(quote!(let (_, #row) = #row.split_at_mut(#skip);));
        }
        let whole = block.views.len() == 1;
        let name = match whole {
            true => names[block.views[0].2].clone(),
            false => format_ident!("{}_{}", row, k),
        };
        let len = lit(block.end - block.start);
        out.extend(if k == last {
            quote!(let #name = &mut #row[..#len];)
        } else {
            quote!(let (#name, #row) = #row.split_at_mut(#len);)
        });
        if !whole {
            for &(col, end, index) in &block.views {
                let v = &names[index];
                let (start, end) = (lit(col - block.start), lit(end - block.start));
                out.extend(quote!(let #v = &#name[#start..#end];));
            }
        }
        at = block.end;
    }
    Ok(out)
}
