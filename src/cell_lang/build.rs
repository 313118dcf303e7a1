//! From a [`CellDef`] and concrete sizes to the forward graph: names
//! resolved, shapes checked symbolically (so `[input]` and `[hidden]` differ
//! even when both are 8), parameters laid out.

use std::collections::HashMap;

use proc_macro2::Span;
use syn::Ident;

use super::error::CellError;
use super::graph::{Graph, Id, Op, Term};
use super::program::{Binary, ParamMatrix, ParamSlot, RowProduct, Slot, Unary};
use super::syntax::{BinaryOp, CellDef, Decl, Expr, SizeExpr, Stmt};

/// The forward step as a graph, with the cell's layouts.
pub(crate) struct Forward {
    pub graph: Graph,
    pub input_size: usize,
    pub states: Vec<Slot>,
    /// The new value of each state.
    pub outputs: Vec<Id>,
    pub params: Vec<ParamSlot>,
    /// The names the definition gives nodes (`let`s, states, the input).
    pub labels: HashMap<Id, String>,
}

/// A value during elaboration.
#[derive(Clone)]
enum Value {
    /// A batch of rows of this shape.
    Rows(Id, SizeExpr),
    /// A batch of matrices `[rows, cols]`, one per batch row, each stored
    /// row-major as `rows · cols` features.
    Grid(Id, SizeExpr, SizeExpr),
    /// A parameter vector (broadcast over rows when used).
    Vector(usize, SizeExpr),
    /// A parameter matrix with its symbolic rows and columns.
    Matrix(ParamMatrix, SizeExpr, SizeExpr),
    /// A number.
    Number(f32),
    /// The widths argument of `split`.
    Sizes(Vec<SizeExpr>),
}

struct Elaborator<'a> {
    sizes: HashMap<String, usize>,
    graph: Graph,
    names: HashMap<String, Value>,
    states: &'a [Decl],
    assigned: Vec<Option<Id>>,
    labels: HashMap<Id, String>,
    /// The symbolic shapes of the parts of each `concat(..)` written, for
    /// splits whose equal parts only the bound sizes prove.
    concats: HashMap<Id, Vec<SizeExpr>>,
}

/// The largest width a value may have, in floats per row (2^24).
const MAX_WIDTH: i64 = 1 << 24;
/// The most floats the parameters may hold together (2^30, 4 GiB).
const MAX_PARAMS: usize = 1 << 30;

fn err(span: Span, msg: impl Into<String>) -> CellError {
    CellError::new(span, msg)
}

