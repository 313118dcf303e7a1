//! The arguments of `#[bptt(...)]`, parsed with the span of each one kept.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, Token, UnOp};

use super::Spec;
use crate::error::Error;
use crate::policy::Policy;
use crate::units::Budget;

/// The arguments of `#[bptt]` on a cell type, in the order the messages
/// list them.
const NAMES: [&str; 8] = [
    "seq_len",
    "budget",
    "memory",
    "state_bytes",
    "working_bytes",
    "policy",
    "alpha",
    "name",
];

/// The arguments of `#[bptt]` in `cell!`, whose sizes the program fixes.
const DERIVED_NAMES: [&str; 7] = [
    "seq_len", "budget", "memory", "batch", "classes", "policy", "name",
];

/// The sizes a `memory` budget needs, by whether the cell is `cell!`'s.
fn memory_sizes(derived: bool) -> [&'static str; 2] {
    if derived {
        ["batch", "classes"]
    } else {
        ["state_bytes", "working_bytes"]
    }
}

/// What each required argument is, for the "missing" message.
fn example(name: &str) -> &'static str {
    match name {
        "seq_len" => "the sequence length, e.g. `seq_len = 1000`",
        "budget" => {
            "hidden-state units or a percentage of store-all, e.g. `budget = 200` or `budget = \"5%\"`"
        }
        "state_bytes" => {
            "the bytes of one hidden state of the whole batch (state size × batch × 4), e.g. `state_bytes = 8192`"
        }
        "working_bytes" => {
            "the bytes of the arena that are not checkpoints (`ArenaLayout::working_bytes()`), e.g. `working_bytes = 65536`"
        }
        "batch" => "the batch size the memory is planned for, e.g. `batch = 8`",
        "classes" => "the read-out's outputs, e.g. `classes = 16`",
        _ => "the tape-to-hidden-state size ratio of the cell, e.g. `alpha = 3` for an LSTM",
    }
}

/// One `name = value` pair as written.
struct Arg {
    name: Ident,
    value: Expr,
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected an argument such as `seq_len = 1000` (arguments: seq_len, budget or memory, policy, alpha, name)",
            )
        })?;
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                name.span(),
                format!("expected `{name} = <value>`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        Ok(Arg { name, value })
    }
}

/// The spans of the arguments given, to point planning errors at them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spans {
    pub seq_len: Span,
    /// `budget`'s, or `memory`'s when the budget is given in bytes.
    pub budget: Span,
    pub policy: Span,
    pub alpha: Span,
}

impl Spans {
    /// The argument a planning error is about.
    pub(crate) fn of(&self, error: &Error) -> Span {
        match error {
            Error::ZeroLength | Error::TooLong(_) => self.seq_len,
            Error::AlphaBelowOne(_) | Error::AlphaTooLarge(_) => self.alpha,
            Error::UnknownPolicy(_) => self.policy,
            Error::BadBudget(_)
            | Error::BudgetOutOfRange(_)
            | Error::MemoryTooSmall(_)
            | Error::MemoryLimit(_)
            | Error::Infeasible { .. }
            | Error::TooExpensive { .. }
            | Error::TableTooLarge { .. } => self.budget,
            _ => Span::call_site(),
        }
    }
}

/// A literal, looking through a leading minus sign (reported as negative).
fn literal(value: &Expr) -> Option<(&Lit, bool)> {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => Some((lit, false)),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match &**expr {
            Expr::Lit(ExprLit { lit, .. }) => Some((lit, true)),
            _ => None,
        },
        Expr::Group(group) => literal(&group.expr),
        _ => None,
    }
}

/// A number literal as `f64` (integers and floats), or `None`.
fn number(value: &Expr) -> Option<syn::Result<f64>> {
    let (lit, negative) = literal(value)?;
    let parsed = match lit {
        Lit::Int(i) => i.base10_parse::<f64>(),
        Lit::Float(f) => f.base10_parse::<f64>(),
        _ => return None,
    };
    Some(parsed.map(|v| if negative { -v } else { v }))
}

/// A string literal or a bare identifier, as text.
fn word(value: &Expr) -> Option<String> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.value()),
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident().map(Ident::to_string),
        Expr::Group(group) => word(&group.expr),
        _ => None,
    }
}

