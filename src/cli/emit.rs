//! `bptt emit rust` and `bptt emit clif`: what the backends generate, for a
//! schedule or for a cell defined by equations.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::PlanSpec;
use crate::app::memory::{BYTES_PER_OP, CODE_BYTES_PER_CALL, Need};
use bptt::cell_lang::{CellProgram, compile_file};
use bptt::jit::cell::emit_cell_clif;
use bptt::jit::{emit_clif, layout_for_alpha};
use bptt::{Error, Plan, Verified};

/// Arguments of `bptt emit`.
#[derive(Debug, Args)]
pub struct EmitArgs {
    #[command(subcommand)]
    target: Target,
}

#[derive(Debug, Subcommand)]
enum Target {
    /// The Rust that `#[bptt(...)]` generates for these arguments, or that
    /// `bptt_macros::cell!` generates for a `--cell`, pretty-printed.
    Rust(EmitSpec),
    /// The Cranelift IR of the JIT-compiled schedule (one batch row, a state
    /// of `den` floats and a tape of `num` floats for alpha = num/den), or of
    /// a `--cell`'s four kernels.
    Clif(EmitSpec),
}

/// A schedule (`--len ...`) or a cell file (`--cell FILE`).
#[derive(Debug, Args)]
struct EmitSpec {
    #[command(flatten)]
    plan: Option<PlanSpec>,
    /// A cell file (e.g. cells/mgu.cell): emit its derived kernels.
    #[arg(long, conflicts_with = "len")]
    cell: Option<PathBuf>,
    /// The input size of the `--cell` [default: 8].
    #[arg(long)]
    input: Option<usize>,
    /// The size `hidden` of the `--cell` [default: 16].
    #[arg(long)]
    hidden: Option<usize>,
    /// Any other size of the `--cell`: NAME=N (repeatable).
    #[arg(long = "size", value_parser = super::cell_size)]
    sizes: Vec<(String, usize)>,
    /// The most memory generating the code may take (e.g. 2GB) [default:
    /// the memory available].
    #[arg(long, value_parser = super::memory_size)]
    max_memory: Option<u64>,
}

impl EmitSpec {
    fn program(&self, path: &Path) -> Result<CellProgram, Error> {
        compile_file(
            path,
            self.input.unwrap_or(8),
            self.hidden.unwrap_or(16),
            &self.sizes,
        )
    }

    /// The schedule's plan, refused if its code would not fit in memory;
    /// sizes of a cell are refused without one.
    fn plan(&self) -> Result<(&PlanSpec, Plan), Error> {
        let spec = self.plan.as_ref().ok_or_else(|| {
            Error::Cell("give a schedule (--len T ...) or a cell file (--cell FILE)".to_string())
        })?;
        if self.input.is_some() || self.hidden.is_some() || !self.sizes.is_empty() {
            return Err(Error::Flag(
                "--input, --hidden and --size set sizes of a --cell: give the cell file too"
                    .to_string(),
            ));
        }
        if let Some(budget) = &spec.budget {
            super::budget_in_range(budget)?;
        }
        let plan = spec.plan()?;
        // The schedule streams; the code holds one statement per run.
        let statements = bptt::emit::statements(&plan)? as u128;
        Need::new()
            .bytes("schedule", statements.saturating_mul(BYTES_PER_OP))
            .bytes(
                "generated code",
                statements.saturating_mul(CODE_BYTES_PER_CALL),
            )
            .check("emitting this schedule", self.max_memory)?;
        Ok((spec, plan))
    }
}

/// A cell's name as a Rust type name: `peephole_lstm` becomes `PeepholeLstm`.
fn type_name(cell: &str) -> String {
    cell.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase())
                .into_iter()
                .chain(c)
                .collect::<String>()
        })
        .collect()
}

pub fn emit(args: &EmitArgs) -> Result<(), Error> {
    let text = match &args.target {
        Target::Rust(spec) => match &spec.cell {
            Some(path) => {
                let program = spec.program(path)?;
                bptt::emit::cell::emit_cell_rust(&program, &type_name(&program.name))?
            }
            None => {
                let (plan, p) = spec.plan()?;
                bptt::emit::emit_rust(p.policy(), plan.alpha, p.seq_len(), plan.budget()?)?
            }
        },
        Target::Clif(spec) => match &spec.cell {
            Some(path) => emit_cell_clif(&spec.program(path)?)?,
            None => {
                let schedule = Verified::stream(spec.plan()?.1)?;
                emit_clif(&schedule, &layout_for_alpha(schedule.header()))?
            }
        },
    };
    print!("{text}");
    Ok(())
}
