//! The `bptt` command line: plan, inspect and run memory-budgeted BPTT.

mod app;
mod cli;

use std::process::ExitCode;

use clap::Parser;

/// The `bptt` binary counts its heap, for the benchmark's peak-heap column
/// and `train`'s measured peak: a few atomic operations per allocation, and
/// none on the training hot path (which allocates nothing).
#[global_allocator]
static HEAP: bptt_runtime::CountingAllocator = bptt_runtime::CountingAllocator::new();

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    // clap's own messages in full: usage, the missing argument, suggestions,
    // possible values; bare `bptt` prints the help with the command list.
    let args = cli::Cli::try_parse().unwrap_or_else(|err| err.exit());
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(1)
        }
    }
}

/// Restores the default action of `SIGPIPE`, which Rust's start-up ignores:
/// output into a closed pipe (`bptt schedule .. | head`) then ends the
/// process quietly with the conventional status, as for any Unix tool,
/// instead of `println!` panicking on the broken pipe.
#[cfg(unix)]
fn quiet_on_closed_pipe() {
    unsafe extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: `signal` is the C library's, called once before any thread
    // starts, with the default disposition (no handler code runs).
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

#[cfg(not(unix))]
fn quiet_on_closed_pipe() {}
