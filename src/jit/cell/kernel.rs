//! One kernel as one CLIF function: the uniform signature, the matrix
//! products as shim calls with operand pointers computed from `rows`, and the
//! fused loops (see [`super::fused`]).

use cranelift_codegen::ir::{
    AbiParam, ExtFuncData, ExternalName, FuncRef, Function, InstBuilder, MemFlagsData, Signature,
    Type, Value,
};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

use super::fused::emit_loop;
use super::gemm::{Gemm, Shims, gemm_signature};
use super::reduce::emit_row_sum;
use crate::cell_lang::{Buffer, CellProgram, Instr, Kernel, Matrix, Temp};

/// The kernel's parameters, in order: `rows`, then the pointers `x`,
/// `state_prev`, `state_next`, `tape`, `grad_state`, `grad_state_prev`,
/// `params`, `grads`, `scratch` (null where the method has no such buffer),
/// `packed`, the packed weights (`bptt_runtime::Packed::all`), and
/// `packed_at`, where each copy of `CellProgram::packings` starts in them (a
/// `usize` each: the layout depends on the machine, the code does not).
pub(super) const PARAMS: [&str; 12] = [
    "rows",
    "x",
    "state_prev",
    "state_next",
    "tape",
    "grad_state",
    "grad_state_prev",
    "params",
    "grads",
    "scratch",
    "packed",
    "packed_at",
];

/// The signature of every kernel: [`PARAMS`], all pointer-sized, nothing
/// returned.
pub(super) fn kernel_signature(config: TargetFrontendConfig) -> Signature {
    let mut sig = Signature::new(config.default_call_conv);
    sig.params
        .extend(PARAMS.iter().map(|_| AbiParam::new(config.pointer_type())));
    sig
}

/// Imports the product shims `program` calls ([`Gemm::imported`]) into
/// `func` under their symbol names as test-case names: for IR that is
/// printed, never compiled.
pub(super) fn import_by_name(
    func: &mut Function,
    config: TargetFrontendConfig,
    program: &CellProgram,
) -> Shims {
    let mut shims = [None; Gemm::ALL.len()];
    for gemm in Gemm::imported(program) {
        let signature = func.import_signature(gemm_signature(config));
        shims[gemm.index()] = Some(func.import_function(ExtFuncData {
            name: ExternalName::testcase(gemm.name()),
            signature,
            colocated: false,
            patchable: false,
        }));
    }
    shims
}

/// The kernel's arguments as values of its entry block, in [`PARAMS`]
/// order.
pub(super) struct Args {
    /// The pointer type, also that of `rows`.
    pub ty: Type,
    values: [Value; PARAMS.len()],
}

impl Args {
    /// The batch rows.
    pub fn rows(&self) -> Value {
        self.values[0]
    }

    /// The pointer to `buffer`'s first float.
    pub fn buffer(&self, buffer: Buffer) -> Value {
        self.values[match buffer {
            Buffer::Input => 1,
            Buffer::StatePrev => 2,
            Buffer::StateNext => 3,
            Buffer::Tape => 4,
            Buffer::GradState => 5,
            Buffer::GradStatePrev => 6,
            Buffer::Scratch => 9,
        }]
    }

    /// The pointer to the first parameter.
    pub fn params(&self) -> Value {
        self.values[7]
    }

    /// The pointer to the first parameter gradient.
    pub fn grads(&self) -> Value {
        self.values[8]
    }

    /// The first float of copy `i` of the packed weights:
    /// `packed + 4·packed_at[i]`.
    pub fn packed(&self, b: &mut FunctionBuilder<'_>, i: usize) -> Value {
        let size = self.ty.bytes() as i32;
        let flags = MemFlagsData::new().with_notrap().with_readonly();
        let at = b
            .ins()
            .load(self.ty, flags, self.values[11], i as i32 * size);
        let bytes = b.ins().imul_imm_u(at, 4);
        b.ins().iadd(self.values[10], bytes)
    }
}

