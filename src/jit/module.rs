//! [`JitModule`]: the one owner of a Cranelift JIT module, shared by the
//! schedule JIT and the cell JIT (as cranelift-jit-demo's `JIT` owns its
//! module and contexts): the host ISA, the symbols the code links to, the
//! code-generation contexts, the compiled code, and freeing it on drop.

use cranelift_codegen::Context;
use cranelift_codegen::ir::{FuncRef, Function, Signature, UserFuncName};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetFrontendConfig};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, ModuleError, default_libcall_names};

use crate::error::Error;

/// One line: Cranelift's errors (the verifier's especially) span several.
pub(crate) fn codegen_error(err: impl std::fmt::Display) -> Error {
    let text = err.to_string();
    Error::Codegen(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

impl From<ModuleError> for Error {
    fn from(err: ModuleError) -> Self {
        codegen_error(err)
    }
}

/// How the host ISA compiles.
///
/// Both JITs compile with Cranelift's mid-end optimiser off. The schedule
/// JIT's code is calls with constant arguments, where optimisation finds
/// nothing; the cell JIT's fused loops come out as emitted, their vectors
/// interleaved (see `cell::act`), where the optimiser would put each
/// dependency chain back in one piece and hoist every constant out of the
/// loops into spilled registers (measured on a derived LSTM, hidden 256:
/// its fused loops ran 1.6 times slower with it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct IsaOptions {
    /// Whether Cranelift verifies every function's IR before compiling it.
    pub verifier: bool,
    /// The single-pass register allocator instead of the backtracking one:
    /// three times faster to compile for the schedule JIT's calls, at the
    /// cost of at most a spill per call; the cell JIT's loops want the
    /// better allocation.
    pub single_pass_regalloc: bool,
}

/// The host ISA with position-dependent code (cranelift-jit needs it).
fn host_isa(options: IsaOptions) -> Result<OwnedTargetIsa, Error> {
    let on = |yes: bool| if yes { "true" } else { "false" };
    let mut flags = settings::builder();
    let regalloc = match options.single_pass_regalloc {
        true => "single_pass",
        false => "backtracking",
    };
    for (name, value) in [
        ("use_colocated_libcalls", "false"),
        ("is_pic", "false"),
        ("opt_level", "none"),
        ("regalloc_algorithm", regalloc),
        ("enable_verifier", on(options.verifier)),
    ] {
        flags.set(name, value).map_err(codegen_error)?;
    }
    let isa = cranelift_native::builder()
        .map_err(|msg| Error::Codegen(format!("this host is not supported: {msg}")))?;
    isa.finish(settings::Flags::new(flags))
        .map_err(codegen_error)
}

/// A JIT module with its code-generation contexts: functions are declared,
/// built and defined into it, finalised once, and freed when it is dropped
/// (cranelift-jit leaks them otherwise).
///
/// Code compiled into it may run on any thread while it lives: after
/// [`JitModule::finalize`], nothing but [`Drop`] touches the module.
pub(crate) struct JitModule {
    /// `None` only while dropping.
    module: Option<JITModule>,
    ctx: Context,
    builder_ctx: FunctionBuilderContext,
    config: TargetFrontendConfig,
    finalized: bool,
}

// SAFETY: every method that touches the `JITModule` or the contexts takes
// `&mut self`; through `&self` only the copied `config` and the finished
// code's addresses are read, so sharing a `&JitModule` between threads
// shares nothing that mutates. (`JITModule` is `Send`; it is not `Sync`
// only because of what `&mut` methods do.)
unsafe impl Sync for JitModule {}

impl JitModule {
    /// An empty module for the host that links `symbols` (name and
    /// address) by name.
    pub(crate) fn new<'a>(
        options: IsaOptions,
        symbols: impl IntoIterator<Item = (&'a str, *const u8)>,
    ) -> Result<Self, Error> {
        let mut builder = JITBuilder::with_isa(host_isa(options)?, default_libcall_names());
        for (name, address) in symbols {
            builder.symbol(name, address);
        }
        let module = JITModule::new(builder);
        Ok(JitModule {
            config: module.target_config(),
            ctx: module.make_context(),
            module: Some(module),
            builder_ctx: FunctionBuilderContext::new(),
            finalized: false,
        })
    }

    fn module(&mut self) -> &mut JITModule {
        self.module.as_mut().expect("the module lives until drop")
    }

    /// The target's pointer type and calling convention.
    pub(crate) fn config(&self) -> TargetFrontendConfig {
        self.config
    }

    /// Declares the function `name` of `signature` that the code calls,
    /// linked to the symbol of that name.
    pub(crate) fn import(&mut self, name: &str, signature: &Signature) -> Result<FuncId, Error> {
        Ok(self
            .module()
            .declare_function(name, Linkage::Import, signature)?)
    }

    /// Declares, builds and defines the local function `name`: `build`
    /// fills the function (its name and signature set) with the builder
    /// context, given each of `imports` as a reference inside it.
    pub(crate) fn define<const N: usize>(
        &mut self,
        name: &str,
        signature: &Signature,
        imports: [Option<FuncId>; N],
        build: impl FnOnce(&mut Function, &mut FunctionBuilderContext, [Option<FuncRef>; N]),
    ) -> Result<FuncId, Error> {
        assert!(!self.finalized, "a JitModule is finalised once");
        let JitModule {
            module,
            ctx,
            builder_ctx,
            ..
        } = self;
        let module = module.as_mut().expect("the module lives until drop");
        let id = module.declare_function(name, Linkage::Local, signature)?;
        ctx.func =
            Function::with_name_signature(UserFuncName::user(0, id.as_u32()), signature.clone());
        let refs = imports.map(|f| f.map(|f| module.declare_func_in_func(f, &mut ctx.func)));
        build(&mut ctx.func, builder_ctx, refs);
        let defined = module.define_function(id, ctx);
        module.clear_context(ctx);
        defined?;
        Ok(id)
    }

    /// Compiles every function defined so far into executable memory.
    pub(crate) fn finalize(&mut self) -> Result<(), Error> {
        self.module().finalize_definitions()?;
        self.finalized = true;
        Ok(())
    }

    /// The entry of the finished function `id`.
    ///
    /// # Panics
    /// Before [`JitModule::finalize`].
    pub(crate) fn code(&mut self, id: FuncId) -> *const u8 {
        assert!(self.finalized, "code exists once the module is finalised");
        self.module().get_finalized_function(id)
    }
}

impl Drop for JitModule {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: whoever holds code pointers of this module keeps them
            // beside it and drops them with it (both JITs own their module
            // and their pointers together); no compiled function runs while
            // the module is dropped, since running one borrows its owner.
            unsafe { module.free_memory() };
        }
    }
}

impl std::fmt::Debug for JitModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitModule")
            .field("finalized", &self.finalized)
            .finish_non_exhaustive()
    }
}
