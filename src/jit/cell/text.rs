//! A cell's compiled kernels as Cranelift IR text: a legend of the cell's
//! sizes and the calling convention, then each kernel headed by its method's
//! name, every product call annotated with the product it computes.

use std::fmt::Write;

use cranelift_codegen::ir::{Function, UserFuncName};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::FunctionBuilderContext;

use super::gemm::Gemm;
use super::kernel::{PARAMS, build_kernel, import_by_name, kernel_signature};
use crate::cell_lang::Method;
use crate::cell_lang::{CellProgram, Instr, Matrix, ParamMatrix, ParamSlot, Temp};
use crate::error::Error;
use crate::jit::text::write_annotated;

/// A temporary as the annotations name it: `s<offset>[<width>]`, `rows ·
/// offset` floats into scratch, `width` columns.
fn temp(t: Temp) -> String {
    format!("s{}[{}]", t.offset, t.width)
}

fn matrix(a: Matrix) -> String {
    match a {
        Matrix::Input => "x".to_owned(),
        Matrix::Temp(t) => temp(t),
    }
}

/// A parameter matrix by its name in the cell (`w`, or `w[1..6]` for some
/// of its rows), else by its place in the parameter vector.
fn param(program: &CellProgram, w: ParamMatrix) -> String {
    let rows_of = |p: &ParamSlot| {
        let [rows, cols] = p.shape[..] else {
            return None;
        };
        let skip = w.offset.checked_sub(p.offset)?;
        let first = skip / cols;
        let fits = cols == w.cols && skip % cols == 0 && first + w.rows <= rows;
        fits.then(|| match (first, w.rows) {
            (0, n) if n == rows => p.name.clone(),
            _ => format!("{}[{first}..{}]", p.name, first + w.rows),
        })
    };
    program
        .params
        .iter()
        .find_map(rows_of)
        .unwrap_or_else(|| format!("params[{}][{}x{}]", w.offset, w.rows, w.cols))
}

/// What a product instruction computes, in words.
fn describe(program: &CellProgram, instr: &Instr) -> Option<String> {
    Some(match *instr {
        Instr::MatMul { a, w, out } => {
            format!("{} += {} . {}", temp(out), matrix(a), param(program, w))
        }
        Instr::RowSum { a, out } => format!("{} = sum of each row of {}", temp(out), temp(a)),
        Instr::MatMulT { a, w, out } => {
            format!("{} += {} . {}^T", temp(out), temp(a), param(program, w))
        }
        Instr::WeightGrad { a, dy, w } => {
            format!("d{} += {}^T . {}", param(program, w), matrix(a), temp(dy))
        }
        Instr::RowProduct {
            op,
            m,
            n,
            a,
            b,
            out,
        } => {
            format!(
                "{} = {}[{m}x{n}]({}, {}) per row",
                temp(out),
                op.name(),
                temp(a),
                temp(b)
            )
        }
        Instr::Loop(_) => return None,
    })
}

/// The comment lines that open the text.
fn legend(program: &CellProgram) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "; bptt cell {} ({}): rows of x {}, state {}, tape {} (alpha {}) and scratch {} floats; {} parameters",
        program.name,
        program.sizes_text(),
        program.input_size,
        program.state_size,
        program.tape_size,
        program.alpha(),
        program.scratch_size,
        program.param_count,
    );
    let _ = writeln!(
        text,
        "; each kernel is fn({}), null where the method has no such buffer;",
        PARAMS.join(", ")
    );
    let _ = writeln!(
        text,
        "; sN[W] is the scratch temporary at rows * N floats, W wide; bptt_cell_gemm_*(m, k, n, a, b, c) add products, b packed for nn_packed"
    );
    if Gemm::imported(program).len() > 2 {
        let _ = writeln!(
            text,
            "; bptt_cell_outer/vecmat/matvec(rows, m, n, a, b, c) write each row's outer(a, b), a . B or A . b of [m, n] matrices"
        );
    }
    text
}

/// The IR of the kernels that [`super::native::Native::compile`] compiles
/// for `program`, as text.
pub(super) fn render(program: &CellProgram, config: TargetFrontendConfig) -> Result<String, Error> {
    let mut text = legend(program);
    let mut builder_ctx = FunctionBuilderContext::new();
    for method in Method::ALL {
        let kernel = method.kernel(program);
        let name = UserFuncName::testcase(method.name());
        let mut func = Function::with_name_signature(name, kernel_signature(config));
        let gemms = import_by_name(&mut func, config, program);
        build_kernel(&mut func, &mut builder_ctx, gemms, program, kernel, config);
        let products: Vec<String> = kernel
            .instrs
            .iter()
            .filter_map(|instr| describe(program, instr))
            .collect();
        let _ = write!(text, "\n; {}\n", method.name());
        write_annotated(&mut text, &func, products.into_iter())?;
    }
    Ok(text)
}
