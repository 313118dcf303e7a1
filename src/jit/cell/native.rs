//! A cell's compiled kernels, in the [`JitModule`] that owns them.

use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_module::FuncId;

use super::super::module::{IsaOptions, JitModule};
use super::gemm::{Gemm, gemm_signature};
use super::kernel::{build_kernel, kernel_signature};
use crate::cell_lang::Checked;
use crate::cell_lang::Method;
use crate::error::Error;

/// A compiled kernel, with the parameters of [`super::kernel::PARAMS`].
type KernelFn = unsafe extern "C" fn(
    usize,
    *const f32,
    *const f32,
    *mut f32,
    *mut f32,
    *const f32,
    *mut f32,
    *const f32,
    *mut f32,
    *mut f32,
    *const f32,
    *const usize,
);

/// The arguments of one kernel call: the batch rows and a pointer per
/// buffer, null where the method has no such buffer.
pub(super) struct Buffers {
    pub rows: usize,
    pub x: *const f32,
    pub state_prev: *const f32,
    pub state_next: *mut f32,
    pub tape: *mut f32,
    pub grad_state: *const f32,
    pub grad_state_prev: *mut f32,
    pub params: *const f32,
    pub grads: *mut f32,
    pub scratch: *mut f32,
    pub packed: *const f32,
    pub packed_at: *const usize,
}

/// A cell's kernels compiled, one per [`Method`], in a module of their
/// own: the [`CellEngine`](crate::cell_lang::CellEngine) of a
/// [`JitCell`](super::JitCell). The compiled code touches nothing but its
/// arguments, so a `Native` may run on any thread.
pub struct Native {
    /// Declared before `module`, so that the pointers die first.
    kernels: [KernelFn; Method::ALL.len()],
    _module: JitModule,
    config: TargetFrontendConfig,
}

impl Native {
    /// Compiles the kernels of the checked `program`, with the IR verifier
    /// on in debug builds.
    pub(super) fn compile(program: Checked<'_>) -> Result<Native, Error> {
        let program = program.program();
        let options = IsaOptions {
            verifier: cfg!(debug_assertions),
            single_pass_regalloc: false,
        };
        let imported = Gemm::imported(program);
        let symbols = imported.iter().map(|gemm| (gemm.name(), gemm.address()));
        let mut module = JitModule::new(options, symbols)?;
        let config = module.config();
        let mut gemms = [None; Gemm::ALL.len()];
        for gemm in imported {
            gemms[gemm.index()] = Some(module.import(gemm.name(), &gemm_signature(config))?);
        }
        let sig = kernel_signature(config);
        let mut ids = [FuncId::from_u32(0); Method::ALL.len()];
        for (id, method) in ids.iter_mut().zip(Method::ALL) {
            let name = format!("bptt_cell_{}", method.name());
            *id = module.define(&name, &sig, gemms, |func, builder_ctx, refs| {
                build_kernel(
                    func,
                    builder_ctx,
                    refs,
                    program,
                    method.kernel(program),
                    config,
                );
            })?;
        }
        module.finalize()?;
        let kernels = ids.map(|id| {
            let code = module.code(id);
            // SAFETY: `code` is the entry of a function just compiled and
            // finalized with `kernel_signature`: twelve pointer-sized arguments,
            // nothing returned, in the host's default calling convention,
            // which is the platform's C ABI. The pointer is kept in the
            // `Native` only, beside the module that frees the code on drop.
            unsafe { std::mem::transmute::<*const u8, KernelFn>(code) }
        });
        Ok(Native {
            kernels,
            _module: module,
            config,
        })
    }

    /// The target's pointer type and calling convention.
    pub(super) fn config(&self) -> TargetFrontendConfig {
        self.config
    }

    /// Runs the kernel of `method`.
    ///
    /// # Safety
    ///
    /// Every non-null pointer of `args` must be valid for `args.rows` rows
    /// of its buffer in the program compiled (scratch: `rows ·
    /// scratch_size` floats; params and grads: `param_count`), for reads, or
    /// also for writes where the method writes the buffer, with no other
    /// reference to a written buffer; and every buffer the method receives
    /// must be non-null. The kernel reads and writes nothing else.
    pub(super) unsafe fn run(&self, method: Method, args: &Buffers) {
        let kernel = self.kernels[method as usize];
        // SAFETY: the caller's contract; the code lives as long as `self`.
        unsafe {
            kernel(
                args.rows,
                args.x,
                args.state_prev,
                args.state_next,
                args.tape,
                args.grad_state,
                args.grad_state_prev,
                args.params,
                args.grads,
                args.scratch,
                args.packed,
                args.packed_at,
            );
        }
    }
}

impl std::fmt::Debug for Native {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Native").finish_non_exhaustive()
    }
}
