//! The cell language's syntax tree and its parser, on `syn`: the same code
//! reads a cell from a string at run time and from a macro's tokens at
//! compile time, and every node keeps the span of its tokens.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, BinOp, Ident, Lit, Token, UnOp, Visibility, bracketed, parenthesized};

use super::error::CellError;

mod kw {
    syn::custom_keyword!(cell);
    syn::custom_keyword!(size);
    syn::custom_keyword!(input);
    syn::custom_keyword!(state);
    syn::custom_keyword!(param);
}

/// A cell's definition as written: `cell NAME { .. }` with its declarations
/// and equations (the language is described in [`cell_lang`](super)).
///
/// Parse one with [`CellDef::parse_str`] or, in a macro, `syn::parse2`.
#[derive(Debug, Clone)]
pub struct CellDef {
    /// Outer attributes written before `cell` (doc comments, or the
    /// `cell!` macro's `#[sizes(..)]` and `#[bptt(..)]`).
    pub attrs: Vec<Attribute>,
    /// The visibility written before `cell`.
    pub vis: Visibility,
    /// The cell's name.
    pub name: Ident,
    /// The size names, in declaration order.
    pub sizes: Vec<Ident>,
    /// The inputs, `input x: [..];`, in order (at least one): their
    /// features are consecutive column blocks of the step's one `x`, the
    /// first input's first.
    pub inputs: Vec<Decl>,
    /// The states, in order; the first is the output a loss reads.
    pub states: Vec<Decl>,
    /// The parameters, in order.
    pub params: Vec<ParamDecl>,
    /// The equations, in order.
    pub body: Vec<Stmt>,
}

/// A declared tensor: `name: [shape]`.
#[derive(Debug, Clone)]
pub struct Decl {
    /// Its name.
    pub name: Ident,
    /// One size per dimension.
    pub shape: Vec<SizeExpr>,
    /// The span of the shape.
    pub shape_span: Span,
}

/// A parameter: a declared tensor with an optional constant initial value.
#[derive(Debug, Clone)]
pub struct ParamDecl {
    /// Name and shape.
    pub decl: Decl,
    /// `= 1.0`: every float starts at this constant; `= [0, 1, 0, 0]`: the
    /// last dimension in as many equal blocks, each starting at its value
    /// (see [`ParamSlot::init`](super::ParamSlot::init)); empty: random.
    pub init: Vec<f32>,
    /// The span of the initial value.
    pub init_span: Span,
}

/// A size: a sum of integer multiples of size names and an integer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SizeExpr {
    /// `(name, coefficient)`, sorted by name, no zero coefficients.
    pub terms: Vec<(String, i64)>,
    /// The constant part.
    pub constant: i64,
}

/// One equation.
#[derive(Debug, Clone)]
pub enum Stmt {
    /// `let a = e;` or `let (a, b) = split(e);`.
    Let {
        /// The names bound (more than one only for a tuple).
        names: Vec<Ident>,
        /// Whether the names were written as a tuple.
        tuple: bool,
        /// The value.
        value: Expr,
    },
    /// `state = e;`: the state's new value.
    Assign {
        /// The state.
        state: Ident,
        /// The value.
        value: Expr,
    },
}

/// An expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A name: the input, a state, a parameter or a `let`.
    Name(Ident),
    /// A number.
    Number(f32, Span),
    /// `-e`.
    Neg(Box<Expr>, Span),
    /// `a + b`, `a - b`, `a * b` (the span is the operator's).
    Binary(BinaryOp, Box<Expr>, Box<Expr>, Span),
    /// `f(args)`.
    Call(Ident, Vec<Expr>, Span),
    /// `[n1, n2]`, the widths argument of `split`.
    Sizes(Vec<SizeExpr>, Span),
}

/// An elementwise binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
}

impl Expr {
    /// The span of the whole expression.
    pub fn span(&self) -> Span {
        match self {
            Expr::Name(i) => i.span(),
            Expr::Number(_, s)
            | Expr::Neg(_, s)
            | Expr::Binary(.., s)
            | Expr::Call(.., s)
            | Expr::Sizes(_, s) => *s,
        }
    }
}

impl CellDef {
    /// Parses a cell from text, e.g. a `.cell` file. Errors carry the line
    /// and column of the offending token.
    pub fn parse_str(src: &str) -> Result<CellDef, CellError> {
        super::limits::parse_str(src).map_err(CellError::from)
    }
}