fn shape_text(shape: &[SizeExpr]) -> String {
    let dims: Vec<String> = shape.iter().map(|s| s.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

impl Elaborator<'_> {
    fn eval(&self, s: &SizeExpr, span: Span, what: &str) -> Result<usize, CellError> {
        let mut v = i128::from(s.constant);
        for (name, c) in &s.terms {
            let Some(&n) = self.sizes.get(name) else {
                let known: Vec<&String> = self.sizes.keys().collect();
                return Err(err(
                    span,
                    format!("unknown size `{name}` in the shape of {what} (sizes: {known:?})"),
                ));
            };
            v += i128::from(*c) * n as i128;
        }
        if v < 1 {
            return Err(err(
                span,
                format!(
                    "the shape of {what} has `{s}` = {v} with these sizes; every size must be at least 1"
                ),
            ));
        }
        if v > i128::from(MAX_WIDTH) {
            return Err(err(
                span,
                format!(
                    "the shape of {what} has `{s}` = {v} with these sizes; at most {MAX_WIDTH}"
                ),
            ));
        }
        Ok(v as usize)
    }

    /// The floats per batch row of a value of `shape` (a vector or a
    /// matrix), at most [`MAX_WIDTH`].
    fn width(&self, shape: &[SizeExpr], span: Span, what: &str) -> Result<usize, CellError> {
        let mut width = 1usize;
        for s in shape {
            width = width.saturating_mul(self.eval(s, span, what)?);
        }
        if width > MAX_WIDTH as usize {
            return Err(err(
                span,
                format!(
                    "{what} is {} = {width} floats per row with these sizes; at most {MAX_WIDTH}",
                    shape_text(shape)
                ),
            ));
        }
        Ok(width)
    }

    /// A vector (`Rows`) or matrix (`Grid`) value of node `id`.
    fn value(id: Id, mut shape: Vec<SizeExpr>) -> Value {
        match shape.len() {
            1 => Value::Rows(id, shape.remove(0)),
            _ => {
                let cols = shape.remove(1);
                Value::Grid(id, shape.remove(0), cols)
            }
        }
    }

    /// A vector or a matrix per batch row, with its shape.
    fn tensor(
        &mut self,
        v: &Value,
        span: Span,
        what: &str,
    ) -> Result<(Id, Vec<SizeExpr>), CellError> {
        match v {
            Value::Grid(id, r, c) => Ok((*id, vec![r.clone(), c.clone()])),
            v => self.rows_of(v, span, what).map(|(id, s)| (id, vec![s])),
        }
    }

    fn rows_of(&mut self, v: &Value, span: Span, what: &str) -> Result<(Id, SizeExpr), CellError> {
        match v {
            Value::Rows(id, s) => Ok((*id, s.clone())),
            Value::Grid(_, r, c) => Err(err(
                span,
                format!(
                    "{what} is a matrix {} per row, expected a vector: matrices take elementwise \
                     operations, `outer`, `matmul` and `scale_rows`",
                    shape_text(&[r.clone(), c.clone()])
                ),
            )),
            Value::Vector(offset, s) => {
                let w = self.eval(s, span, what)?;
                Ok((self.graph.raw(Op::Param(*offset), w), s.clone()))
            }
            Value::Matrix(..) => Err(err(
                span,
                format!("{what} is a parameter matrix: use it as `matmul(rows, {what})`"),
            )),
            Value::Number(_) => Err(err(
                span,
                format!("{what} is a number, expected rows of features"),
            )),
            Value::Sizes(_) => Err(err(
                span,
                format!("{what} is a list of sizes, expected rows of features"),
            )),
        }
    }

    fn expr(&mut self, e: &Expr) -> Result<Value, CellError> {
        match e {
            Expr::Name(name) => self.lookup(name),
            Expr::Number(v, _) => Ok(Value::Number(*v)),
            Expr::Sizes(s, _) => Ok(Value::Sizes(s.clone())),
            Expr::Neg(a, span) => {
                let a = self.expr(a)?;
                if let Value::Number(v) = a {
                    return Ok(Value::Number(-v));
                }
                let (id, s) = self.tensor(&a, *span, "the operand of `-`")?;
                Ok(Self::value(self.graph.unary(Unary::Neg, id), s))
            }
            Expr::Binary(op, a, b, span) => self.binary(*op, a, b, *span),
            Expr::Call(f, args, span) => self.call(f, args, *span),
        }
    }

    fn lookup(&mut self, name: &Ident) -> Result<Value, CellError> {
        let key = name.to_string();
        if let Some(i) = self.states.iter().position(|s| s.name == key)
            && self.assigned[i].is_some()
            && !self.names.contains_key(&format!("let {key}"))
        {
            return Err(err(
                name.span(),
                format!(
                    "state `{key}` is read after its new value is assigned; bind the new value with `let` and use that"
                ),
            ));
        }
        self.names
            .get(&format!("let {key}"))
            .or_else(|| self.names.get(&key))
            .cloned()
            .ok_or_else(|| {
                err(
                    name.span(),
                    format!("unknown name `{key}`: not the input, a state, a parameter or a `let`"),
                )
            })
    }

    fn binary(&mut self, op: BinaryOp, a: &Expr, b: &Expr, span: Span) -> Result<Value, CellError> {
        let f = match op {
            BinaryOp::Add => Binary::Add,
            BinaryOp::Sub => Binary::Sub,
            BinaryOp::Mul => Binary::Mul,
            BinaryOp::Div => Binary::Div,
        };
        let (va, vb) = (self.expr(a)?, self.expr(b)?);
        self.combine(f, (&va, a.span()), (&vb, b.span()), span)
    }

    /// `f(a, b)` elementwise: equal shapes, or a `[1]` operand or a number
    /// broadcast over the other.
    fn combine(
        &mut self,
        f: Binary,
        (va, sa): (&Value, Span),
        (vb, sb): (&Value, Span),
        span: Span,
    ) -> Result<Value, CellError> {
        if let (Value::Number(x), Value::Number(y)) = (va, vb) {
            return Ok(Value::Number(super::graph::apply_binary(f, *x, *y)));
        }
        let sym = |v: &Value| match v {
            Value::Rows(_, s) | Value::Vector(_, s) => Some(vec![s.clone()]),
            Value::Grid(_, r, c) => Some(vec![r.clone(), c.clone()]),
            _ => None,
        };
        let one = vec![SizeExpr::constant(1)];
        let shape = match (sym(va), sym(vb)) {
            (Some(x), Some(y)) if x == one => y,
            (Some(x), Some(y)) if x == y || y == one => x,
            (Some(x), Some(y)) => {
                return Err(err(
                    span,
                    format!(
                        "shape mismatch: the left operand is {} but the right is {} (only `[1]` broadcasts{})",
                        shape_text(&x),
                        shape_text(&y),
                        match x.len() + y.len() {
                            3 => "; `scale_rows(g, S)` scales the rows of a matrix",
                            _ => "",
                        }
                    ),
                ));
            }
            (Some(x), _) | (None, Some(x)) => x,
            (None, None) => {
                return Err(err(
                    span,
                    "unsupported operands: expected rows of features or numbers",
                ));
            }
        };
        let width = self.width(&shape, span, "this expression")?;
        let mut operand = |v: &Value, at: Span| -> Result<Id, CellError> {
            match v {
                Value::Number(c) => Ok(self.graph.constant_node(*c, width)),
                other => {
                    let id = self.tensor(other, at, "this operand")?.0;
                    Ok(match self.graph.width(id) == width {
                        true => id,
                        false => self.graph.broadcast(id, width),
                    })
                }
            }
        };
        let (x, y) = (operand(va, sa)?, operand(vb, sb)?);
        Ok(Self::value(self.graph.binary(f, x, y), shape))
    }

    fn args(
        &mut self,
        f: &Ident,
        args: &[Expr],
        n: usize,
        span: Span,
    ) -> Result<Vec<Value>, CellError> {
        if args.len() != n {
            return Err(err(
                span,
                format!(
                    "`{f}` takes {n} argument{}, got {}",
                    if n == 1 { "" } else { "s" },
                    args.len()
                ),
            ));
        }
        args.iter().map(|a| self.expr(a)).collect()
    }

    fn call(&mut self, f: &Ident, args: &[Expr], span: Span) -> Result<Value, CellError> {
        let name = f.to_string();
        let unary = match name.as_str() {
            "sigmoid" => Some(Unary::Sigmoid),
            "tanh" => Some(Unary::Tanh),
            "relu" => Some(Unary::Relu),
            "exp" => Some(Unary::Exp),
            "sqrt" | "rsqrt" => Some(Unary::Sqrt),
            "abs" => Some(Unary::Abs),
            "log" => Some(Unary::Log),
            "softplus" => Some(Unary::Softplus),
            _ => None,
        };
        if let Some(u) = unary {
            let v = self.args(f, args, 1, span)?.remove(0);
            let value = match v {
                Value::Number(c) => Value::Number(super::graph::apply_unary(u, c)),
                v => {
                    let what = format!("the argument of `{name}`");
                    let (id, s) = self.tensor(&v, args[0].span(), &what)?;
                    Self::value(self.graph.unary(u, id), s)
                }
            };
            if name == "rsqrt" {
                // `1 / sqrt(a)`: two correctly rounded operations.
                return self.combine(
                    Binary::Div,
                    (&Value::Number(1.0), span),
                    (&value, span),
                    span,
                );
            }
            return Ok(value);
        }
        match name.as_str() {
            "matmul" => self.matmul(f, args, span),
            "outer" => {
                let v = self.args(f, args, 2, span)?;
                let (a, sa) =
                    self.rows_of(&v[0], args[0].span(), "the first argument of `outer`")?;
                let (b, sb) =
                    self.rows_of(&v[1], args[1].span(), "the second argument of `outer`")?;
                self.width(&[sa.clone(), sb.clone()], span, "`outer`")?;
                let id = self.graph.row_product(RowProduct::Outer, a, b);
                Ok(Value::Grid(id, sa, sb))
            }
            "scale_rows" => {
                let v = self.args(f, args, 2, span)?;
                let what = "the first argument of `scale_rows`";
                let (g, sg) = self.rows_of(&v[0], args[0].span(), what)?;
                let (s, shape) =
                    self.tensor(&v[1], args[1].span(), "the second argument of `scale_rows`")?;
                if shape.len() != 2 || shape[0] != sg {
                    return Err(err(
                        span,
                        format!(
                            "shape mismatch in `scale_rows`: it scales the rows of a matrix `[a, b]` by a vector `[a]`, got {} and {}",
                            shape_text(&[sg]),
                            shape_text(&shape)
                        ),
                    ));
                }
                // `S[i, j] · g[i]`: `g` spread over each row by an outer
                // product with ones, whose gradient is the row sums.
                let cols = self.graph.width(s) / self.graph.width(g);
                let ones = self.graph.constant_node(1.0, cols);
                let spread = self.graph.row_product(RowProduct::Outer, g, ones);
                Ok(Self::value(
                    self.graph.binary(Binary::Mul, spread, s),
                    shape,
                ))
            }
            "square" => {
                let v = self.args(f, args, 1, span)?.remove(0);
                let at = (&v, args[0].span());
                self.combine(Binary::Mul, at, at, span)
            }
            "max" | "min" => {
                let v = self.args(f, args, 2, span)?;
                let f = if name == "max" {
                    Binary::Max
                } else {
                    Binary::Min
                };
                self.combine(f, (&v[0], args[0].span()), (&v[1], args[1].span()), span)
            }
            "sum" | "mean" => {
                let v = self.args(f, args, 1, span)?.remove(0);
                let what = format!("the argument of `{name}`");
                let (id, _) = self.rows_of(&v, args[0].span(), &what)?;
                let width = self.graph.width(id);
                let mut total = self.graph.row_sum(id);
                if name == "mean" {
                    let n = self.graph.constant_node(width as f32, 1);
                    total = self.graph.binary(Binary::Div, total, n);
                }
                Ok(Value::Rows(total, SizeExpr::constant(1)))
            }
            "concat" => {
                let parts = self.concat_parts(args)?;
                let sym = parts
                    .iter()
                    .fold(SizeExpr::default(), |acc, p| acc.plus(&p.1, 1));
                let ids: Vec<Id> = parts.iter().map(|p| p.0).collect();
                let id = self.graph.concat(ids);
                self.concats
                    .entry(id)
                    .or_insert_with(|| parts.into_iter().map(|p| p.1).collect());
                Ok(Value::Rows(id, sym))
            }
            "split" => Err(err(
                span,
                "`split` gives several values: bind them with `let (a, b, ..) = split(..);`",
            )),
            _ => Err(err(
                f.span(),
                format!(
                    "unsupported function `{name}`: the functions are {}",
                    super::syntax::FUNCTIONS
                ),
            )),
        }
    }

    fn concat_parts(&mut self, args: &[Expr]) -> Result<Vec<(Id, SizeExpr)>, CellError> {
        args.iter()
            .map(|a| {
                let v = self.expr(a)?;
                self.rows_of(&v, a.span(), "a part of `concat`")
            })
            .collect()
    }

    fn matmul(&mut self, f: &Ident, args: &[Expr], span: Span) -> Result<Value, CellError> {
        if args.len() != 2 {
            return Err(err(
                span,
                format!(
                    "`{f}` takes 2 arguments (rows and a parameter matrix, or a vector and a matrix), got {}",
                    args.len()
                ),
            ));
        }
        let (parts, second) = match &args[0] {
            Expr::Call(g, inner, _) if g == "concat" => {
                (self.concat_parts(inner)?, self.expr(&args[1])?)
            }
            a => {
                let v = self.expr(a)?;
                let second = self.expr(&args[1])?;
                if !matches!(second, Value::Matrix(..)) {
                    return self.row_matmul((&v, a.span()), (&second, args[1].span()), span);
                }
                let what = "the first argument of `matmul`";
                (vec![self.rows_of(&v, a.span(), what)?], second)
            }
        };
        let Value::Matrix(w, rows, cols) = second else {
            return Err(err(
                args[1].span(),
                "the second argument of `matmul` of a `concat(..)` must be a parameter matrix `[rows, cols]`",
            ));
        };
        let features = parts
            .iter()
            .fold(SizeExpr::default(), |acc, p| acc.plus(&p.1, 1));
        if features != rows {
            return Err(err(
                span,
                format!(
                    "shape mismatch in `matmul`: the rows have {} features but the matrix is {}",
                    shape_text(&[features]),
                    shape_text(&[rows, cols])
                ),
            ));
        }
        let mut terms = Vec::new();
        let mut row = 0;
        for (a, _) in parts {
            let k = self.graph.width(a);
            terms.push(Term {
                a,
                w: ParamMatrix {
                    offset: w.offset + row * w.cols,
                    rows: k,
                    cols: w.cols,
                },
                transposed: false,
            });
            row += k;
        }
        Ok(Value::Rows(self.graph.linear(None, terms, w.cols), cols))
    }

    /// `matmul` of two activations, per batch row: a vector `[a]` times a
    /// matrix `[a, b]` gives `[b]`, a matrix `[a, b]` times a vector `[b]`
    /// gives `[a]`, a matrix `[a, b]` times a matrix `[b, c]` gives `[a, c]`,
    /// row `i` of it the vector `A[i, :]` times the matrix (so its
    /// gradients and its summation order are those of the vector's product).
    fn row_matmul(
        &mut self,
        (va, sa): (&Value, Span),
        (vb, sb): (&Value, Span),
        span: Span,
    ) -> Result<Value, CellError> {
        let (a, xa) = self.tensor(va, sa, "the first argument of `matmul`")?;
        let (b, xb) = self.tensor(vb, sb, "the second argument of `matmul`")?;
        let mismatch = |why: &str| {
            err(
                span,
                format!(
                    "shape mismatch in `matmul`: the left operand is {} but the right is {}{why}",
                    shape_text(&xa),
                    shape_text(&xb)
                ),
            )
        };
        let (op, shape) = match (xa.len(), xb.len()) {
            (1, 2) if xa[0] == xb[0] => (RowProduct::VecMat, xb[1].clone()),
            (2, 1) if xa[1] == xb[0] => (RowProduct::MatVec, xa[0].clone()),
            (2, 2) if xa[1] == xb[0] => {
                // Each row of `A` (`k` columns) times `B` (`k·n`).
                let k = self.eval(&xa[1], span, "the inner size of `matmul`")?;
                let m = self.graph.width(a) / k.max(1);
                let rows = (0..m)
                    .map(|i| {
                        let row = self.graph.slice(a, i * k, k);
                        self.graph.row_product(RowProduct::VecMat, row, b)
                    })
                    .collect();
                let id = self.graph.concat(rows);
                return Ok(Value::Grid(id, xa[0].clone(), xb[1].clone()));
            }
            (1, 2) => return Err(mismatch(" (a vector `[a]` times a matrix `[a, b]`)")),
            (2, 1) => return Err(mismatch(" (a matrix `[a, b]` times a vector `[b]`)")),
            (2, 2) => return Err(mismatch(" (a matrix `[a, b]` times a matrix `[b, c]`)")),
            (1, 1) => {
                return Err(mismatch(
                    ": `matmul` of two vectors takes a parameter matrix as the second; \
                     `sum(a * b)` is their dot product, `outer(a, b)` their outer product",
                ));
            }
            _ => unreachable!("activations are vectors or matrices"),
        };
        let id = self.graph.row_product(op, a, b);
        Ok(Value::Rows(id, shape))
    }

    fn split(&mut self, names: &[Ident], value: &Expr) -> Result<Vec<Value>, CellError> {
        let (arg, widths, span) = match value {
            Expr::Call(f, args, span) if f == "split" && (args.len() == 1 || args.len() == 2) => {
                (&args[0], args.get(1), *span)
            }
            other => {
                return Err(err(
                    other.span(),
                    "a tuple `let (..)` takes `split(value)` or `split(value, [sizes])`",
                ));
            }
        };
        let v = self.expr(arg)?;
        let (id, sym) = self.rows_of(&v, arg.span(), "the argument of `split`")?;
        let parts: Vec<SizeExpr> = match widths {
            None => match sym.divided(names.len() as i64) {
                Some(part) => vec![part; names.len()],
                None => self.equal_blocks(id, &sym, names.len(), span)?,
            },
            Some(w) => match self.expr(w)? {
                Value::Sizes(s) => s,
                _ => {
                    return Err(err(
                        w.span(),
                        "the widths of `split` are a list of sizes, e.g. `[hidden, 2 * hidden]`",
                    ));
                }
            },
        };
        if parts.len() != names.len() {
            return Err(err(
                span,
                format!(
                    "`split` gives {} parts but the `let` names {}",
                    parts.len(),
                    names.len()
                ),
            ));
        }
        let total = parts
            .iter()
            .fold(SizeExpr::default(), |acc, p| acc.plus(p, 1));
        if total != sym {
            return Err(err(
                span,
                format!(
                    "shape mismatch in `split`: the parts add up to {} but the value is {}",
                    shape_text(&[total]),
                    shape_text(&[sym])
                ),
            ));
        }
        let mut col = 0;
        let mut out = Vec::new();
        for p in parts {
            let w = self.eval(&p, span, "a part of `split`")?;
            // A plain slice for now: products are folded into sums first
            // (`fuse_products`), whose rebuild then pushes the slice down.
            out.push(Value::Rows(self.graph.raw(Op::Slice(id, col), w), p));
            col += w;
        }
        Ok(out)
    }

    /// The shapes of `n` equal parts of the concatenation `id` (of shape
    /// `sym`) when the bound sizes make whole runs of its parts equally
    /// wide: `split(concat(x, h))` with `input` = `hidden` gives `[input]`
    /// and `[hidden]`.
    fn equal_blocks(
        &mut self,
        id: Id,
        sym: &SizeExpr,
        n: usize,
        span: Span,
    ) -> Result<Vec<SizeExpr>, CellError> {
        let total = self.graph.width(id);
        let fail = |why: String| {
            err(
                span,
                format!(
                    "cannot split {} into {n} equal parts{why}",
                    shape_text(std::slice::from_ref(sym))
                ),
            )
        };
        let Some(parts) = self.concats.get(&id).cloned() else {
            return Err(fail(String::new()));
        };
        let mut widths = Vec::new();
        for p in &parts {
            widths.push(self.eval(p, span, "a part of `concat`")?);
        }
        let text = || {
            let w: Vec<String> = widths.iter().map(|w| w.to_string()).collect();
            format!(": with these sizes its parts are {} wide", w.join(", "))
        };
        if !total.is_multiple_of(n) {
            return Err(fail(text()));
        }
        let (block, mut out) = (total / n, Vec::new());
        let (mut run, mut width) = (SizeExpr::default(), 0);
        for (p, w) in parts.iter().zip(&widths) {
            run = run.plus(p, 1);
            width += w;
            if width == block {
                out.push(std::mem::take(&mut run));
                width = 0;
            } else if width > block {
                return Err(fail(text()));
            }
        }
        Ok(out)
    }

    fn stmt(&mut self, s: &Stmt) -> Result<(), CellError> {
        match s {
            Stmt::Let {
                names,
                tuple,
                value,
            } => {
                let values = if *tuple {
                    self.split(names, value)?
                } else {
                    vec![self.expr(value)?]
                };
                for (n, v) in names.iter().zip(values) {
                    if let Value::Rows(id, _) | Value::Grid(id, ..) = &v {
                        self.labels.entry(*id).or_insert_with(|| n.to_string());
                    }
                    self.names.insert(format!("let {n}"), v);
                }
            }
            Stmt::Assign { state, value } => {
                let key = state.to_string();
                let Some(i) = self.states.iter().position(|d| d.name == key) else {
                    return Err(err(
                        state.span(),
                        format!(
                            "`{key}` is not a state: only states are assigned; use `let {key} = ..;`"
                        ),
                    ));
                };
                if self.assigned[i].is_some() {
                    return Err(err(
                        state.span(),
                        format!("state `{key}` is assigned twice"),
                    ));
                }
                let want = self.states[i].shape.clone();
                let width = self.width(&want, state.span(), "the state")?;
                let id = match self.expr(value)? {
                    Value::Number(c) => self.graph.constant_node(c, width),
                    v => {
                        let (id, sym) = self.tensor(&v, value.span(), "the new state")?;
                        if sym != want {
                            return Err(err(
                                value.span(),
                                format!(
                                    "shape mismatch: state `{key}` is {} but its new value is {}",
                                    shape_text(&want),
                                    shape_text(&sym)
                                ),
                            ));
                        }
                        id
                    }
                };
                self.assigned[i] = Some(id);
            }
        }
        Ok(())
    }
}

/// Checks a declaration's rank and names.
fn check_rank(d: &Decl, what: &str, ranks: &[usize]) -> Result<(), CellError> {
    if ranks.contains(&d.shape.len()) {
        return Ok(());
    }
    let want = if ranks.len() == 2 {
        "`[n]` or `[rows, cols]`"
    } else {
        "`[n]`"
    };
    Err(err(
        d.shape_span,
        format!(
            "{what} `{}` has shape {}: expected {want}",
            d.name,
            shape_text(&d.shape)
        ),
    ))
}

/// Elaborates `def` with the given sizes.
pub(crate) fn forward(def: &CellDef, sizes: &[(&str, usize)]) -> Result<Forward, CellError> {
    let declared: Vec<String> = def.sizes.iter().map(|s| s.to_string()).collect();
    for (name, _) in sizes {
        if !declared.iter().any(|d| d == name) {
            return Err(err(
                def.name.span(),
                format!(
                    "cell `{}` has no size `{name}` (its sizes: {})",
                    def.name,
                    declared.join(", ")
                ),
            ));
        }
    }
    let mut bound = HashMap::new();
    for s in &def.sizes {
        let Some(&(_, v)) = sizes.iter().find(|(n, _)| s == n) else {
            return Err(err(s.span(), format!("size `{s}` needs a value")));
        };
        bound.insert(s.to_string(), v);
    }
    let mut el = Elaborator {
        sizes: bound,
        graph: Graph::default(),
        names: HashMap::new(),
        states: &def.states,
        assigned: vec![None; def.states.len()],
        labels: HashMap::new(),
        concats: HashMap::new(),
    };
    // The inputs are consecutive column blocks of the one `x`.
    let mut blocks = Vec::new();
    for d in &def.inputs {
        check_rank(d, "the input", &[1])?;
        let width = el.eval(&d.shape[0], d.shape_span, &format!("input `{}`", d.name))?;
        blocks.push(width);
    }
    let input_size = blocks.iter().try_fold(0usize, |acc, &w| {
        acc.checked_add(w).filter(|&s| s <= MAX_WIDTH as usize)
    });
    let Some(input_size) = input_size else {
        return Err(err(
            def.inputs[0].shape_span,
            format!("with these sizes the inputs pass {MAX_WIDTH} floats per row"),
        ));
    };
    let x = el.graph.raw(Op::Input, input_size);
    let mut col = 0;
    for (d, width) in def.inputs.iter().zip(blocks) {
        let id = el.graph.slice(x, col, width);
        el.names
            .insert(d.name.to_string(), Value::Rows(id, d.shape[0].clone()));
        el.labels.insert(id, d.name.to_string());
        col += width;
    }
    let mut states = Vec::new();
    let mut offset = 0;
    for (i, d) in def.states.iter().enumerate() {
        check_rank(d, "state", &[1, 2])?;
        let width = el.width(&d.shape, d.shape_span, &format!("state `{}`", d.name))?;
        let id = el.graph.raw(Op::State(i), width);
        el.names
            .insert(d.name.to_string(), Elaborator::value(id, d.shape.clone()));
        el.labels.insert(id, format!("{}_prev", d.name));
        states.push(Slot {
            name: d.name.to_string(),
            offset,
            width,
        });
        offset += width;
    }
    let mut params = Vec::new();
    let mut offset = 0;
    for p in &def.params {
        let d = &p.decl;
        check_rank(d, "parameter", &[1, 2])?;
        let what = format!("parameter `{}`", d.name);
        let shape = d
            .shape
            .iter()
            .map(|s| el.eval(s, d.shape_span, &what))
            .collect::<Result<Vec<_>, _>>()?;
        let len = shape.iter().try_fold(1usize, |acc, &n| acc.checked_mul(n));
        let Some(end) = len
            .and_then(|l| l.checked_add(offset))
            .filter(|&e| e <= MAX_PARAMS)
        else {
            return Err(err(
                d.shape_span,
                format!("with these sizes the parameters pass {MAX_PARAMS} floats at {what}"),
            ));
        };
        let value = match shape[..] {
            [_] => Value::Vector(offset, d.shape[0].clone()),
            _ => Value::Matrix(
                ParamMatrix {
                    offset,
                    rows: shape[0],
                    cols: shape[1],
                },
                d.shape[0].clone(),
                d.shape[1].clone(),
            ),
        };
        el.names.insert(d.name.to_string(), value);
        let cols = shape[shape.len() - 1];
        if p.init.len() > 1 && !cols.is_multiple_of(p.init.len()) {
            return Err(err(
                p.init_span,
                format!(
                    "{what} is {}: its last dimension ({cols}) does not split into {} equal blocks, one per initial value",
                    shape_text(&d.shape),
                    p.init.len()
                ),
            ));
        }
        let slot = ParamSlot {
            name: d.name.to_string(),
            offset,
            shape,
            init: p.init.clone(),
        };
        offset = end;
        params.push(slot);
    }
    for s in &def.body {
        el.stmt(s)?;
    }
    let mut outputs = Vec::new();
    for (d, out) in def.states.iter().zip(&el.assigned) {
        match out {
            Some(id) => outputs.push(*id),
            None => {
                return Err(err(
                    d.name.span(),
                    format!(
                        "state `{}` is never produced: assign its new value with `{} = ..;`",
                        d.name, d.name
                    ),
                ));
            }
        }
    }
    Ok(Forward {
        graph: el.graph,
        input_size,
        states,
        outputs,
        params,
        labels: el.labels,
    })
}
