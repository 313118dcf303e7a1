//! Bounds on the work any cell definition can cause, checked before the
//! recursive parts of parsing and compiling run.
//!
//! `syn`'s expression parser, the conversion to the language's tree, the
//! graph's simplifying constructors and the lowering all recurse, so a cell
//! with thousands of nested parentheses or a `let` chain thousands deep would
//! overflow the stack, and `syn` reads a numeric literal in time quadratic in
//! its digits. [`check_tokens`] walks the tokens iteratively first (every
//! parse of a cell goes through [`parse2`]) and
//! [`check_def`] walks the parsed definition, so that every input is refused
//! at the offending token, with its line and column, well before any of that
//! can happen: in linear time, and within a fraction of a 2 MiB stack (the
//! tests parse and compile inputs at every limit on one).
//!
//! The limits, far above what a real cell needs (the LSTM nests 4 deep, has
//! at most 12 names and numbers in a statement and a graph 12 deep):
//!
//! | what                                                      | at most                 |
//! |-----------------------------------------------------------|-------------------------|
//! | nesting of `( )`, `[ ]`, `{ }` (calls, shapes, the cell's braces) | [`MAX_NESTING`]  |
//! | operators in a row (`- - x`, a unary minus chain)         | [`MAX_OPERATOR_RUN`]    |
//! | names and numbers in one statement (terms of a sum)       | [`MAX_TERMS`]           |
//! | names and numbers in the whole cell                       | [`MAX_TOTAL_TERMS`]     |
//! | statements (`;`)                                          | [`MAX_STATEMENTS`]      |
//! | characters of a name or a number                          | [`MAX_TOKEN_CHARS`]     |
//! | depth of the step's expression graph, through `let`s      | [`MAX_DEPTH`]           |
//! | bytes of a cell file                                      | [`MAX_SOURCE_BYTES`]    |
//!
//! Numbers must be finite as `f32` (`1e39` is refused, not read as infinity),
//! and a name is declared once (sizes among sizes; inputs, states and
//! parameters among themselves; the names of one `let`).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::{Ident, Lit};

use super::syntax::{CellDef, Expr, Stmt};
use crate::error::Error;

/// Groups (`( )`, `[ ]`, `{ }`) open at once, counting the cell's braces.
pub const MAX_NESTING: usize = 32;
/// Operator tokens in a row, such as a chain of unary minuses.
pub const MAX_OPERATOR_RUN: usize = 8;
/// Names and numbers in one statement.
pub const MAX_TERMS: usize = 256;
/// Names and numbers in the whole definition.
pub const MAX_TOTAL_TERMS: usize = 8192;
/// Statements (declarations and equations) in the whole definition.
pub const MAX_STATEMENTS: usize = 1024;
/// Characters of one name or number.
pub const MAX_TOKEN_CHARS: usize = 64;
/// Operations along the longest path of the step's expression graph,
/// following `let` names to their definitions.
pub const MAX_DEPTH: usize = 256;
/// Bytes of a cell file.
pub const MAX_SOURCE_BYTES: u64 = 1 << 20;

/// Characters of a name quoted in a message.
const QUOTED_CHARS: usize = 16;

/// `text` as quoted in a message: at most a short prefix.
pub fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((end, _)) => format!("`{}...`", &text[..end]),
        None => format!("`{text}`"),
    }
}

fn fail(span: Span, message: String) -> syn::Error {
    syn::Error::new(span, message)
}

/// Parses `T` from `tokens` once they pass [`check_tokens`]: the checks
/// come before `syn`, whose token buffer already recurses into groups.
pub fn parse2<T: syn::parse::Parse>(tokens: TokenStream) -> syn::Result<T> {
    check_tokens(tokens.clone())?;
    syn::parse2(tokens)
}

/// [`parse2`] on text, e.g. a cell file.
pub fn parse_str<T: syn::parse::Parse>(src: &str) -> syn::Result<T> {
    parse2(src.parse()?)
}

/// Checks the tokens of a definition against the limits above, without
/// recursion, in time linear in their number.
pub fn check_tokens(tokens: TokenStream) -> syn::Result<()> {
    let mut stack = vec![tokens.into_iter()];
    let (mut terms, mut total, mut statements, mut run) = (0usize, 0usize, 0usize, 0usize);
    while let Some(level) = stack.last_mut() {
        let Some(tree) = level.next() else {
            stack.pop();
            continue;
        };
        if !matches!(tree, TokenTree::Punct(_)) {
            run = 0;
        }
        match tree {
            TokenTree::Group(group) => {
                if stack.len() > MAX_NESTING {
                    return Err(fail(
                        group.span_open(),
                        format!(
                            "nested more than {MAX_NESTING} levels deep (brackets, calls and braces)"
                        ),
                    ));
                }
                stack.push(group.stream().into_iter());
            }
            TokenTree::Punct(p) if p.as_char() == ';' => {
                statements += 1;
                terms = 0;
                run = 0;
                if statements > MAX_STATEMENTS {
                    return Err(fail(
                        p.span(),
                        format!("more than {MAX_STATEMENTS} statements in one cell"),
                    ));
                }
            }
            TokenTree::Punct(p) => {
                run += 1;
                if run > MAX_OPERATOR_RUN {
                    return Err(fail(
                        p.span(),
                        format!("more than {MAX_OPERATOR_RUN} operators in a row"),
                    ));
                }
            }
            TokenTree::Ident(ident) => {
                let text = ident.to_string();
                check_chars(&text, ident.span(), "name")?;
                count_term(&mut terms, &mut total, ident.span())?;
            }
            TokenTree::Literal(literal) => {
                check_literal(&literal)?;
                count_term(&mut terms, &mut total, literal.span())?;
            }
        }
    }
    Ok(())
}