impl Parse for CellDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input
            .parse::<kw::cell>()
            .map_err(|e| syn::Error::new(e.span(), "expected `cell NAME { .. }`"))?;
        let name: Ident = input.parse()?;
        let body;
        syn::braced!(body in input);
        let mut def = CellDef {
            attrs,
            vis,
            name,
            sizes: Vec::new(),
            inputs: Vec::new(),
            states: Vec::new(),
            params: Vec::new(),
            body: Vec::new(),
        };
        while !body.is_empty() {
            if body.peek(kw::size) {
                body.parse::<kw::size>()?;
                let names =
                    syn::punctuated::Punctuated::<Ident, Token![,]>::parse_separated_nonempty(
                        &body,
                    )?;
                def.sizes.extend(names);
                body.parse::<Token![;]>()?;
            } else if body.peek(kw::input) && body.peek2(Ident) {
                body.parse::<kw::input>()?;
                def.inputs.push(parse_decl(&body)?);
                body.parse::<Token![;]>()?;
            } else if body.peek(kw::state) && body.peek2(Ident) {
                body.parse::<kw::state>()?;
                def.states.push(parse_decl(&body)?);
                body.parse::<Token![;]>()?;
            } else if body.peek(kw::param) && body.peek2(Ident) {
                body.parse::<kw::param>()?;
                let decl = parse_decl(&body)?;
                let (init, init_span) = if body.peek(Token![=]) {
                    body.parse::<Token![=]>()?;
                    let e: syn::Expr = body.parse()?;
                    (initial_value(&e)?, e.span())
                } else {
                    (Vec::new(), decl.shape_span)
                };
                def.params.push(ParamDecl {
                    decl,
                    init,
                    init_span,
                });
                body.parse::<Token![;]>()?;
            } else if body.peek(Token![let]) {
                def.body.push(parse_let(&body)?);
            } else if body.peek(Ident) && body.peek2(Token![=]) {
                let state: Ident = body.parse()?;
                body.parse::<Token![=]>()?;
                let value = expr(&body.parse()?)?;
                body.parse::<Token![;]>()?;
                def.body.push(Stmt::Assign { state, value });
            } else {
                return Err(body
                    .error("expected `size`, `input`, `state`, `param`, `let` or `STATE = ..;`"));
            }
        }
        if def.inputs.is_empty() {
            return Err(syn::Error::new(
                def.name.span(),
                format!("cell `{}` declares no `input x: [..];`", def.name),
            ));
        }
        if def.states.is_empty() {
            return Err(syn::Error::new(
                def.name.span(),
                format!("cell `{}` declares no `state h: [..];`", def.name),
            ));
        }
        super::limits::check_def(&def)?;
        Ok(def)
    }
}

fn parse_decl(input: ParseStream) -> syn::Result<Decl> {
    let name: Ident = input.parse()?;
    input.parse::<Token![:]>()?;
    let content;
    let bracket = bracketed!(content in input);
    let dims = syn::punctuated::Punctuated::<syn::Expr, Token![,]>::parse_terminated(&content)?;
    let shape = dims
        .iter()
        .map(size_expr)
        .collect::<syn::Result<Vec<_>>>()?;
    Ok(Decl {
        name,
        shape,
        shape_span: bracket.span.join(),
    })
}

fn parse_let(input: ParseStream) -> syn::Result<Stmt> {
    input.parse::<Token![let]>()?;
    let (names, tuple) = if input.peek(syn::token::Paren) {
        let content;
        parenthesized!(content in input);
        let names = syn::punctuated::Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
        (names.into_iter().collect(), true)
    } else {
        (vec![input.parse::<Ident>()?], false)
    };
    input.parse::<Token![=]>()?;
    let value = expr(&input.parse()?)?;
    input.parse::<Token![;]>()?;
    Ok(Stmt::Let {
        names,
        tuple,
        value,
    })
}

/// A parameter's initial value: a number, or a list of numbers (one per
/// block).
fn initial_value(e: &syn::Expr) -> syn::Result<Vec<f32>> {
    let bad = || {
        syn::Error::new(
            e.span(),
            "a parameter's initial value is a number, e.g. `= 1.0`, or one number per block, e.g. `= [0, 1, 0, 0]`",
        )
    };
    match e {
        syn::Expr::Array(a) if !a.elems.is_empty() => {
            a.elems.iter().map(|x| number(x).ok_or_else(bad)).collect()
        }
        e => Ok(vec![number(e).ok_or_else(bad)?]),
    }
}

/// A float or integer literal, possibly negated.
fn number(e: &syn::Expr) -> Option<f32> {
    match e {
        syn::Expr::Lit(l) => match &l.lit {
            Lit::Float(f) => f.base10_parse().ok(),
            Lit::Int(i) => i.base10_parse::<i64>().ok().map(|v| v as f32),
            _ => None,
        },
        syn::Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => number(&u.expr).map(|v| -v),
        syn::Expr::Paren(p) => number(&p.expr),
        _ => None,
    }
}

/// Every function of the language, as messages list them.
pub(crate) const FUNCTIONS: &str = "matmul, concat, split, sigmoid, tanh, relu, exp, log, softplus, \
     sqrt, rsqrt, abs, square, max, min, sum, mean, outer, scale_rows";

fn unsupported(e: &impl Spanned, what: &str) -> syn::Error {
    syn::Error::new(
        e.span(),
        format!(
            "unsupported {what}: a cell's equations use names, numbers, `+ - * /`, unary `-`, \
             and the functions {FUNCTIONS}"
        ),
    )
}

