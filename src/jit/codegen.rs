//! Cranelift code generation: lowered calls become functions of shim calls
//! (loops over runs), compiled into the [`JitModule`] that [`Jit`] owns.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    AbiParam, BlockArg, ExtFuncData, ExternalName, FuncRef, Function, InstBuilder, Signature,
    Value, types,
};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::FuncId;

use super::module::{IsaOptions, JitModule};
use super::shims::{RunFrame, Shim};
use crate::error::Error;
use crate::runs::{Field, Run};

/// A compiled function: `extern "C" fn(frame)` running one chunk of calls.
type ChunkFn = unsafe extern "C" fn(*mut RunFrame<'_>);

/// The signature of a compiled function: the frame pointer, nothing returned.
pub(crate) fn chunk_signature(config: TargetFrontendConfig) -> Signature {
    let mut sig = Signature::new(config.default_call_conv);
    sig.params.push(AbiParam::new(config.pointer_type()));
    sig
}

/// The signature of a shim: the frame pointer, then `arity` `i64`s.
fn shim_signature(shim: Shim, config: TargetFrontendConfig) -> Signature {
    let mut sig = chunk_signature(config);
    sig.params
        .extend((0..shim.arity()).map(|_| AbiParam::new(types::I64)));
    sig
}

/// Imports every shim into `func` under its symbol name as a test-case name:
/// for IR that is printed, never compiled.
pub(crate) fn import_by_name(func: &mut Function, config: TargetFrontendConfig) -> [FuncRef; 6] {
    Shim::ALL.map(|shim| {
        let signature = func.import_signature(shim_signature(shim, config));
        func.import_function(ExtFuncData {
            name: ExternalName::testcase(shim.name()),
            signature,
            colocated: false,
            patchable: false,
        })
    })
}

/// Fills `func` (its name already set) with the calls of `runs` in order,
/// then a return: a run of one call is a call of its shim with the frame
/// pointer first and the step and offsets as constants; a longer run is a
/// loop over its calls, its arguments block parameters that step or swap
/// each iteration. `shims` are the imported shims in [`Shim::ALL`] order.
pub(crate) fn build_chunk(
    func: &mut Function,
    builder_ctx: &mut FunctionBuilderContext,
    shims: [FuncRef; 6],
    runs: &[Run<Shim>],
    config: TargetFrontendConfig,
) {
    func.signature = chunk_signature(config);
    let mut b = FunctionBuilder::new(func, builder_ctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let frame = b.block_params(entry)[0];
    for run in runs {
        let shim = shims[run.kind as usize];
        if run.count == 1 {
            let mut values = vec![frame];
            for field in run.fields() {
                let value = field.at(0).expect("a run's first call has its arguments");
                values.push(b.ins().iconst(types::I64, value));
            }
            b.ins().call(shim, &values);
        } else {
            build_loop(&mut b, frame, shim, run);
        }
    }
    b.ins().return_(&[]);
    b.finalize(config);
}

/// The loop over a run's calls: block parameters `i`, then per argument its
/// value (and, for an alternating one, the other value, swapped each
/// iteration).
fn build_loop(b: &mut FunctionBuilder<'_>, frame: Value, shim: FuncRef, run: &Run<Shim>) {
    let body = b.create_block();
    let exit = b.create_block();
    let mut start = vec![BlockArg::Value(b.ins().iconst(types::I64, 0))];
    b.append_block_param(body, types::I64);
    for field in run.fields() {
        let values: &[i64] = match *field {
            Field::Step { start, .. } => &[start],
            Field::Alternate { first, second } => &[first, second],
        };
        for &v in values {
            b.append_block_param(body, types::I64);
            start.push(BlockArg::Value(b.ins().iconst(types::I64, v)));
        }
    }
    b.ins().jump(body, &start);
    b.switch_to_block(body);
    let params = b.block_params(body).to_vec();
    let mut args = vec![frame];
    let mut next = vec![BlockArg::Value(b.ins().iadd_imm_s(params[0], 1))];
    let mut p = 1;
    for field in run.fields() {
        args.push(params[p]);
        match *field {
            Field::Step { delta, .. } => {
                next.push(BlockArg::Value(b.ins().iadd_imm_s(params[p], delta)));
                p += 1;
            }
            Field::Alternate { .. } => {
                next.extend([BlockArg::Value(params[p + 1]), BlockArg::Value(params[p])]);
                p += 2;
            }
        }
    }
    b.ins().call(shim, &args);
    let BlockArg::Value(i_next) = next[0] else {
        unreachable!("the counter is a value")
    };
    let more = b
        .ins()
        .icmp_imm_u(IntCC::UnsignedLessThan, i_next, i64::from(run.count));
    b.ins().brif(more, body, &next, exit, &[]);
    b.seal_block(body);
    b.switch_to_block(exit);
    b.seal_block(exit);
}

/// The compiled functions of one schedule, in order, in a module of their
/// own: the pointers never leave it, and dropping it frees the code.
pub(crate) struct Jit {
    /// Declared before `module`, so that the pointers die first.
    chunks: Vec<ChunkFn>,
    module: JitModule,
    shims: [FuncId; 6],
}

impl Jit {
    /// An empty module that links the shims by name, compiled with the
    /// single-pass register allocator (the code is calls with constant
    /// arguments: the allocator costs at most a spill of the frame pointer
    /// per call, next to a kernel, and compiles three times faster).
    pub(crate) fn new(verifier: bool) -> Result<Self, Error> {
        let options = IsaOptions {
            verifier,
            single_pass_regalloc: true,
        };
        let symbols = Shim::ALL.map(|shim| (shim.name(), shim.address()));
        let mut module = JitModule::new(options, symbols)?;
        let config = module.config();
        let mut shims = [FuncId::from_u32(0); 6];
        for (id, shim) in shims.iter_mut().zip(Shim::ALL) {
            *id = module.import(shim.name(), &shim_signature(shim, config))?;
        }
        Ok(Jit {
            chunks: Vec::new(),
            module,
            shims,
        })
    }

    /// The target's pointer type and calling convention.
    pub(crate) fn config(&self) -> TargetFrontendConfig {
        self.module.config()
    }

    /// How many functions were compiled.
    pub(crate) fn functions(&self) -> usize {
        self.chunks.len()
    }

    /// Compiles `runs` as functions of at most `per_function` runs each, to
    /// be run in order. Called once per `Jit`.
    pub(crate) fn compile(&mut self, runs: &[Run<Shim>], per_function: usize) -> Result<(), Error> {
        assert!(self.chunks.is_empty(), "a Jit compiles one schedule");
        let config = self.config();
        let sig = chunk_signature(config);
        let imports = self.shims.map(Some);
        let mut ids = Vec::with_capacity(runs.len().div_ceil(per_function.max(1)));
        for (k, chunk) in runs.chunks(per_function.max(1)).enumerate() {
            let id = self.module.define(
                &format!("bptt_chunk_{k}"),
                &sig,
                imports,
                |func, builder_ctx, refs| {
                    let refs = refs.map(|r| r.expect("every shim is imported"));
                    build_chunk(func, builder_ctx, refs, chunk, config);
                },
            )?;
            ids.push(id);
        }
        self.module.finalize()?;
        for id in ids {
            let code = self.module.code(id);
            // SAFETY: `code` is the entry of a function just compiled and
            // finalized with `chunk_signature`: one pointer-sized argument,
            // nothing returned, in the host's default calling convention,
            // which is the platform's C ABI. The pointer is kept in `self`
            // only, beside the module that frees the code when dropped.
            let f = unsafe { std::mem::transmute::<*const u8, ChunkFn>(code) };
            self.chunks.push(f);
        }
        Ok(())
    }

    /// Runs every compiled function in order on `frame`, stopping after the
    /// first whose shims caught a panic.
    pub(crate) fn run(&self, frame: &mut RunFrame<'_>) {
        for chunk in &self.chunks {
            // SAFETY: the function was compiled by `self.module`, which is
            // alive (borrowed by `&self`) and frees code only on drop; its
            // signature is `ChunkFn`; it only passes `frame` on to the shims,
            // which take it as exclusive for each call (the `&mut` guarantees
            // no one else holds it) and never unwind.
            unsafe { chunk(frame) };
            if frame.failed() {
                break;
            }
        }
    }
}

impl std::fmt::Debug for Jit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jit")
            .field("functions", &self.chunks.len())
            .finish_non_exhaustive()
    }
}
