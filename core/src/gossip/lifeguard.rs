//! Lifeguard (Dadgar, Phillips, Currey 2018): a node that is itself slow
//! waits longer before it blames others, and a suspicion lasts long while
//! one member alone holds it and shrinks as others confirm it.
//!
//! Owns the local health score (§IV.A) and the dynamic suspicion timeout
//! (§IV.B), with the paper's parameters named. It must never shorten a
//! suspicion below its minimum, or stretch this node's timeouts past the
//! score's bound.

use crate::gossip::fixed;
use crate::time::Duration;

/// α: the minimum suspicion timeout in probe intervals, per order of
/// magnitude of the cluster's size (memberlist's `SuspicionMult`).
pub const SUSPICION_ALPHA: u64 = 4;

/// β: the maximum suspicion timeout as a multiple of the minimum
/// (memberlist's `SuspicionMaxTimeoutMult`).
pub const SUSPICION_BETA: u64 = 6;

/// K: independent confirmations after which a suspicion has shrunk to its
/// minimum (α − 2, as memberlist sets it).
pub const SUSPICION_K: u64 = SUSPICION_ALPHA - 2;

/// S: the local health score's bound; timeouts stretch at most S-fold
/// (memberlist's `AwarenessMaxMultiplier`).
pub const HEALTH_MAX: u32 = 8;

/// How long a suspicion of a member lasts, from when this node first
/// suspects it, given `confirmations` independent confirmations so far, in
/// a cluster of `members`, probing every `probe_interval` (§IV.B):
///
/// min = α · max(1, log10(n)) · interval, max = β · min, and
/// timeout = max(min, max − (max − min) · log(C + 1) / log(K + 1)),
///
/// where K is [`SUSPICION_K`], or 0 (the minimum at once) when the cluster
/// has too few other members to confirm that many times.
pub fn suspicion_timeout(members: u64, confirmations: u64, probe_interval: Duration) -> Duration {
    let scale = fixed::log10(members.max(1)).max(fixed::ONE);
    let min = fixed::scale(
        probe_interval.as_nanos().saturating_mul(SUSPICION_ALPHA),
        scale,
        fixed::ONE,
    );
    let max = min.saturating_mul(SUSPICION_BETA);
    let k = if members.saturating_sub(2) < SUSPICION_K {
        0
    } else {
        SUSPICION_K
    };
    if k == 0 {
        return Duration::from_nanos(min);
    }
    // log(C + 1) / log(K + 1), at most one: the base cancels.
    let shrunk = fixed::scale(
        fixed::log2(confirmations.saturating_add(1)),
        fixed::ONE,
        fixed::log2(k + 1),
    )
    .min(fixed::ONE);
    let timeout = max - fixed::scale(max - min, shrunk, fixed::ONE);
    Duration::from_nanos(timeout.max(min))
}

/// What happened that tells this node about its own health (§IV.A).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthEvent {
    /// A probe this node sent was acknowledged in time.
    ProbeAcked,
    /// A probe this node sent went unanswered, directly and indirectly.
    ProbeFailed,
    /// A member asked to probe for this node sent no nack: this node's
    /// own messages may be what is slow.
    NackMissed,
    /// This node had to refute a suspicion of itself.
    Refuted,
}

/// The local health score: 0 is healthy; each sign that this node is the
/// slow one raises it, each acknowledged probe lowers it, within
/// [0, [`HEALTH_MAX`] − 1].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalHealth {
    score: u32,
}

impl LocalHealth {
    /// The score.
    pub fn score(self) -> u32 {
        self.score
    }

    /// Takes in `event`.
    pub fn apply(&mut self, event: HealthEvent) {
        self.score = match event {
            HealthEvent::ProbeAcked => self.score.saturating_sub(1),
            HealthEvent::ProbeFailed | HealthEvent::NackMissed | HealthEvent::Refuted => {
                (self.score + 1).min(HEALTH_MAX - 1)
            }
        };
    }

    /// `base` (a probe interval or timeout) stretched by the score:
    /// base × (score + 1).
    pub fn stretch(self, base: Duration) -> Duration {
        Duration::from_nanos(base.as_nanos().saturating_mul(u64::from(self.score) + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn millis(d: Duration) -> u64 {
        d.as_nanos() / 1_000_000
    }

    // Goal: the suspicion timeout by confirmations (§IV.B): β times the
    // minimum with none, the minimum once K have come, in between on a
    // logarithmic curve; the minimum grows with log10 of the cluster.
    #[test]
    fn suspicion_timeout_by_confirmations() {
        let table = [
            // Ten members: min = 4 s (log10 10 = 1), max = 24 s, K = 2.
            (10, 0, 24_000),
            (10, 1, 11_381),
            (10, 2, 4_000),
            (10, 3, 4_000),
            // A thousand: min = 12 s, max = 72 s.
            (1_000, 0, 72_000),
            (1_000, 1, 34_144),
            (1_000, 2, 12_000),
            (1_000, 9, 12_000),
            // A cluster too small to confirm K times: the minimum at once
            // (log10 of fewer than ten members counts as one).
            (3, 0, 4_000),
            (1, 0, 4_000),
        ];
        for (members, confirmations, expected) in table {
            assert_eq!(
                millis(suspicion_timeout(members, confirmations, SECOND)),
                expected,
                "{members} members, {confirmations} confirmations"
            );
        }
    }

    // Goal: the fixed-point timeout is the paper's formula, to within a
    // microsecond, over sizes and counts; and it never grows with more
    // confirmations.
    #[test]
    fn suspicion_timeout_follows_the_formula() {
        for members in [4u64, 5, 10, 50, 100, 1_000, 5_000] {
            let mut last = u64::MAX;
            for confirmations in 0..6u64 {
                let got = suspicion_timeout(members, confirmations, SECOND).as_nanos();
                let min = 4.0 * (members as f64).log10().max(1.0) * 1e9;
                let max = 6.0 * min;
                let ratio = ((confirmations + 1) as f64).ln() / 3f64.ln();
                let want = (max - (max - min) * ratio).max(min);
                assert!((got as f64 - want).abs() < 1e3, "{members} {confirmations}");
                assert!(got <= last);
                last = got;
            }
        }
    }

    // Goal: the local health score (§IV.A): raised by each sign that this
    // node is slow, lowered by each acknowledged probe, within [0, S − 1];
    // timeouts stretch by (score + 1).
    #[test]
    fn local_health_adjustments() {
        use HealthEvent::{NackMissed, ProbeAcked, ProbeFailed, Refuted};
        let table: [(&[HealthEvent], u32, u64); 6] = [
            (&[], 0, 500),
            (&[ProbeAcked], 0, 500),
            (&[ProbeFailed], 1, 1_000),
            (&[ProbeFailed, NackMissed, Refuted], 3, 2_000),
            (&[ProbeFailed, ProbeFailed, ProbeAcked], 1, 1_000),
            (&[Refuted; 20], HEALTH_MAX - 1, 500 * HEALTH_MAX as u64),
        ];
        for (events, score, stretched) in table {
            let mut health = LocalHealth::default();
            for &event in events {
                health.apply(event);
            }
            assert_eq!(health.score(), score, "{events:?}");
            assert_eq!(
                millis(health.stretch(Duration::from_millis(500))),
                stretched,
                "{events:?}"
            );
        }
    }
}