/// Converts a `syn` expression into the language's.
fn expr(e: &syn::Expr) -> syn::Result<Expr> {
    Ok(match e {
        syn::Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => Expr::Name(
            p.path
                .get_ident()
                .cloned()
                .unwrap_or_else(|| Ident::new("_", p.span())),
        ),
        syn::Expr::Lit(_) => match number(e) {
            Some(v) => Expr::Number(v, e.span()),
            None => return Err(syn::Error::new(e.span(), "expected a number")),
        },
        syn::Expr::Paren(p) => expr(&p.expr)?,
        syn::Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => {
            Expr::Neg(Box::new(expr(&u.expr)?), e.span())
        }
        syn::Expr::Binary(b) => {
            let op = match b.op {
                BinOp::Add(_) => BinaryOp::Add,
                BinOp::Sub(_) => BinaryOp::Sub,
                BinOp::Mul(_) => BinaryOp::Mul,
                BinOp::Div(_) => BinaryOp::Div,
                _ => return Err(unsupported(&b.op, "operator")),
            };
            // At the operator: a span cannot cover the whole expression in
            // a proc macro on stable Rust, and its first token would point
            // into the left operand.
            Expr::Binary(
                op,
                Box::new(expr(&b.left)?),
                Box::new(expr(&b.right)?),
                b.op.span(),
            )
        }
        syn::Expr::Call(c) => {
            let func = match &*c.func {
                syn::Expr::Path(p) if p.path.get_ident().is_some() => p
                    .path
                    .get_ident()
                    .cloned()
                    .unwrap_or_else(|| Ident::new("_", p.span())),
                f => return Err(unsupported(f, "function")),
            };
            let args = c.args.iter().map(expr).collect::<syn::Result<_>>()?;
            Expr::Call(func, args, e.span())
        }
        syn::Expr::Array(a) => Expr::Sizes(
            a.elems.iter().map(size_expr).collect::<syn::Result<_>>()?,
            e.span(),
        ),
        other => return Err(unsupported(other, "expression")),
    })
}

/// Converts a `syn` expression into a size: `hidden`, `4 * hidden`,
/// `input + hidden`, `2`.
fn size_expr(e: &syn::Expr) -> syn::Result<SizeExpr> {
    let bad = || {
        syn::Error::new(
            e.span(),
            "expected a size: size names, integers, `+` and `*` by an integer, e.g. `input + 4 * hidden`",
        )
    };
    match e {
        syn::Expr::Path(p) => {
            let name = p.path.get_ident().ok_or_else(bad)?;
            Ok(SizeExpr::name(&name.to_string()))
        }
        syn::Expr::Lit(l) => match &l.lit {
            Lit::Int(i) => Ok(SizeExpr::constant(i.base10_parse().map_err(|_| bad())?)),
            _ => Err(bad()),
        },
        syn::Expr::Paren(p) => size_expr(&p.expr),
        syn::Expr::Binary(b) => {
            let (l, r) = (size_expr(&b.left)?, size_expr(&b.right)?);
            match b.op {
                BinOp::Add(_) => Ok(l.plus(&r, 1)),
                BinOp::Sub(_) => Ok(l.plus(&r, -1)),
                BinOp::Mul(_) if l.terms.is_empty() => Ok(r.times(l.constant)),
                BinOp::Mul(_) if r.terms.is_empty() => Ok(l.times(r.constant)),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

impl SizeExpr {
    /// A size name.
    pub fn name(name: &str) -> Self {
        SizeExpr {
            terms: vec![(name.to_string(), 1)],
            constant: 0,
        }
    }

    /// An integer.
    pub fn constant(c: i64) -> Self {
        SizeExpr {
            terms: Vec::new(),
            constant: c,
        }
    }

    /// `self + k · other`.
    ///
    /// Saturating: an absurd size stays absurd (and is refused when the
    /// sizes are bound) rather than overflowing.
    pub fn plus(&self, other: &SizeExpr, k: i64) -> Self {
        let mut terms = self.terms.clone();
        for (name, c) in &other.terms {
            let kc = k.saturating_mul(*c);
            match terms.iter_mut().find(|(n, _)| n == name) {
                Some(t) => t.1 = t.1.saturating_add(kc),
                None => terms.push((name.clone(), kc)),
            }
        }
        terms.retain(|t| t.1 != 0);
        terms.sort();
        SizeExpr {
            terms,
            constant: self
                .constant
                .saturating_add(k.saturating_mul(other.constant)),
        }
    }

    /// `k · self`.
    pub fn times(&self, k: i64) -> Self {
        SizeExpr::default().plus(self, k)
    }

    /// `self / k` if every coefficient divides.
    pub fn divided(&self, k: i64) -> Option<Self> {
        let ok = k > 0 && self.constant % k == 0 && self.terms.iter().all(|t| t.1 % k == 0);
        ok.then(|| SizeExpr {
            terms: self.terms.iter().map(|(n, c)| (n.clone(), c / k)).collect(),
            constant: self.constant / k,
        })
    }
}

impl std::fmt::Display for SizeExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .terms
            .iter()
            .map(|(n, c)| match c {
                1 => n.clone(),
                c => format!("{c} * {n}"),
            })
            .collect();
        if self.constant != 0 || parts.is_empty() {
            parts.push(self.constant.to_string());
        }
        write!(f, "{}", parts.join(" + ").replace("+ -", "- "))
    }
}
