//! `bptt emit rust` and `bptt emit clif`: what the backends generate.

use clap::{Args, Subcommand};

use super::PlanSpec;
use bptt::jit::{emit_clif, layout_for_alpha};
use bptt::{Error, Schedule};

/// Arguments of `bptt emit`.
#[derive(Debug, Args)]
pub struct EmitArgs {
    #[command(subcommand)]
    target: Target,
}

#[derive(Debug, Subcommand)]
enum Target {
    /// The Rust that `#[bptt(...)]` generates for these arguments, pretty-printed.
    Rust(PlanSpec),
    /// The Cranelift IR of the JIT-compiled schedule (one batch row, a state
    /// of `den` floats and a tape of `num` floats for alpha = num/den).
    Clif(PlanSpec),
}

pub fn emit(args: &EmitArgs) -> Result<(), Error> {
    let text = match &args.target {
        Target::Rust(spec) => {
            let plan = spec.plan()?;
            bptt::emit::emit_rust(plan.policy(), spec.alpha, plan.len(), spec.budget()?)?
        }
        Target::Clif(spec) => {
            let schedule = Schedule::from_plan(&spec.plan()?);
            emit_clif(&schedule, &layout_for_alpha(&schedule))?
        }
    };
    print!("{text}");
    Ok(())
}
