//! The arguments of `#[bptt(...)]`, parsed with the span of each one kept.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, Token, UnOp};

use super::Spec;
use crate::error::Error;
use crate::policy::Policy;
use crate::units::Budget;

/// The argument names, in the order the messages list them.
const NAMES: [&str; 5] = ["seq_len", "budget", "policy", "alpha", "name"];

/// What each required argument is, for the "missing" message.
fn example(name: &str) -> &'static str {
    match name {
        "seq_len" => "the sequence length, e.g. `seq_len = 1000`",
        "budget" => {
            "hidden-state units or a percentage of store-all, e.g. `budget = 200` or `budget = \"5%\"`"
        }
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
                "expected an argument such as `seq_len = 1000` (arguments: seq_len, budget, policy, alpha, name)",
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

/// Parses the attribute's arguments into a [`Spec`] and the span of each
/// argument; every problem found is reported, combined into one error.
///
/// `derived` is the alpha of a cell whose program fixes it (`cell!`): then
/// `alpha` may not be given. Missing arguments are reported at `at`.
pub(crate) fn parse(
    args: TokenStream,
    derived: Option<f64>,
    at: Span,
) -> syn::Result<(Spec, Spans)> {
    let parsed = syn::punctuated::Punctuated::<Arg, Token![,]>::parse_terminated.parse2(args)?;
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    let mut seen: Vec<String> = Vec::new();
    let (mut len, mut bud, mut pol, mut alp, mut nam) = (None, None, None, None, None);
    let mut spans = Spans {
        seq_len: Span::call_site(),
        budget: Span::call_site(),
        policy: Span::call_site(),
        alpha: Span::call_site(),
    };
    for arg in &parsed {
        let key = arg.name.to_string();
        if !NAMES.contains(&key.as_str()) {
            push(syn::Error::new(
                arg.name.span(),
                format!(
                    "unknown argument `{key}`: expected seq_len, budget, policy, alpha or name"
                ),
            ));
            continue;
        }
        if seen.contains(&key) {
            push(syn::Error::new(
                arg.name.span(),
                format!("duplicate argument `{key}`: give it once"),
            ));
            continue;
        }
        seen.push(key.clone());
        let span = arg.value.span();
        let result = match key.as_str() {
            "seq_len" => {
                spans.seq_len = span;
                seq_len(&arg.value).map(|v| len = Some(v))
            }
            "budget" => {
                spans.budget = span;
                budget(&arg.value).map(|v| bud = Some(v))
            }
            "policy" => {
                spans.policy = span;
                policy(&arg.value).map(|v| pol = Some(v))
            }
            "alpha" => match derived {
                Some(derived) => Err(syn::Error::new(
                    arg.name.span(),
                    format!(
                        "`alpha` is derived from the cell (its tape over its state: {derived}): remove it"
                    ),
                )),
                None => {
                    spans.alpha = span;
                    alpha(&arg.value).map(|v| alp = Some(v))
                }
            },
            _ => name(&arg.value).map(|v| nam = Some(v)),
        };
        if let Err(e) = result {
            push(e);
        }
    }
    let required: &[&str] = match derived {
        Some(_) => &["seq_len", "budget"],
        None => &["seq_len", "budget", "alpha"],
    };
    for &required in required {
        if !seen.iter().any(|s| s == required) {
            push(syn::Error::new(
                at,
                format!("missing argument `{required}`: {}", example(required)),
            ));
        }
    }
    if let Some(errors) = errors {
        return Err(errors);
    }
    match (len, bud, alp.or(derived)) {
        (Some(len), Some(budget), Some(alpha)) => Ok((
            Spec {
                len,
                budget,
                alpha,
                policy: pol.unwrap_or(Policy::Msm),
                name: nam.map(|n| n.to_string()),
            },
            spans,
        )),
        _ => Err(syn::Error::new(
            at,
            "missing arguments: seq_len, budget and alpha are required",
        )),
    }
}