fn seq_len(value: &Expr) -> syn::Result<u32> {
    let wrong = || {
        syn::Error::new(
            value.span(),
            "seq_len must be an integer literal such as `1000` (the schedule is planned at compile time)",
        )
    };
    match literal(value) {
        Some((Lit::Int(i), false)) => match i.base10_parse::<u64>() {
            Ok(0) => Err(syn::Error::new(value.span(), Error::ZeroLength.to_string())),
            Ok(n) => u32::try_from(n)
                .ok()
                .filter(|&n| n <= crate::planner::MAX_LEN)
                .ok_or_else(|| syn::Error::new(value.span(), Error::TooLong(n).to_string())),
            Err(_) => Err(syn::Error::new(
                value.span(),
                Error::TooLong(u64::MAX).to_string(),
            )),
        },
        Some((Lit::Int(_), true)) => Err(syn::Error::new(
            value.span(),
            "seq_len must be a positive integer, the number of time steps",
        )),
        _ => Err(wrong()),
    }
}

fn budget(value: &Expr) -> syn::Result<Budget> {
    let bad = |text: String| syn::Error::new(value.span(), Error::BadBudget(text).to_string());
    if let Some((Lit::Str(s), false)) = literal(value) {
        return s
            .value()
            .parse::<Budget>()
            .map_err(|e| syn::Error::new(value.span(), e.to_string()));
    }
    match number(value) {
        Some(Ok(units)) if units.is_finite() && units >= 0.0 => Ok(Budget::Units(units)),
        Some(Ok(units)) => Err(bad(units.to_string())),
        Some(Err(e)) => Err(syn::Error::new(value.span(), e.to_string())),
        None => Err(syn::Error::new(
            value.span(),
            "budget must be a number of hidden-state units (`200`) or a string percentage of store-all (`\"5%\"`)",
        )),
    }
}

/// A size in bytes: a string such as `"256MiB"` ([`crate::parse_bytes`]) or
/// an integer literal of bytes.
fn bytes(value: &Expr, what: &str) -> syn::Result<u64> {
    match literal(value) {
        Some((Lit::Str(s), false)) => crate::units::parse_bytes(&s.value())
            .map_err(|e| syn::Error::new(value.span(), e.to_string())),
        Some((Lit::Int(i), false)) => i
            .base10_parse::<u64>()
            .map_err(|e| syn::Error::new(value.span(), e.to_string())),
        _ => Err(syn::Error::new(
            value.span(),
            format!(
                "{what} must be a size in bytes: a string such as `\"256MiB\"` or an integer literal such as `4096`"
            ),
        )),
    }
}

/// One hidden state of the whole batch in bytes: whole f32s, at least one.
fn state_bytes(value: &Expr) -> syn::Result<u64> {
    match bytes(value, "state_bytes")? {
        b if b == 0 || b % 4 != 0 => Err(syn::Error::new(
            value.span(),
            format!(
                "state_bytes must be a positive multiple of 4 (state size × batch × 4 bytes of f32), got {b}"
            ),
        )),
        b => Ok(b),
    }
}

/// A positive integer literal: a batch size or a number of classes.
fn count(value: &Expr, what: &str) -> syn::Result<usize> {
    match literal(value) {
        Some((Lit::Int(i), false)) => i.base10_parse::<usize>().ok().filter(|&n| n > 0),
        _ => None,
    }
    .ok_or_else(|| {
        syn::Error::new(
            value.span(),
            format!("{what} must be a positive integer literal, e.g. `{what} = 8`"),
        )
    })
}

fn policy(value: &Expr) -> syn::Result<Policy> {
    let text = word(value).ok_or_else(|| {
        syn::Error::new(
            value.span(),
            "policy must be a string such as `\"msm\"` (hsm, ism, msm, store-all, sqrt or interval:K)",
        )
    })?;
    text.parse::<Policy>()
        .map_err(|e| syn::Error::new(value.span(), e.to_string()))
}

fn alpha(value: &Expr) -> syn::Result<f64> {
    match number(value) {
        Some(Ok(a)) if a.is_finite() && a >= 1.0 => Ok(a),
        Some(Ok(a)) => Err(syn::Error::new(
            value.span(),
            Error::AlphaBelowOne(a).to_string(),
        )),
        Some(Err(e)) => Err(syn::Error::new(value.span(), e.to_string())),
        None => Err(syn::Error::new(
            value.span(),
            "alpha must be a number literal such as `3` or `3.5` (the cell's tape size over its state size)",
        )),
    }
}

