//! `cairn-sim`: run one seed of the deterministic world, or sweep many.
//!
//! `cairn-sim run --seed S [--trace]` runs one seed and ends with
//! `trace-hash: <hex>` and `result: ok` or `result: FAILED <checker>: <what>`
//! (exit 1 on failure). `cairn-sim sweep --seeds N [--start S]` runs N seeds
//! with a progress bar, prints every failing seed with the command that
//! replays it, and ends with `N passed, M failed` (exit 1 if any failed).
//! `cairn-sim bench` measures the simulator itself and how fast the
//! simulated cluster fails over; its last line is
//! `sim_speedup=<x> seeds_per_min=<n> failover_p99_ms=<ms> election_timeout_max_ms=<ms>`.
#![allow(clippy::print_stdout, reason = "a command-line tool reports on stdout")]

use std::io::Write as _;
use std::process::ExitCode;

use cairn_core::time::Duration;
use cairn_sim::gossip_watch::CONVERGE_WITHIN;
use cairn_sim::world::run_seed;
use clap::{Parser, Subcommand};

/// Every seed builds a world of simulated disks and frees it at the end;
/// the system allocator hands those pages back and the next seed faults
/// them in again (a sixth of the bench's time). mimalloc keeps and reuses
/// them. Allocation never reaches a run's output: determinism is untouched.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
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
    /// Run gossip alone at scale through a fixed story, and measure it.
    Gossip {
        /// Nodes in the cluster.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// The chance that a datagram is lost, from 0 to 1.
        #[arg(long, default_value_t = 0.1)]
        loss: f64,
        /// The story's seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Plain SWIM, without Lifeguard.
        #[arg(long, conflicts_with = "compare")]
        no_lifeguard: bool,
        /// Run both variants at 100 nodes and at `--nodes`, and compare.
        #[arg(long)]
        compare: bool,
    },
    /// Measure the simulator's speed and the cluster's failover time.
    Bench {
        /// Seeds of the bench scenario (a simulated minute each).
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        /// Seeds of the default sweep to time.
        #[arg(long, default_value_t = 200)]
        sweep_seeds: u64,
    },
}

/// mimalloc's option number for the purge delay (the `mi_option_e` order
/// of `mimalloc.h`, which keeps retired options as placeholders so that
/// numbers never move).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory for the next seed instead of handing it back to the
/// system 10 ms later: a seed runs for tens of ms, so every seed faulted its
/// disks' pages in afresh. (The arena's first pages are faulted in once per
/// process, before `main` could set anything; the bench runs untimed first.)
fn tune_allocator() {
    // SAFETY: a plain integer option, set before any other thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    match Cli::parse().command {
        Command::Run { seed, trace } => run(seed, trace),
        Command::Sweep { seeds, start } => sweep(seeds, start),
        Command::Bench { seeds, sweep_seeds } => bench(seeds, sweep_seeds),
        Command::Gossip {
            nodes,
            loss,
            seed,
            no_lifeguard,
            compare,
        } => gossip(nodes, loss, seed, !no_lifeguard, compare),
    }
}

/// Wall-clock time, for measuring the simulator from outside: nothing
/// measured here reaches a world.
#[allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the bench times the simulator"
)]
fn wall<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = std::time::Instant::now();
    let value = f();
    (value, start.elapsed().as_secs_f64())
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!("[{{bar:40}}] {{pos}}/{{len}} {what} {{elapsed}} {{msg}}");
    bar.set_style(ProgressStyle::with_template(&template).expect("a valid template"));
    bar
}

