//! The JIT module that owns a cell's four compiled kernels.

use std::sync::Mutex;

use cranelift_codegen::ir::{Function, UserFuncName};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetFrontendConfig};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};

use super::gemm::{Gemm, gemm_signature};
use super::kernel::{build_kernel, kernel_signature};
use crate::cell_lang::CellProgram;
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

/// One line: Cranelift's errors (the verifier's especially) span several.
fn codegen_error(err: impl std::fmt::Display) -> Error {
    let text = err.to_string();
    Error::Codegen(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The host ISA with position-dependent code (cranelift-jit needs it), the
/// IR verifier on in debug builds, and no mid-end optimisation: the kernels
/// come out as emitted, their vectors interleaved (see [`super::act`]).
/// Cranelift's optimiser would put each dependency chain back in one piece
/// (it places pure operations just before their first use) and hoist every
/// constant out of the loops into spilled registers: measured on a derived
/// LSTM (hidden 256), its fused loops run 1.6 times slower with it.
fn host_isa() -> Result<OwnedTargetIsa, Error> {
    let mut flags = settings::builder();
    for (name, value) in [
        ("use_colocated_libcalls", "false"),
        ("is_pic", "false"),
        ("opt_level", "none"),
        (
            "enable_verifier",
            if cfg!(debug_assertions) {
                "true"
            } else {
                "false"
            },
        ),
    ] {
        flags.set(name, value).map_err(codegen_error)?;
    }
    let isa = cranelift_native::builder()
        .map_err(|msg| Error::Codegen(format!("this host is not supported: {msg}")))?;
    isa.finish(settings::Flags::new(flags))
        .map_err(codegen_error)
}

/// A JIT module that frees its code when dropped (cranelift-jit leaks it
/// otherwise); `None` only while dropping.
struct Owned(Option<JITModule>);

impl Owned {
    fn module(&mut self) -> &mut JITModule {
        self.0.as_mut().expect("the module lives until drop")
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(module) = self.0.take() {
            // SAFETY: an `Owned` is dropped only with the `Native` that owns
            // it, or while one is compiled before any kernel pointer exists:
            // no kernel is running (`Native::run` borrows the `Native`) and
            // the pointers, kept only in the `Native`, die with it.
            unsafe { module.free_memory() };
        }
    }
}

/// A cell's kernels compiled, one per [`Method`]: the [`CellEngine`](crate::cell_lang::CellEngine) of a [`JitCell`](super::JitCell).
///
/// The module is kept only to free the code on drop. It sits behind a mutex
/// only so that `Native` is `Sync` (cells are shared between threads): it is
/// never touched after compilation, and the compiled code touches nothing
/// but its arguments.
pub struct Native {
    _module: Mutex<Owned>,
    kernels: [KernelFn; Method::ALL.len()],
    config: TargetFrontendConfig,
}

impl Native {
    /// Compiles the kernels of `program`, which [`super::check`] accepted.
    pub(super) fn compile(program: &CellProgram) -> Result<Native, Error> {
        let mut builder = JITBuilder::with_isa(host_isa()?, default_libcall_names());
        let imported = Gemm::imported(program);
        for gemm in &imported {
            builder.symbol(gemm.name(), gemm.address());
        }
        let mut owned = Owned(Some(JITModule::new(builder)));
        let module = owned.module();
        let config = module.target_config();
        let mut gemms = [None; Gemm::ALL.len()];
        for gemm in imported {
            let id =
                module.declare_function(gemm.name(), Linkage::Import, &gemm_signature(config))?;
            gemms[gemm.index()] = Some(id);
        }
        let sig = kernel_signature(config);
        let mut ctx = module.make_context();
        let mut builder_ctx = FunctionBuilderContext::new();
        let mut ids = [FuncId::from_u32(0); Method::ALL.len()];
        for (id, method) in ids.iter_mut().zip(Method::ALL) {
            let name = format!("bptt_cell_{}", method.name());
            *id = module.declare_function(&name, Linkage::Local, &sig)?;
            ctx.func =
                Function::with_name_signature(UserFuncName::user(0, id.as_u32()), sig.clone());
            let refs =
                gemms.map(|gemm| gemm.map(|g| module.declare_func_in_func(g, &mut ctx.func)));
            let kernel = method.kernel(program);
            build_kernel(
                &mut ctx.func,
                &mut builder_ctx,
                refs,
                program,
                kernel,
                config,
            );
            module.define_function(*id, &mut ctx)?;
            module.clear_context(&mut ctx);
        }
        module.finalize_definitions()?;
        let kernels = ids.map(|id| {
            let code = module.get_finalized_function(id);
            // SAFETY: `code` is the entry of a function just compiled and
            // finalized with `kernel_signature`: twelve pointer-sized arguments,
            // nothing returned, in the host's default calling convention,
            // which is the platform's C ABI. The pointer is kept in the
            // `Native` only, which frees the code after the last use.
            unsafe { std::mem::transmute::<*const u8, KernelFn>(code) }
        });
        Ok(Native {
            _module: Mutex::new(owned),
            kernels,
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