fn name(value: &Expr) -> syn::Result<Ident> {
    let wrong = || {
        syn::Error::new(
            value.span(),
            "name must be an identifier such as `\"train_step\"` (the generated method's name)",
        )
    };
    let text = word(value).ok_or_else(wrong)?;
    let ident = syn::parse_str::<Ident>(&text).map_err(|_| wrong())?;
    Ok(Ident::new(&ident.to_string(), value.span()))
}

/// How the attribute gives the checkpoint memory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Amount {
    /// `budget`: hidden-state units or a percentage of store-all.
    Budget(Budget),
    /// `memory`: bytes, with the sizes that turn a plan into bytes.
    Memory {
        /// The bytes given.
        bytes: u64,
        /// The sizes.
        sizes: Sizes,
    },
}

/// The sizes a `memory` budget is spent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sizes {
    /// `#[bptt]` on a cell type: `state_bytes` and `working_bytes`.
    Bytes {
        /// One hidden state of the whole batch.
        state: u64,
        /// The arena's working set.
        working: u64,
    },
    /// `cell!`: `batch` and `classes`, the rest known from the program.
    Rows {
        /// Batch rows.
        batch: usize,
        /// The read-out's outputs.
        classes: usize,
    },
}

/// The attribute's arguments, parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Args {
    pub len: u32,
    pub amount: Amount,
    pub alpha: f64,
    pub policy: Policy,
    pub name: Option<String>,
}

impl Args {
    /// The [`Spec`] of these arguments with the budget planned.
    pub(crate) fn spec(&self, budget: Budget) -> Spec {
        Spec {
            len: self.len,
            budget,
            alpha: self.alpha,
            policy: self.policy,
            name: self.name.clone(),
        }
    }
}

/// The values parsed so far, by argument.
#[derive(Default)]
struct Values {
    len: Option<u32>,
    budget: Option<Budget>,
    memory: Option<u64>,
    state: Option<u64>,
    working: Option<u64>,
    batch: Option<usize>,
    classes: Option<usize>,
    policy: Option<Policy>,
    alpha: Option<f64>,
    name: Option<Ident>,
}

