//! [`CellError`]: a mistake in a cell's definition, at the token that made it.

use std::fmt;

use proc_macro2::Span;

/// A mistake in a cell's definition or its sizes, with the span of the
/// offending token: a macro reports it there ([`CellError::to_syn_error`]),
/// text read at run time shows its line and column.
#[derive(Debug, Clone)]
pub struct CellError {
    span: Span,
    message: String,
}

impl CellError {
    /// An error at `span`.
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        CellError {
            span,
            message: message.into(),
        }
    }

    /// The message without a location.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The offending token's span.
    pub fn span(&self) -> Span {
        self.span
    }

    /// The error as a `syn::Error` at its span, for a macro to report.
    pub fn to_syn_error(&self) -> syn::Error {
        syn::Error::new(self.span, &self.message)
    }
}

impl From<syn::Error> for CellError {
    fn from(e: syn::Error) -> Self {
        CellError::new(e.span(), e.to_string())
    }
}

impl fmt::Display for CellError {
    /// `line 4, column 12: unknown name `hh``, or the message alone when the
    /// span has no location (tokens from a macro).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let start = self.span.start();
        if start.line > 0 {
            write!(
                f,
                "line {}, column {}: {}",
                start.line,
                start.column + 1,
                self.message
            )
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for CellError {}