fn count_term(terms: &mut usize, total: &mut usize, span: Span) -> syn::Result<()> {
    *terms += 1;
    *total += 1;
    if *terms > MAX_TERMS {
        return Err(fail(
            span,
            format!("more than {MAX_TERMS} names and numbers in one statement"),
        ));
    }
    if *total > MAX_TOTAL_TERMS {
        return Err(fail(
            span,
            format!("more than {MAX_TOTAL_TERMS} names and numbers in one cell"),
        ));
    }
    Ok(())
}

fn check_chars(text: &str, span: Span, what: &str) -> syn::Result<()> {
    if text.chars().count() > MAX_TOKEN_CHARS {
        return Err(fail(
            span,
            format!(
                "the {what} {} is longer than {MAX_TOKEN_CHARS} characters",
                quoted(text)
            ),
        ));
    }
    Ok(())
}

/// A number is short and finite as `f32`; strings (doc comments) pass.
fn check_literal(literal: &proc_macro2::Literal) -> syn::Result<()> {
    let text = literal.to_string();
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return Ok(());
    }
    check_chars(&text, literal.span(), "number")?;
    if let Lit::Float(f) = Lit::new(literal.clone())
        && !f.base10_parse::<f32>().is_ok_and(f32::is_finite)
    {
        return Err(fail(
            literal.span(),
            format!(
                "the number {} is out of range: numbers are f32, at most about 3.4e38",
                quoted(&text)
            ),
        ));
    }
    Ok(())
}

/// Checks a parsed definition: names declared once, and the depth of the
/// expression graph, following `let`s, at most [`MAX_DEPTH`].
pub fn check_def(def: &CellDef) -> syn::Result<()> {
    once(def.sizes.iter(), "size")?;
    let tensors = def
        .inputs
        .iter()
        .map(|d| &d.name)
        .chain(def.states.iter().map(|d| &d.name))
        .chain(def.params.iter().map(|p| &p.decl.name));
    once(tensors, "name")?;
    let mut depths: HashMap<String, usize> = HashMap::new();
    for stmt in &def.body {
        let value = match stmt {
            Stmt::Let { value, .. } | Stmt::Assign { value, .. } => value,
        };
        let d = depth(value, &depths);
        if d > MAX_DEPTH {
            return Err(fail(
                value.span(),
                format!(
                    "the expression graph is {d} operations deep here, through `let`s (at most {MAX_DEPTH})"
                ),
            ));
        }
        if let Stmt::Let { names, .. } = stmt {
            once(names.iter(), "`let` name")?;
            depths.extend(names.iter().map(|n| (n.to_string(), d)));
        }
    }
    Ok(())
}

/// Refuses the second declaration of a name.
fn once<'a>(names: impl Iterator<Item = &'a Ident>, what: &str) -> syn::Result<()> {
    let mut seen: HashMap<String, ()> = HashMap::new();
    for n in names {
        let text = n.to_string();
        if seen.insert(text.clone(), ()).is_some() {
            return Err(fail(
                n.span(),
                format!("the {what} {} is declared twice", quoted(&text)),
            ));
        }
    }
    Ok(())
}

/// Operations along the longest path from `e` to a declared value; its
/// recursion is bounded by the token limits, checked first.
fn depth(e: &Expr, lets: &HashMap<String, usize>) -> usize {
    match e {
        Expr::Name(n) => lets.get(&n.to_string()).copied().unwrap_or(0),
        Expr::Number(..) | Expr::Sizes(..) => 0,
        Expr::Neg(a, _) => 1 + depth(a, lets),
        Expr::Binary(_, a, b, _) => 1 + depth(a, lets).max(depth(b, lets)),
        Expr::Call(_, args, _) => 1 + args.iter().map(|a| depth(a, lets)).max().unwrap_or(0),
    }
}

/// Reads a cell file of at most [`MAX_SOURCE_BYTES`], checked as UTF-8.
pub fn read_source(path: &Path) -> Result<String, Error> {
    let what = || format!("cannot read the cell file {}", path.display());
    let file = std::fs::File::open(path).map_err(Error::io(what()))?;
    let mut bytes = Vec::new();
    file.take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io(what()))?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(Error::File(format!(
            "the cell file {} is larger than {} bytes, the most bptt reads",
            path.display(),
            MAX_SOURCE_BYTES
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::File(format!(
            "the cell file {} is not UTF-8 (at byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}
