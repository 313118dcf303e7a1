//! Cells read from files, with sizes bound the way the command line binds
//! them.

use std::path::Path;

use super::program::CellProgram;
use super::syntax::{CellDef, SizeExpr};
use crate::error::Error;

/// Reads and parses a cell file; errors name the file, line and column.
pub fn load(path: &Path) -> Result<CellDef, Error> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| Error::Io(format!("cannot read the cell file {}: {e}", path.display())))?;
    CellDef::parse_str(&src).map_err(|e| Error::Cell(format!("{}: {e}", path.display())))
}

impl CellDef {
    /// Compiles the cell with its input's size set to `input` (the input's
    /// shape must be one size name, e.g. `[input]`) and the size `hidden`, if
    /// it declares one, set to `hidden`: how `bptt train --cell` binds a
    /// cell to a task. Any other size is an error naming it.
    pub fn compile_for(&self, input: usize, hidden: usize) -> Result<CellProgram, Error> {
        let fail = |msg: String| Error::Cell(format!("cell `{}`: {msg}", self.name));
        let input_name = match &self.input.shape[..] {
            [SizeExpr { terms, constant: 0 }] if terms.len() == 1 && terms[0].1 == 1 => {
                terms[0].0.clone()
            }
            _ => {
                return Err(fail(format!(
                    "the input `{}` must have the shape of one size name, e.g. `[input]`, to be bound to the task",
                    self.input.name
                )));
            }
        };
        let mut sizes = vec![(input_name.as_str(), input)];
        for s in self.size_names() {
            if s == input_name {
                continue;
            }
            if s != "hidden" {
                return Err(fail(format!(
                    "size `{s}` has no value: the command line sets the input's size and `hidden` only"
                )));
            }
            sizes.push(("hidden", hidden));
        }
        self.compile(&sizes).map_err(|e| fail(e.to_string()))
    }
}