fn bench(seeds: u64, sweep_seeds: u64) -> ExitCode {
    use cairn_sim::world::{World, WorldOptions};
    let options = WorldOptions::bench();
    let election_timeout_max_ms = options.raft.election_timeout_max.as_nanos() / 1_000_000;
    // One untimed run first, as benchmarks warm up: the process's first
    // pages (the allocator's arena, faulted in and zeroed once, a tenth of
    // a second) are not the scenario's cost.
    let _ = World::new(0, options.clone(), false).run();
    let progress = bar(seeds, "bench seeds");
    let (mut simulated, mut walled, mut events) = (0f64, 0f64, 0u64);
    let mut failovers = Vec::new();
    for seed in 0..seeds {
        let ((report, _), seconds) = wall(|| World::new(seed, options.clone(), false).run());
        if let Err(failure) = &report.result {
            progress.suspend(|| {
                println!(
                    "bench seed {seed} FAILED {}: {}",
                    failure.checker, failure.what
                )
            });
            return ExitCode::FAILURE;
        }
        simulated += report.end.as_nanos() as f64 / 1e9;
        walled += seconds;
        events += report.events;
        failovers.extend(report.failovers.iter().map(|d| d.as_nanos() as f64 / 1e6));
        progress.inc(1);
    }
    progress.finish_and_clear();
    failovers.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        let rank = ((failovers.len() as f64 * q).ceil() as usize).clamp(1, failovers.len().max(1));
        failovers.get(rank - 1).copied().unwrap_or(f64::NAN)
    };
    let progress = bar(sweep_seeds, "sweep seeds");
    let (_, sweep_seconds) = wall(|| {
        for seed in 0..sweep_seeds {
            let _ = run_seed(seed, false);
            progress.inc(1);
        }
    });
    progress.finish_and_clear();
    let speedup = simulated / walled;
    let seeds_per_min = sweep_seeds as f64 / sweep_seconds * 60.0;
    println!(
        "bench scenario: 5 voters, 1% loss, ~100 records of 1 KiB/s, leader crashed every 5 s"
    );
    println!("  seeds                 {seeds}");
    println!("  simulated             {simulated:.1} s in {walled:.2} s of wall time");
    println!("  sim speedup           {speedup:.0}x (simulated s per wall s)");
    println!(
        "  events                {:.0} per wall s",
        events as f64 / walled
    );
    println!(
        "  failover              {} leader crashes: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (simulated)",
        failovers.len(),
        quantile(0.5),
        quantile(0.99),
        failovers.last().copied().unwrap_or(f64::NAN)
    );
    println!("default sweep: {sweep_seeds} seeds in {sweep_seconds:.1} s");
    println!(
        "sim_speedup={speedup:.0} seeds_per_min={seeds_per_min:.0} failover_p99_ms={:.0} election_timeout_max_ms={election_timeout_max_ms}",
        quantile(0.99)
    );
    ExitCode::SUCCESS
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
    if let Some(converged) = report.gossip_converged_in {
        let _ = writeln!(
            out,
            "gossip: {} deaths of running members; views converged {converged} after the heal",
            report.deaths_of_running
        );
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
    let bar = bar(seeds, "seeds");
    let mut failed = 0u64;
    let (mut deaths, mut converged_max) = (0u64, Duration::ZERO);
    for seed in start..start.saturating_add(seeds) {
        let (report, _) = run_seed(seed, false);
        deaths += report.deaths_of_running;
        converged_max = converged_max.max(report.gossip_converged_in.unwrap_or(Duration::ZERO));
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
    println!(
        "gossip: {deaths} deaths of running members, a false death fails its seed; \
         views converged at most {converged_max} after the heal (bound {CONVERGE_WITHIN})"
    );
    println!("{} passed, {failed} failed", seeds - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn gossip(nodes: usize, loss: f64, seed: u64, lifeguard: bool, compare: bool) -> ExitCode {
    use cairn_sim::gossip::{run_gossip_watched, GossipReport, GossipScenario};
    if !(0.0..1.0).contains(&loss) {
        eprintln!("error: --loss must be at least 0 and below 1, not {loss}");
        return ExitCode::from(2);
    }
    if nodes < 100 {
        eprintln!("error: --nodes must be at least 100 (the story crashes 2% and slows 1%)");
        return ExitCode::from(2);
    }
    let loss_ppm = (loss * 1e6).round() as u32;
    let runs: Vec<GossipScenario> = if compare {
        [100, nodes]
            .into_iter()
            .flat_map(|nodes| {
                [true, false].map(|lifeguard| GossipScenario {
                    nodes,
                    loss_ppm,
                    lifeguard,
                    seed,
                })
            })
            .collect()
    } else {
        vec![GossipScenario {
            nodes,
            loss_ppm,
            lifeguard,
            seed,
        }]
    };
    let progress = bar(runs.len() as u64, "gossip runs");
    let mut reports = Vec::new();
    for scenario in runs {
        let variant = if scenario.lifeguard {
            "lifeguard"
        } else {
            "swim"
        };
        let mut watch = |period: u64| {
            progress.set_message(format!("n={} {variant}: period {period}", scenario.nodes));
        };
        match run_gossip_watched(scenario, &mut watch) {
            Ok(report) => {
                progress.suspend(|| println!("{}", describe(&report)));
                reports.push(report);
            }
            Err(what) => {
                progress.finish_and_clear();
                println!("gossip n={} seed={seed} FAILED: {what}", scenario.nodes);
                return ExitCode::FAILURE;
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let fmt = |x: Option<f64>| x.map_or_else(|| "never".to_owned(), |x| format!("{x:.1}"));
    let find = |n: usize, lifeguard: bool| -> &GossipReport {
        reports
            .iter()
            .find(|r| r.scenario.nodes == n && r.scenario.lifeguard == lifeguard)
            .expect("run")
    };
    if compare {
        let (lg, swim, small) = (find(nodes, true), find(nodes, false), find(100, true));
        println!(
            "n={nodes} detect_all_periods={} join_all_periods={} false_dead_lifeguard={} \
             false_dead_swim={} msgs_per_node_period_100={:.2} msgs_per_node_period_{nodes}={:.2}",
            fmt(lg.detect_all.map(|(_, max)| max)),
            fmt(lg.join_all),
            lg.false_deaths,
            swim.false_deaths,
            small.msgs_per_node_period,
            lg.msgs_per_node_period,
        );
    } else {
        let r = &reports[0];
        println!(
            "n={nodes} detect_all_periods={} join_all_periods={} false_suspicions={} \
             false_dead={} msgs_per_node_period={:.2} bytes_per_node_period={:.0}",
            fmt(r.detect_all.map(|(_, max)| max)),
            fmt(r.join_all),
            r.false_suspicions,
            r.false_deaths,
            r.msgs_per_node_period,
            r.bytes_per_node_period,
        );
    }
    ExitCode::SUCCESS
}

/// One run's figures, on one line.
fn describe(r: &cairn_sim::gossip::GossipReport) -> String {
    let fmt = |x: Option<f64>| x.map_or_else(|| "never".to_owned(), |x| format!("{x:.1}"));
    let pair = |x: Option<(f64, f64)>| {
        x.map_or_else(
            || "never".to_owned(),
            |(mean, max)| format!("{mean:.1} (max {max:.1})"),
        )
    };
    format!(
        "n={} {} loss={:.2} seed={}: converged after {} periods; {} crashed: first suspected \
         after {}, known dead by all after {} periods; rejoin known to all after {} periods; \
         healthy nodes falsely suspected {}, falsely dead {} ({} of them in healthy nodes' views); per node and \
         period {:.2} messages, \
         {:.0} bytes",
        r.scenario.nodes,
        if r.scenario.lifeguard {
            "lifeguard"
        } else {
            "swim"
        },
        f64::from(r.scenario.loss_ppm) / 1e6,
        r.scenario.seed,
        fmt(r.converged),
        r.crashed,
        pair(r.first_suspect),
        pair(r.detect_all),
        fmt(r.join_all),
        r.false_suspicions,
        r.false_deaths,
        r.false_deaths_seen_by_healthy,
        r.msgs_per_node_period,
        r.bytes_per_node_period,
    )
}