/// Fills `func` (its name already set) with `kernel` of `program`: one call
/// of the imported shim `gemms` (in [`Gemm::ALL`] order) per product (the
/// weights' packed copies found through `packed_at`) and one loop nest per
/// fused loop, in order, then a return.
pub(super) fn build_kernel(
    func: &mut Function,
    builder_ctx: &mut FunctionBuilderContext,
    gemms: Shims,
    program: &CellProgram,
    kernel: &Kernel,
    config: TargetFrontendConfig,
) {
    func.signature = kernel_signature(config);
    let mut b = FunctionBuilder::new(func, builder_ctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry);
    let args = Args {
        ty: config.pointer_type(),
        values: std::array::from_fn(|i| params[i]),
    };
    for instr in &kernel.instrs {
        match *instr {
            Instr::MatMul { a, w, out } => {
                let operands = [
                    args.rows(),
                    constant(&mut b, &args, w.rows),
                    constant(&mut b, &args, w.cols),
                    matrix(&mut b, &args, a),
                    args.packed(&mut b, program.packing_index(w, false)),
                    temp(&mut b, &args, out),
                ];
                b.ins().call(shim(&gemms, Gemm::NnPacked), &operands);
            }
            Instr::MatMulT { a, w, out } => {
                let operands = [
                    args.rows(),
                    constant(&mut b, &args, w.cols),
                    constant(&mut b, &args, w.rows),
                    temp(&mut b, &args, a),
                    args.packed(&mut b, program.packing_index(w, true)),
                    temp(&mut b, &args, out),
                ];
                b.ins().call(shim(&gemms, Gemm::NnPacked), &operands);
            }
            Instr::WeightGrad { a, dy, w } => {
                let operands = [
                    constant(&mut b, &args, w.rows),
                    args.rows(),
                    constant(&mut b, &args, w.cols),
                    matrix(&mut b, &args, a),
                    temp(&mut b, &args, dy),
                    offset(&mut b, args.grads(), w.offset),
                ];
                b.ins().call(shim(&gemms, Gemm::Tn), &operands);
            }
            Instr::RowProduct {
                op,
                m,
                n,
                a,
                b: second,
                out,
            } => {
                let operands = [
                    args.rows(),
                    constant(&mut b, &args, m),
                    constant(&mut b, &args, n),
                    temp(&mut b, &args, a),
                    temp(&mut b, &args, second),
                    temp(&mut b, &args, out),
                ];
                b.ins().call(shim(&gemms, Gemm::Row(op)), &operands);
            }
            Instr::RowSum { a, out } => emit_row_sum(&mut b, &args, a, out),
            Instr::Loop(ref fused) => emit_loop(&mut b, &args, fused),
        }
    }
    b.ins().return_(&[]);
    b.seal_all_blocks();
    b.finalize(config);
}

/// The imported shim of `gemm`.
fn shim(gemms: &Shims, gemm: Gemm) -> FuncRef {
    gemms[gemm.index()].expect("Gemm::imported lists every product a kernel calls")
}

/// A pointer-sized constant.
fn constant(b: &mut FunctionBuilder<'_>, args: &Args, n: usize) -> Value {
    b.ins().iconst(args.ty, n as i64)
}

/// `base + 4 · floats`.
fn offset(b: &mut FunctionBuilder<'_>, base: Value, floats: usize) -> Value {
    match floats {
        0 => base,
        _ => b.ins().iadd_imm_u(base, (floats * 4) as i64),
    }
}

/// The first float of a product operand.
fn matrix(b: &mut FunctionBuilder<'_>, args: &Args, a: Matrix) -> Value {
    match a {
        Matrix::Input => args.buffer(Buffer::Input),
        Matrix::Temp(t) => temp(b, args, t),
    }
}

/// The first float of a temporary: `scratch + 4 · rows · offset`.
pub(super) fn temp(b: &mut FunctionBuilder<'_>, args: &Args, t: Temp) -> Value {
    let scratch = args.buffer(Buffer::Scratch);
    match t.offset {
        0 => scratch,
        offset => {
            let bytes = b.ins().imul_imm_u(args.rows(), (offset * 4) as i64);
            b.ins().iadd(scratch, bytes)
        }
    }
}
