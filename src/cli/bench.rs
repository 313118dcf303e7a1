//! `bptt bench`: time and memory of every policy on every backend, measured.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::app::bench::{self, BenchConfig};
use crate::app::memory::{CellShape, Need};
use bptt::{Alpha, BackendKind, Budget, Error, Plan, Policy};

/// Arguments of `bptt bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Start from a configuration that runs in well under a minute (T = 200,
    /// hidden 64, input 16, batch 4, 3 runs); other flags override it.
    #[arg(long)]
    quick: bool,
    /// Sequence length T [default: 1000].
    #[arg(long)]
    len: Option<u32>,
    /// LSTM hidden size [default: 256].
    #[arg(long)]
    hidden: Option<usize>,
    /// Input features [default: 64].
    #[arg(long)]
    input: Option<usize>,
    /// Batch rows [default: 16].
    #[arg(long)]
    batch: Option<usize>,
    /// Timed iterations per row; the median is reported [default: 5].
    #[arg(long)]
    runs: Option<usize>,
    /// Untimed iterations per row before timing (at least 1).
    #[arg(long)]
    warmup: Option<usize>,
    /// Budgets of HSM, ISM and MSM in percent of store-all, comma-separated
    /// [default: 1,2,5,10,20].
    #[arg(long, value_delimiter = ',')]
    percents: Option<Vec<f64>>,
    /// The fixed interval K of the interval baseline [default: T/10].
    #[arg(long)]
    interval: Option<u32>,
    /// Backends, comma-separated [default: every backend that exists].
    #[arg(long, value_delimiter = ',')]
    backends: Option<Vec<String>>,
    /// Policies also planned with measured weights, comma-separated, or
    /// `none` [default: hsm,ism,msm].
    #[arg(long, value_delimiter = ',')]
    weighted: Option<Vec<String>>,
    /// Seed of the parameters and data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the table (bench.md, bench.csv, bench.json) and the figures go
    /// (a folder, created if missing).
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// The most memory the benchmark may allocate (e.g. 2GB) [default: the
    /// memory available].
    #[arg(long, value_parser = super::memory_size)]
    max_memory: Option<u64>,
}

/// The most timed or warm-up iterations per row.
const MAX_RUNS: usize = 1000;
/// The most budgets in `--percents`.
const MAX_PERCENTS: usize = 32;

/// Checks, before measuring, that the figures can be written into `out`.
fn check_out(out: &Path) -> Result<(), Error> {
    let what = || format!("cannot write into {}", out.display());
    if out.exists() && !out.is_dir() {
        return Err(Error::File(format!("{}: it is not a folder", what())));
    }
    std::fs::create_dir_all(out).map_err(Error::io(what()))?;
    let probe = out.join(format!(".bptt-bench-probe-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(Error::io(what()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

impl BenchArgs {
    fn config(&self) -> Result<BenchConfig, Error> {
        let mut c = if self.quick {
            BenchConfig::quick()
        } else {
            BenchConfig::default()
        };
        if let Some(len) = self.len {
            c.len = len;
            c.interval = (len / 10).max(1);
        }
        c.hidden = self.hidden.unwrap_or(c.hidden);
        c.input = self.input.unwrap_or(c.input);
        c.batch = self.batch.unwrap_or(c.batch);
        c.runs = self.runs.unwrap_or(c.runs);
        c.warmup = self.warmup.unwrap_or(c.warmup).max(1);
        c.interval = self.interval.unwrap_or(c.interval);
        c.seed = self.seed;
        if c.interval == 0 {
            return Err(Error::Flag("--interval must be at least 1".to_string()));
        }
        if c.runs > MAX_RUNS || c.warmup > MAX_RUNS {
            return Err(Error::Flag(format!(
                "--runs and --warmup take at most {MAX_RUNS} iterations"
            )));
        }
        if self
            .percents
            .as_ref()
            .is_some_and(|p| p.len() > MAX_PERCENTS)
        {
            return Err(Error::Flag(format!(
                "--percents takes at most {MAX_PERCENTS} budgets"
            )));
        }
        if let Some(p) = &self.percents {
            if p.is_empty() || p.iter().any(|&x| !(x > 0.0 && x <= 100.0)) {
                return Err(Error::BadBudget(
                    p.iter()
                        .map(|x| format!("{x}%"))
                        .collect::<Vec<_>>()
                        .join(","),
                ));
            }
            c.percents = p.clone();
        }
        if let Some(b) = &self.backends {
            c.backends = b.clone();
        }
        if let Some(w) = &self.weighted {
            c.weighted = w
                .iter()
                .filter(|name| name.as_str() != "none")
                .map(|name| {
                    let policy: bptt::Policy = name.parse()?;
                    if policy.is_dynamic() {
                        Ok(policy)
                    } else {
                        Err(Error::UnknownPolicy(format!(
                            "{name} (time-weighted planning needs hsm, ism or msm)"
                        )))
                    }
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(c)
    }
}

/// What the benchmark allocates at most: two runs of store-all (the
/// largest arena of any policy) on every backend at once, and the data.
fn need(c: &BenchConfig) -> Result<Need, Error> {
    let shape = CellShape::lstm(c.input, c.hidden);
    let plan = Plan::new(
        Policy::StoreAll,
        Alpha::new(shape.alpha())?,
        c.len.max(2),
        Budget::Percent(100.0),
    )?;
    let run = shape.run(&plan, c.batch, c.classes.max(1), BackendKind::Jit);
    let (len, rows) = (u128::from(c.len), c.batch as u128);
    Ok(run.clone().and(run).floats(
        "data",
        len.saturating_mul(rows)
            .saturating_mul((c.input as u128).saturating_add(1)),
    ))
}

/// Runs `bptt bench`: measures, prints the table and the targets, writes the
/// files.
pub fn bench(args: &BenchArgs) -> Result<(), Error> {
    let config = args.config()?;
    check_out(&args.out)?;
    need(&config)?.check("the benchmark", args.max_memory)?;
    let report = bench::run(&config, Some(&crate::HEAP), &mut |line| eprintln!("{line}"))?;
    println!("{}", report.header());
    println!("{}", report.table());
    print!("{}", report.targets_text());
    let written = report.write(&args.out)?;
    println!("wrote {}", written.join(", "));
    Ok(())
}
