//! `cairn-sim`: run one seed of the deterministic world, or sweep many.
//!
//! `cairn-sim run --seed S [--trace]` runs one seed and ends with
//! `trace-hash: <hex>` and `result: ok` or `result: FAILED <checker>: <what>`
//! (exit 1 on failure). `cairn-sim sweep --seeds N [--start S]` runs N seeds
//! with a progress bar, prints every failing seed with the command that
//! replays it, and ends with `N passed, M failed` (exit 1 if any failed).
#![allow(clippy::print_stdout, reason = "a command-line tool reports on stdout")]

use std::io::Write as _;
use std::process::ExitCode;

use cairn_sim::world::run_seed;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

/// The deterministic simulator of Cairn.
#[derive(Parser)]
#[command(name = "cairn-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed.
    Run {
        /// The scenario's seed.
        #[arg(long)]
        seed: u64,
        /// Print every event, one line each.
        #[arg(long)]
        trace: bool,
    },
    /// Run many seeds.
    Sweep {
        /// How many seeds.
        #[arg(long)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run { seed, trace } => run(seed, trace),
        Command::Sweep { seeds, start } => sweep(seeds, start),
    }
}

fn run(seed: u64, trace: bool) -> ExitCode {
    let (report, lines) = run_seed(seed, trace);
    // Writes that fail (a closed pipe, as with `| head`) end the output
    // quietly; the exit code still tells the result.
    let mut out = std::io::stdout().lock();
    for line in &lines {
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    let _ = writeln!(
        out,
        "seed: {seed} events: {} simulated: {}",
        report.events, report.end
    );
    let _ = writeln!(out, "trace-hash: {:016x}", report.trace_hash);
    match report.result {
        Ok(()) => {
            let _ = writeln!(out, "result: ok");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            let _ = writeln!(out, "result: FAILED {}: {}", failure.checker, failure.what);
            ExitCode::FAILURE
        }
    }
}

fn sweep(seeds: u64, start: u64) -> ExitCode {
    let bar = ProgressBar::new(seeds);
    bar.set_style(
        ProgressStyle::with_template("[{bar:40}] {pos}/{len} seeds {elapsed}")
            .expect("a valid template"),
    );
    let mut failed = 0u64;
    for seed in start..start.saturating_add(seeds) {
        let (report, _) = run_seed(seed, false);
        if let Err(failure) = report.result {
            failed += 1;
            bar.suspend(|| {
                println!("seed {seed} FAILED {}: {}", failure.checker, failure.what);
                println!("  replay: cargo run --release -p cairn-sim -- run --seed {seed} --trace");
            });
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("{} passed, {failed} failed", seeds - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
