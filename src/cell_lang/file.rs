//! Cells read from files, with sizes bound the way the command line binds
//! them.

use std::path::Path;

use super::program::CellProgram;
use super::syntax::{CellDef, SizeExpr};
use crate::error::Error;

/// Reads and parses a cell file; errors name the file, line and column.
pub fn load(path: &Path) -> Result<CellDef, Error> {
    let src = super::limits::read_source(path)?;
    CellDef::parse_str(&src).map_err(|e| Error::Cell(format!("{}: {e}", path.display())))
}

/// Reads, parses and compiles a cell file, its sizes bound as
/// [`CellDef::compile_for`] binds them; every error names the file.
pub fn compile_file(
    path: &Path,
    input: usize,
    hidden: usize,
    given: &[(String, usize)],
) -> Result<CellProgram, Error> {
    load(path)?
        .compile_for(input, hidden, given)
        .map_err(|e| Error::Cell(format!("{}: {e}", path.display())))
}

impl CellDef {
    /// Compiles the cell with its input's size set to `input` (the input's
    /// shape must be one size name, e.g. `[input]`), other sizes from
    /// `given` (`--size NAME=N`), and the size `hidden`, if it declares one
    /// and `given` does not set it, set to `hidden`: how `bptt train --cell`
    /// binds a cell to a task. A size left without a value, or given but not
    /// declared, is an error naming it.
    pub fn compile_for(
        &self,
        input: usize,
        hidden: usize,
        given: &[(String, usize)],
    ) -> Result<CellProgram, Error> {
        let fail = |msg: String| Error::Cell(format!("cell `{}`: {msg}", self.name));
        let [input_decl] = &self.inputs[..] else {
            return Err(fail(format!(
                "it has {} inputs; a task gives one, so bind its sizes with `CellDef::compile`",
                self.inputs.len()
            )));
        };
        let input_name = match &input_decl.shape[..] {
            [SizeExpr { terms, constant: 0 }] if terms.len() == 1 && terms[0].1 == 1 => {
                terms[0].0.clone()
            }
            _ => {
                return Err(fail(format!(
                    "the input `{}` must have the shape of one size name, e.g. `[input]`, to be bound to the task",
                    input_decl.name
                )));
            }
        };
        if given.iter().any(|(n, _)| *n == input_name) {
            return Err(fail(format!(
                "the input's size `{input_name}` is the task's; it cannot be given"
            )));
        }
        let mut sizes = vec![(input_name.as_str(), input)];
        sizes.extend(given.iter().map(|(n, v)| (n.as_str(), *v)));
        let names = self.size_names();
        for s in &names {
            if sizes.iter().any(|(n, _)| n == s) {
                continue;
            }
            if s != "hidden" {
                return Err(fail(format!(
                    "size `{s}` has no value: give it with `--size {s}=N`"
                )));
            }
            sizes.push(("hidden", hidden));
        }
        self.compile(&sizes).map_err(|e| fail(e.to_string()))
    }
}
