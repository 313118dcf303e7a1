//! Subcommands of the `bptt` binary.

mod bench;
mod curve;
mod demo;
mod emit;
mod plan;
mod train;

use clap::{Args, Parser, Subcommand};

use bptt::{Alpha, Budget, Error, Plan, Policy};

/// bptt: backpropagation through time within a memory budget.
#[derive(Debug, Parser)]
#[command(name = "bptt", version, about, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Plan a budget: forward steps, peak memory, cost per step.
    Plan(plan::PlanArgs),
    /// Print a plan's schedule, one operation per line.
    Schedule(PlanSpec),
    /// Cost per step against budget for every policy.
    Curve(curve::CurveArgs),
    /// Print the code a backend generates: `emit rust` or `emit clif`.
    Emit(emit::EmitArgs),
    /// Train a character-level LSTM (or the adding problem) at T = 1000 within
    /// 5% of store-all's memory: the main job.
    Train(train::TrainArgs),
    /// Backpropagate an LSTM at T = 1000 within 5% of store-all's memory and
    /// compare it with store-all: time, memory, gradients.
    Demo(demo::DemoArgs),
    /// Measure time and memory of every policy on every backend: the paper's
    /// table at T = 1000, with figures.
    Bench(bench::BenchArgs),
}

/// What a plan is asked for.
#[derive(Debug, Clone, Args)]
pub struct PlanSpec {
    /// Sequence length T.
    #[arg(long)]
    len: u32,
    /// Checkpoint memory in hidden-state units (200) or percent of store-all
    /// (5%). Defaults to 5% for hsm/ism/msm and 100% for the baselines.
    #[arg(long, allow_hyphen_values = true)]
    budget: Option<String>,
    /// Tape size over hidden-state size (>= 1); `plan` takes it from the
    /// sizes when --state-bytes/--tape-bytes or --hidden/--batch are given.
    #[arg(long, default_value_t = 4.0, allow_hyphen_values = true)]
    alpha: f64,
    /// hsm, ism, msm, store-all, sqrt or interval:K.
    #[arg(long, default_value = "msm")]
    policy: String,
}

impl PlanSpec {
    /// The budget given, or the policy's default.
    fn budget(&self) -> Result<Budget, Error> {
        let policy: Policy = self.policy.parse()?;
        Ok(match &self.budget {
            Some(text) => text.parse()?,
            None if policy.is_dynamic() => Budget::Percent(5.0),
            None => Budget::Percent(100.0),
        })
    }

    /// Plans it, with every input checked.
    fn plan(&self) -> Result<Plan, Error> {
        let policy: Policy = self.policy.parse()?;
        Plan::new(policy, Alpha::new(self.alpha)?, self.len, self.budget()?)
    }
}

/// A plan's budget in bytes, or the least memory for a slowdown (`bptt plan`).
#[derive(Debug, Clone, Args)]
pub struct MemorySpec {
    /// The whole memory of a step in bytes (256MiB, 1.5GB, 4096): the
    /// working set and the checkpoints. Needs the sizes.
    #[arg(long, value_name = "BYTES", conflicts_with_all = ["budget", "max_slowdown"])]
    memory: Option<String>,
    /// Bytes of one hidden state (for the whole batch).
    #[arg(long, value_name = "BYTES", requires = "tape_bytes", conflicts_with_all = ["hidden", "batch"])]
    state_bytes: Option<String>,
    /// Bytes of one tape (for the whole batch).
    #[arg(long, value_name = "BYTES", requires = "state_bytes")]
    tape_bytes: Option<String>,
    /// Bytes held outside the checkpoints (default: five states and a tape:
    /// running states, rebuilt state, gradients, the working tape).
    #[arg(long, value_name = "BYTES")]
    working_bytes: Option<String>,
    /// The sizes of bptt's LSTM with this hidden size (f32, state h and c).
    #[arg(long, requires = "batch")]
    hidden: Option<usize>,
    /// The batch of --hidden.
    #[arg(long, requires = "hidden")]
    batch: Option<usize>,
    /// The least memory whose slowdown over store-all is at most this
    /// (an iteration's forward and backward steps, see --backward-cost).
    #[arg(long, value_name = "X", conflicts_with = "budget")]
    max_slowdown: Option<f64>,
    /// A backward step's cost in forward steps, for --max-slowdown.
    #[arg(long, default_value_t = 2.0)]
    backward_cost: f64,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Plan(args) => plan::plan(&args),
        Command::Schedule(spec) => plan::schedule(&spec),
        Command::Curve(args) => curve::curve(&args),
        Command::Emit(args) => emit::emit(&args),
        Command::Train(args) => train::train(&args),
        Command::Demo(args) => demo::demo(&args),
        Command::Bench(args) => bench::bench(&args),
    }
}

/// Checks that a numeric flag is finite and within `lo..=hi` (`lo`
/// itself only if `lo_ok`); `range` says so in words.
fn in_range(
    flag: &str,
    value: f32,
    lo: f32,
    hi: f32,
    range: &str,
    lo_ok: bool,
) -> Result<(), Error> {
    let above = if lo_ok { value >= lo } else { value > lo };
    if value.is_finite() && above && value <= hi {
        Ok(())
    } else {
        Err(Error::Flag(format!(
            "{flag} must be a number {range}, got {value}"
        )))
    }
}

/// Refuses a budget above 100% of store-all, which no schedule can use,
/// as out of range (not as unreadable), then any other unreadable one.
fn budget_in_range(text: &str) -> Result<(), Error> {
    let percent = text
        .trim()
        .strip_suffix('%')
        .map(|n| n.trim().parse::<f64>());
    if let Some(Ok(p)) = percent
        && p > 100.0
    {
        return Err(Error::Flag(format!(
            "the budget {p}% is out of range: at most 100% of store-all's memory"
        )));
    }
    text.parse::<Budget>().map(drop)
}

/// Parses a size flag (`--max-memory 2GB`, `--memory 256MiB`): at least one byte.
fn memory_size(text: &str) -> Result<u64, String> {
    match bptt::parse_bytes(text) {
        Ok(0) => Err(format!(
            "the size '{text}' is out of range: at least one byte"
        )),
        Ok(bytes) => Ok(bytes),
        Err(err) => Err(err.to_string()),
    }
}

/// Parses `--size NAME=N`, a cell size given on the command line.
fn cell_size(text: &str) -> Result<(String, usize), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=N, e.g. proj=64, got '{text}'"))?;
    let value = value
        .trim()
        .parse()
        .map_err(|_| format!("the size {name} must be a positive integer, got '{value}'"))?;
    Ok((name.trim().to_string(), value))
}
