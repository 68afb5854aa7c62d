//! Gossip alone, at 100 nodes, through the simulator's fixed story (all
//! join, 2% crash, 1% turn slow, one rejoins): the properties
//! `cairn-sim gossip` measures at 1,000, held as assertions here.

use cairn::sim::gossip::{run_gossip, GossipReport, GossipScenario};

fn run(lifeguard: bool, seed: u64) -> GossipReport {
    run_gossip(GossipScenario {
        nodes: 100,
        loss_ppm: 100_000,
        lifeguard,
        seed,
    })
    .unwrap_or_else(|what| panic!("seed {seed}, lifeguard {lifeguard}: {what}"))
}

// Goal: with 10% loss, every crash is known to every live node, and the
// rejoin too, within O(log n) periods: detection within the probe round
// trip, the suspicion's shortest timeout (α·log10 n) and dissemination
// (λ·log10 n sends each); Lifeguard's false deaths of healthy nodes are at
// least 50 times fewer than plain SWIM's, or none.
#[test]
fn gossip_at_100_detects_and_spreads_within_log_n_periods() {
    for seed in [7, 8] {
        let lifeguard = run(true, seed);
        let swim = run(false, seed);
        for report in [&lifeguard, &swim] {
            let (_, detect_all) = report.detect_all.expect("every crash known dead by all");
            // α·log10(100) = 8 periods of suspicion, and about as long again
            // to probe and to spread.
            assert!(detect_all <= 16.0, "{report:?}");
            let join_all = report.join_all.expect("the rejoin known to all");
            assert!(join_all <= 8.0, "{report:?}");
            assert!(report.converged.expect("converged") <= 20.0, "{report:?}");
        }
        assert!(
            swim.false_deaths > 0,
            "slow nodes make SWIM declare deaths: {swim:?}"
        );
        assert!(
            lifeguard.false_deaths * 50 <= swim.false_deaths,
            "Lifeguard {} against SWIM {}",
            lifeguard.false_deaths,
            swim.false_deaths
        );
        assert_eq!(lifeguard.false_deaths_seen_by_healthy, 0, "{lifeguard:?}");
        assert!(lifeguard.msgs_per_node_period < 5.0, "{lifeguard:?}");
    }
}

// Goal: one seed replays a gossip run exactly.
#[test]
fn a_gossip_run_is_its_seeds() {
    assert_eq!(run(true, 3), run(true, 3));
    assert_ne!(run(true, 3), run(true, 4));
}
