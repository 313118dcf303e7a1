//! Cells as equations: write a recurrent cell's step, and bptt derives its
//! backward pass, chooses its tape, computes its alpha and generates its
//! kernels.
//!
//! # The language
//!
//! A cell is Rust-like text, the same whether it is read from a file at run
//! time ([`CellDef::parse_str`]) or written inside the `bptt_macros::cell!`
//! macro (one parser, on `syn`, serves both):
//!
//! ```text
//! cell lstm {
//!     size input, hidden;                       // size names, bound later
//!     input x: [input];                         // one input, per batch row
//!     state h: [hidden];                        // states, in order: the first is the output
//!     state c: [hidden];
//!     param w_x: [input, 4 * hidden];           // matrices [rows, cols] and vectors [n]
//!     param w_h: [hidden, 4 * hidden];
//!     param b: [4 * hidden];                    // `= 1.0` would initialise it to a constant
//!
//!     let (i, f, g, o) = split(matmul(x, w_x) + matmul(h, w_h) + b);
//!     let c_next = sigmoid(f) * c + sigmoid(i) * tanh(g);
//!     h = sigmoid(o) * tanh(c_next);            // each state is assigned once
//!     c = c_next;
//! }
//! ```
//!
//! * Every value is a batch of rows of features; shapes are sums of
//!   multiples of size names (`input + hidden`, `4 * hidden`).
//! * Several inputs (`input a: [input]; input b: [hidden];`) are
//!   consecutive column blocks of the step's one `x`, in declaration order
//!   (`x` is `[input + hidden]` here). A cell trained by `bptt train --cell`
//!   has one input, bound to the task's.
//! * `matmul(a, w)`: rows of `a` (`[k]`) times a parameter matrix `[k, n]`;
//!   `a` may be a `concat(..)`, which becomes one product per part.
//! * `a + b`, `a - b`, `a * b`, `a / b`, `-a`, `max(a, b)`, `min(a, b)`
//!   elementwise on equal shapes; a parameter vector is broadcast over the
//!   batch, a `[1]` value (a parameter, a state, a sum) over the features of
//!   the other operand, a number (`1.0`) over everything.
//! * `sigmoid`, `tanh`, `relu`, `exp`, `log`, `softplus`, `sqrt`, `rsqrt`
//!   (`1 / sqrt(a)`), `abs`, `square` (`a * a`).
//! * `sum(a)` and `mean(a)` over the features: `[1]`, added left to right
//!   (`mean` divides the sum by the width).
//! * `concat(a, b, ..)` along features; `split(a)` into as many equal parts
//!   as the `let (..)` names, or `split(a, [n1, n2, ..])` into given widths.
//!   An equal split that the symbols do not prove (`split(concat(x, h))`)
//!   is accepted when the bound sizes cut it at the concatenation's part
//!   boundaries, each part keeping its parts' shapes (`[input]`, `[hidden]`).
//! * A state may be a matrix per batch row: `state s: [key, value];` is
//!   stored row-major, `key · value` features of the state row (so it
//!   counts `key · value` floats of the state and of alpha's sizes).
//!   Elementwise operations, the functions above, a `[1]` value and a
//!   number apply to matrices as to vectors; two operands must have equal
//!   shapes (`[key, value]` never meets `[key]` or `[value, key]`).
//! * `outer(k, v)`: `[a]` and `[b]` give the matrix `[a, b]` of `k[i] · v[j]`.
//! * `matmul(q, s)` with `s` a matrix value (not a parameter): `[a]` times
//!   `[a, b]` gives `[b]` (`qᵀ s`); `matmul(s, v)`: `[a, b]` times `[b]`
//!   gives `[a]` (`s v`); `matmul(p, s)`: `[a, b]` times `[b, c]` gives
//!   `[a, c]`, per batch row, row `i` computed as `matmul(p[i, :], s)`.
//!   The product of two vectors is refused (`sum(a * b)` is a dot product).
//! * `scale_rows(g, s)`: `[a]` and `[a, b]` give `[a, b]`, row `i` of `s`
//!   times `g[i]` (a decay per key). A `[a]` vector does not broadcast over
//!   a matrix implicitly: over `[key, key]` it would be ambiguous. It is
//!   `outer(g, 1) * s`, so `g`'s gradient is the row sums of `dy · s`; the
//!   spread `[a, b]` decay is recomputed from `g`, never stored: the tape
//!   keeps `g` (a `[1]` decay, `g * s`, keeps one float per row).
//! * Inputs are vectors; `sum`, `mean`, `concat` and `split` take vectors.
//! * `param b: [4 * hidden] = 1.0;` starts every float at a constant;
//!   `= [0, 1, 0, 0]` cuts the last dimension into as many equal blocks and
//!   starts each at its value (a fused LSTM bias with its forget gate at 1).
//! * A state's name always means its value at the start of the step; an
//!   assignment `h = ..` gives the new value, once per state. Reading a
//!   state after assigning it is an error: bind the new value with `let`.
//!
//! Numerically careful forms, chosen once: a normalisation takes the
//! variance as `mean(square(a - mean(a)))`, two passes, never
//! `mean(square(a)) - square(mean(a))`, which cancels; `softplus(a)` is
//! `max(a, 0) + log1p(exp(-|a|))` (no overflow, and `e^a` kept for very
//! negative `a`), its derivative `sigmoid(a)`; `rsqrt` and `/` are IEEE
//! operations, so every backend rounds them alike. The products of matrix
//! values (`outer`, `matmul` of activations, and the ones their gradients
//! need) call one runtime kernel,
//! [`bptt_runtime::kernels::row_product`], which fixes every element's
//! order of operations, from every backend.
//!
//! A matrix memory, `cells/linear_attention.cell`:
//!
//! ```text
//! cell linear_attention {
//!     size input, key, value;
//!     input x: [input];
//!     state h: [value];                 // the read-out reads the first state
//!     state s: [key, value];
//!     param w_q: [input, key];
//!     param w_k: [input, key];
//!     param w_v: [input, value];
//!     param w_g: [input, 1];
//!     param b_g: [1] = 3.0;
//!
//!     let q = matmul(x, w_q);
//!     let k = matmul(x, w_k);
//!     let v = matmul(x, w_v);
//!     let g = sigmoid(matmul(x, w_g) + b_g);
//!     let s_next = g * s + outer(k, v);   // a learned decay, then a write
//!     s = s_next;
//!     h = matmul(q, s_next);              // a read: qᵀ s, `[value]`
//! }
//! ```
//!
//! # What is derived
//!
//! [`CellDef::compile`] binds the sizes, builds the step's graph, simplifies
//! it, differentiates it in reverse mode, chooses the tape (the fewest
//! floats from which the backward pass and the new state can be recomputed
//! without products by parameter matrices; among those, the one that
//! recomputes least), and lowers
//! all four of a cell's methods into a [`CellProgram`] of matrix products and
//! fused elementwise loops. [`DerivedCell`] runs that program as a
//! [`bptt_runtime::Cell`]; `bptt::jit` compiles it with Cranelift and
//! `bptt_macros::cell!` emits it as Rust.

#[doc(hidden)]
pub mod program;

pub use program::{CellProgram, ParamSlot, Slot};
// The instruction-level IR: what the engines and emitters consume, public
// for them and for tests that build programs by hand, not for users.
#[doc(hidden)]
pub use program::{
    Binary, Buffer, DeferredProduct, FusedLoop, Instr, Kernel, LoopOp, Matrix, ParamMatrix, Reg,
    RowProduct, Sink, Temp, Unary, View,
};

mod build;
mod cell;
mod check;
mod compile;
mod defer;
mod diff;
mod error;
mod eval;
mod file;
mod graph;
pub mod limits;
mod lower;
mod method;
mod syntax;
mod tape;

pub use cell::{Buf, CellEngine, Frame, ProgramCell};
pub use check::Checked;
pub use error::CellError;
pub use eval::{DerivedCell, Interpreted};
pub use file::{compile_file, load};
pub use method::Method;
pub use syntax::{BinaryOp, CellDef, Decl, Expr, ParamDecl, SizeExpr, Stmt};
