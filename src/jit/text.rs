//! The compiled functions as Cranelift IR text: shims by name, every call
//! annotated with the operation it performs, and a legend of the arena.

use std::fmt::{self, Write};

use bptt_runtime::{ArenaLayout, Region};
use cranelift_codegen::entity::SecondaryMap;
use cranelift_codegen::ir::{Block, Function, Inst, UserFuncName, Value};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_codegen::write::{FuncWriter, PlainWriter, decorate_function};
use cranelift_frontend::FunctionBuilderContext;

use super::codegen::{build_chunk, chunk_signature, import_by_name};
use super::shims::Shim;
use crate::error::Error;
use crate::lower::Call;
use crate::runs::Run;
use crate::schedule::Header;

/// A region as the schedule printout names it: `H3`, `T1`, `W`, and the
/// working buffers `run0`, `run1`, `state`, `grad0`, `grad1`.
fn name(region: Region) -> String {
    match region {
        Region::Run(i) => format!("run{i}"),
        Region::State => "state".to_owned(),
        Region::Grad(i) => format!("grad{i}"),
        Region::WorkTape => "W".to_owned(),
        Region::Scratch => "scratch".to_owned(),
        Region::ReadoutScratch => "readout-scratch".to_owned(),
        Region::Window => "window".to_owned(),
        Region::Hidden(i) => format!("H{i}"),
        Region::Tape(i) => format!("T{i}"),
    }
}

/// What a call does, in words.
fn describe(call: &Call) -> String {
    let n = |r| name(r);
    match *call {
        Call::RestoreInitial { dst } => format!("restore h0 -> {}", n(dst)),
        Call::CopyState { src, dst } => format!("copy {} -> {}", n(src), n(dst)),
        Call::StateFromTape { tape, dst } => format!("state of {} -> {}", n(tape), n(dst)),
        Call::Forward { step, src, dst } => format!("forward {step}: {} -> {}", n(src), n(dst)),
        Call::ForwardTape {
            step,
            src,
            tape,
            dst,
        } => format!("forward {step}: {} -> {}, tape {}", n(src), n(dst), n(tape)),
        Call::Backward {
            step,
            tape,
            grad,
            grad_prev,
        } => format!(
            "backward {step} with {}: {} -> {}",
            n(tape),
            n(grad),
            n(grad_prev)
        ),
    }
}

/// What a run does, in words: its call, or its first and last calls.
fn describe_run(run: &Run<Shim>) -> String {
    if run.count == 1 {
        describe(&run.first)
    } else {
        format!(
            "{} calls, {} .. {}",
            run.count,
            describe(&run.first),
            describe(&run.last)
        )
    }
}

/// Appends `func`'s IR to `text` as Cranelift prints it, except that each
/// `call` is annotated with the next of `notes` instead of Cranelift's
/// comment (its constant arguments, which are the lines just above).
pub(crate) fn write_annotated(
    text: &mut String,
    func: &Function,
    notes: impl Iterator<Item = String>,
) -> Result<(), Error> {
    decorate_function(&mut Annotated { notes }, text, func)
        .map_err(|_| Error::Codegen("cannot print the IR".to_owned()))
}

/// Prints instructions as Cranelift does, with the next note after each
/// `call`.
struct Annotated<I> {
    notes: I,
}

impl<I: Iterator<Item = String>> FuncWriter for Annotated<I> {
    fn write_instruction(
        &mut self,
        w: &mut dyn Write,
        func: &Function,
        aliases: &SecondaryMap<Value, Vec<Value>>,
        inst: Inst,
        indent: usize,
    ) -> fmt::Result {
        if !func.dfg.insts[inst].opcode().is_call() {
            return PlainWriter.write_instruction(w, func, aliases, inst, indent);
        }
        let mut line = String::new();
        PlainWriter.write_instruction(&mut line, func, aliases, inst, indent)?;
        let code = line.split(" ; ").next().unwrap_or(&line).trim_end();
        match self.notes.next() {
            Some(note) => writeln!(w, "{code:<40} ; {note}"),
            None => w.write_str(&line),
        }
    }

    fn write_block_header(
        &mut self,
        w: &mut dyn Write,
        func: &Function,
        block: Block,
        indent: usize,
    ) -> fmt::Result {
        PlainWriter.write_block_header(w, func, block, indent)
    }
}

/// The comment lines that open the text: the schedule, the calling
/// convention of the functions, and where each region is.
fn legend(
    header: &Header,
    (calls, runs, functions): (usize, usize, usize),
    layout: &ArenaLayout,
) -> String {
    let at = |r| layout.offset(r);
    let alpha = header.alpha;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "; bptt: {} schedule, T = {}, alpha = {alpha}, budget = {} (in hidden states)",
        header.policy,
        header.len,
        alpha.to_units(header.budget),
    );
    let _ = writeln!(
        text,
        "; {calls} calls in {runs} runs (a run of more than one call is a loop) in {functions} {}, run in order; each call passes the frame pointer",
        if functions == 1 {
            "function"
        } else {
            "functions"
        }
    );
    let _ = writeln!(
        text,
        "; then the step and offsets in floats from the arena base (batch {}, state {}, tape {}):",
        layout.batch, layout.state_size, layout.tape_size
    );
    let working = [
        Region::Run(0),
        Region::Run(1),
        Region::State,
        Region::Grad(0),
        Region::Grad(1),
        Region::WorkTape,
    ];
    let list: Vec<String> = working
        .iter()
        .map(|&r| format!("{} = {}", name(r), at(r)))
        .collect();
    let _ = writeln!(text, ";   {}", list.join(", "));
    // The stack starts after the working set; a checkpoint at tick `p`
    // starts `ceil(p S / den)` floats into it (see `ArenaLayout`).
    let stack = layout.total() - layout.checkpoint_bytes() / 4;
    let _ = writeln!(
        text,
        ";   H<p>, T<p> (tick p of the checkpoint stack) = {stack} + ceil(p * {} / {}); the stack holds {} ticks",
        layout.batch * layout.state_size,
        layout.ticks_per_state,
        layout.capacity_ticks,
    );
    text
}

/// The IR of the functions that [`super::codegen::Jit::compile`] builds for
/// `runs` (of `calls` calls), chunked the same way, as text.
pub(crate) fn render(
    header: &Header,
    (runs, calls): (&[Run<Shim>], usize),
    layout: &ArenaLayout,
    per_function: usize,
    config: TargetFrontendConfig,
) -> Result<String, Error> {
    let per_function = per_function.max(1);
    let functions = runs.len().div_ceil(per_function);
    let mut text = legend(header, (calls, runs.len(), functions), layout);
    let mut builder_ctx = FunctionBuilderContext::new();
    for (k, chunk) in runs.chunks(per_function).enumerate() {
        let name = UserFuncName::testcase(format!("bptt_chunk_{k}"));
        let mut func = Function::with_name_signature(name, chunk_signature(config));
        let shims = import_by_name(&mut func, config);
        build_chunk(&mut func, &mut builder_ctx, shims, chunk, config);
        text.push('\n');
        write_annotated(&mut text, &func, chunk.iter().map(describe_run))?;
    }
    Ok(text)
}
