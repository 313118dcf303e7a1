//! `bptt bench`: time and memory of every policy on every backend, measured.

use std::path::PathBuf;

use clap::Args;

use bptt::Error;
use bptt::bench::{self, BenchConfig};
use bptt_runtime::CountingAllocator;

/// The `bptt` binary counts its heap for the benchmark's peak-heap column: a
/// few atomic operations per allocation, and none on the training hot path
/// (which allocates nothing).
#[global_allocator]
static HEAP: CountingAllocator = CountingAllocator::new();

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
    /// Where the table (bench.md, bench.csv, bench.json) and the figures go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
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

/// Runs `bptt bench`: measures, prints the table and the targets, writes the
/// files.
pub fn bench(args: &BenchArgs) -> Result<(), Error> {
    let config = args.config()?;
    let report = bench::run(&config, Some(&HEAP), &mut |line| eprintln!("{line}"))?;
    println!("{}", report.header());
    println!("{}", report.table());
    print!("{}", report.targets_text());
    let written = report.write(&args.out)?;
    println!("wrote {}", written.join(", "));
    Ok(())
}
