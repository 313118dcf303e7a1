//! The `cell!` macro's own attributes on a cell: `#[sizes(..)]`, which binds
//! the size names, and `#[bptt(..)]`, which asks for a schedule.

use proc_macro2::{Span, TokenStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, Lit, Meta, MetaNameValue, Token};

use crate::cell_lang::CellDef;

/// What the attributes ask for.
pub(super) struct Options {
    /// Every size the cell declares with its value, in declaration order.
    pub sizes: Vec<(String, usize)>,
    /// The arguments of `#[bptt(..)]` and the span of its name.
    pub bptt: Option<(TokenStream, Span)>,
}

/// Whether `attr` is one of the macro's own, which the struct does not get.
fn is_own(attr: &Attribute) -> bool {
    attr.path().is_ident("sizes") || attr.path().is_ident("bptt")
}

/// The attributes that go on the struct: all but `#[sizes]` and `#[bptt]`.
pub(super) fn others(attrs: &[Attribute]) -> Vec<Attribute> {
    attrs.iter().filter(|a| !is_own(a)).cloned().collect()
}

/// Errors found so far, combined into one.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        let e = syn::Error::new(span, message);
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
}

/// Reads `#[sizes(..)]` (required when the cell declares sizes) and
/// `#[bptt(..)]` (optional) from a cell's attributes; every problem found
/// is reported, combined into one error.
pub(super) fn read(def: &CellDef) -> syn::Result<Options> {
    let mut errors = Errors::default();
    let (mut sizes, mut bptt): (Option<&Attribute>, Option<&Attribute>) = (None, None);
    for attr in def.attrs.iter().filter(|a| is_own(a)) {
        let (slot, what) = if attr.path().is_ident("sizes") {
            (&mut sizes, "sizes")
        } else {
            (&mut bptt, "bptt")
        };
        if slot.is_some() {
            errors.push(attr.path().span(), format!("one `#[{what}(..)]` per cell"));
        } else {
            *slot = Some(attr);
        }
    }
    let declared: Vec<String> = def.sizes.iter().map(ToString::to_string).collect();
    let sizes = match sizes {
        Some(attr) => read_sizes(attr, &declared, &mut errors),
        None if declared.is_empty() => Vec::new(),
        None => {
            let example: Vec<String> = declared.iter().map(|n| format!("{n} = ..")).collect();
            errors.push(
                def.name.span(),
                format!(
                    "missing `#[sizes({})]`: `cell!` emits the cell for concrete sizes",
                    example.join(", ")
                ),
            );
            Vec::new()
        }
    };
    let bptt = bptt.and_then(|attr| match &attr.meta {
        Meta::List(list) => Some((list.tokens.clone(), attr.path().span())),
        _ => {
            errors.push(attr.span(), "expected `#[bptt(seq_len = .., budget = ..)]`");
            None
        }
    });
    match errors.0 {
        Some(e) => Err(e),
        None => Ok(Options { sizes, bptt }),
    }
}

/// The sizes of `#[sizes(name = value, ..)]`, in declaration order, with
/// errors for names not declared, given twice or not given, and values that
/// are not positive integer literals.
fn read_sizes(attr: &Attribute, declared: &[String], errors: &mut Errors) -> Vec<(String, usize)> {
    let list = match attr.parse_args_with(Punctuated::<MetaNameValue, Token![,]>::parse_terminated)
    {
        Ok(list) => list,
        Err(e) => {
            errors.push(
                e.span(),
                "expected `#[sizes(name = value, ..)]`, e.g. `#[sizes(input = 8, hidden = 32)]`",
            );
            return Vec::new();
        }
    };
    let mut given: Vec<(String, usize)> = Vec::new();
    for pair in &list {
        let Some(name) = pair.path.get_ident() else {
            errors.push(pair.path.span(), "expected a size's name");
            continue;
        };
        let key = name.to_string();
        if !declared.contains(&key) {
            errors.push(
                name.span(),
                format!(
                    "unknown size `{key}`: the cell declares {}",
                    declared.join(", ")
                ),
            );
        } else if given.iter().any(|(n, _)| *n == key) {
            errors.push(name.span(), format!("duplicate size `{key}`: give it once"));
        } else {
            match value(&pair.value) {
                Some(v) => given.push((key, v)),
                None => errors.push(
                    pair.value.span(),
                    format!("size `{key}` must be a positive integer literal, e.g. `{key} = 32`"),
                ),
            }
        }
    }
    for name in declared {
        let bad = list.iter().any(|p| p.path.is_ident(name));
        if !bad && !given.iter().any(|(n, _)| n == name) {
            errors.push(
                attr.path().span(),
                format!("missing size `{name}` in `#[sizes(..)]`"),
            );
        }
    }
    given.sort_by_key(|(n, _)| declared.iter().position(|d| d == n));
    given
}

/// A positive integer literal's value.
fn value(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<usize>().ok().filter(|&v| v > 0),
        Expr::Group(g) => value(&g.expr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(src: &str) -> String {
        let def = CellDef::parse_str(src).unwrap();
        match read(&def) {
            Ok(_) => String::new(),
            Err(e) => e
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    const BODY: &str = "cell c { size input, hidden; input x: [input]; state h: [hidden]; \
                        param w: [input, hidden]; h = matmul(x, w); }";

    #[test]
    fn sizes_in_declaration_order_and_bptt_arguments() {
        let src =
            format!("#[bptt(seq_len = 4, budget = 2)] #[sizes(hidden = 5, input = 3)] {BODY}");
        let def = CellDef::parse_str(&src).unwrap();
        let options = read(&def).unwrap();
        assert_eq!(
            options.sizes,
            [("input".to_string(), 3), ("hidden".to_string(), 5)]
        );
        let (args, _) = options.bptt.unwrap();
        assert_eq!(args.to_string(), "seq_len = 4 , budget = 2");
        assert!(others(&def.attrs).is_empty());
    }

    #[test]
    fn every_problem_is_reported() {
        assert_eq!(
            errors(BODY),
            "missing `#[sizes(input = .., hidden = ..)]`: `cell!` emits the cell for concrete sizes"
        );
        assert_eq!(
            errors(&format!("#[sizes(input = 3, hiden = 5, input = 2)] {BODY}")),
            "unknown size `hiden`: the cell declares input, hidden\n\
             duplicate size `input`: give it once\n\
             missing size `hidden` in `#[sizes(..)]`"
        );
        assert_eq!(
            errors(&format!(
                "#[sizes(input = 3.5, hidden = 0)] #[bptt] #[bptt(x = 1)] {BODY}"
            )),
            "one `#[bptt(..)]` per cell\n\
             size `input` must be a positive integer literal, e.g. `input = 32`\n\
             size `hidden` must be a positive integer literal, e.g. `hidden = 32`\n\
             expected `#[bptt(seq_len = .., budget = ..)]`"
        );
    }
}