/// Parses the attribute's arguments into [`Args`] and the span of each
/// argument; every problem found is reported, combined into one error.
///
/// `derived` is the alpha of a cell whose program fixes it (`cell!`): then
/// `alpha` may not be given, and a `memory` budget takes `batch` and
/// `classes` instead of `state_bytes` and `working_bytes`. Missing
/// arguments are reported at `at`.
pub(crate) fn parse(
    args: TokenStream,
    derived: Option<f64>,
    at: Span,
) -> syn::Result<(Args, Spans)> {
    let parsed = syn::punctuated::Punctuated::<Arg, Token![,]>::parse_terminated.parse2(args)?;
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    let names: &[&str] = match derived {
        Some(_) => &DERIVED_NAMES,
        None => &NAMES,
    };
    let mut seen: Vec<(String, Span)> = Vec::new();
    let mut v = Values::default();
    let mut spans = Spans {
        seq_len: Span::call_site(),
        budget: Span::call_site(),
        policy: Span::call_site(),
        alpha: Span::call_site(),
    };
    for arg in &parsed {
        let key = arg.name.to_string();
        if let (Some(derived), "alpha") = (derived, key.as_str()) {
            push(syn::Error::new(
                arg.name.span(),
                format!(
                    "`alpha` is derived from the cell (its tape over its state: {derived}): remove it"
                ),
            ));
            continue;
        }
        if derived.is_some() && memory_sizes(false).contains(&key.as_str()) {
            push(syn::Error::new(
                arg.name.span(),
                format!(
                    "`{key}` is computed from the cell's sizes in `cell!`: remove it (give `batch` and `classes` with `memory`)"
                ),
            ));
            continue;
        }
        if derived.is_none() && memory_sizes(true).contains(&key.as_str()) {
            push(syn::Error::new(
                arg.name.span(),
                format!(
                    "`{key}` is an argument of `#[bptt]` in `cell!`, whose sizes are known: on a cell type give `state_bytes` and `working_bytes` with `memory`"
                ),
            ));
            continue;
        }
        if !names.contains(&key.as_str()) {
            let list = names[..names.len() - 1].join(", ");
            let last = names[names.len() - 1];
            push(syn::Error::new(
                arg.name.span(),
                format!("unknown argument `{key}`: expected {list} or {last}"),
            ));
            continue;
        }
        if seen.iter().any(|(s, _)| *s == key) {
            push(syn::Error::new(
                arg.name.span(),
                format!("duplicate argument `{key}`: give it once"),
            ));
            continue;
        }
        seen.push((key.clone(), arg.name.span()));
        let (value, span) = (&arg.value, arg.value.span());
        let result = match key.as_str() {
            "seq_len" => {
                spans.seq_len = span;
                seq_len(value).map(|x| v.len = Some(x))
            }
            "budget" => {
                spans.budget = span;
                budget(value).map(|x| v.budget = Some(x))
            }
            "memory" => {
                spans.budget = span;
                bytes(value, "memory").map(|x| v.memory = Some(x))
            }
            "state_bytes" => state_bytes(value).map(|x| v.state = Some(x)),
            "working_bytes" => bytes(value, "working_bytes").map(|x| v.working = Some(x)),
            "batch" => count(value, "batch").map(|x| v.batch = Some(x)),
            "classes" => count(value, "classes").map(|x| v.classes = Some(x)),
            "policy" => {
                spans.policy = span;
                policy(value).map(|x| v.policy = Some(x))
            }
            "alpha" => {
                spans.alpha = span;
                alpha(value).map(|x| v.alpha = Some(x))
            }
            _ => name(value).map(|x| v.name = Some(x)),
        };
        if let Err(e) = result {
            push(e);
        }
    }
    let given = |name: &str| seen.iter().find(|(s, _)| s == name).map(|(_, span)| *span);
    let mut required: Vec<&str> = vec!["seq_len"];
    match (given("budget"), given("memory")) {
        (Some(_), Some(memory)) => push(syn::Error::new(
            memory,
            "give the checkpoint memory once: `budget` (hidden-state units or a percentage) or `memory` (bytes), not both",
        )),
        (None, None) => push(syn::Error::new(
            at,
            format!(
                "missing argument `budget` or `memory`: {}, or the bytes a step may hold, e.g. `memory = \"256MiB\"`",
                example("budget")
            ),
        )),
        _ => {}
    }
    let sizes = memory_sizes(derived.is_some());
    if given("memory").is_some() {
        required.extend(sizes);
    } else {
        for size in sizes {
            if let Some(span) = given(size) {
                push(syn::Error::new(
                    span,
                    format!(
                        "`{size}` sizes a budget in bytes: give `memory = \"..\"` with it (instead of `budget`), or remove it"
                    ),
                ));
            }
        }
    }
    if derived.is_none() {
        required.push("alpha");
    }
    for required in required {
        if given(required).is_none() {
            push(syn::Error::new(
                at,
                format!("missing argument `{required}`: {}", example(required)),
            ));
        }
    }
    if let Some(errors) = errors {
        return Err(errors);
    }
    let amount = match (v.budget, v.memory) {
        (Some(budget), _) => Some(Amount::Budget(budget)),
        (None, Some(bytes)) => {
            let sizes = match (v.state, v.working, v.batch, v.classes) {
                (Some(state), Some(working), _, _) => Some(Sizes::Bytes { state, working }),
                (_, _, Some(batch), Some(classes)) => Some(Sizes::Rows { batch, classes }),
                _ => None,
            };
            sizes.map(|sizes| Amount::Memory { bytes, sizes })
        }
        (None, None) => None,
    };
    match (v.len, amount, v.alpha.or(derived)) {
        (Some(len), Some(amount), Some(alpha)) => Ok((
            Args {
                len,
                amount,
                alpha,
                policy: v.policy.unwrap_or(Policy::Msm),
                name: v.name.map(|n| n.to_string()),
            },
            spans,
        )),
        _ => Err(syn::Error::new(
            at,
            "missing arguments: seq_len, budget (or memory) and alpha are required",
        )),
    }
}
