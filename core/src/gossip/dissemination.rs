//! How many times news is passed on (SWIM §4.1, infection-style
//! dissemination).
//!
//! Owns the retransmit limit: each update rides on about λ·log(n) outgoing
//! messages, enough for it to reach every member with high probability, and
//! no more. It must never give a limit of zero: news this node learned is
//! passed on at least once.

/// λ: how many times an update is piggybacked per order of magnitude of the
/// cluster's size (hashicorp/memberlist's `RetransmitMult`).
pub const RETRANSMIT_MULT: u64 = 4;

/// Times an update is passed on in a cluster of `members` (this node
/// included): λ·⌈log10(members + 1)⌉, at least λ: 4 up to 9 members, 8 up
/// to 99, 12 up to 999.
pub fn retransmit_limit(members: u64) -> u64 {
    RETRANSMIT_MULT * ceil_log10(members.saturating_add(1)).max(1)
}

/// ⌈log10(`x`)⌉, exactly: the least k with 10^k ≥ `x`.
fn ceil_log10(x: u64) -> u64 {
    let (mut k, mut power) = (0, 1u64);
    while power < x {
        power = power.saturating_mul(10);
        k += 1;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: λ·log(n) retransmissions, stepping up by λ at each order of
    // magnitude of the cluster's size.
    #[test]
    fn retransmit_limit_by_cluster_size() {
        let table = [
            (0, 4),
            (1, 4),
            (8, 4),
            (9, 4),
            (10, 8),
            (98, 8),
            (99, 8),
            (100, 12),
            (999, 12),
            (1_000, 16),
            (u64::MAX, 4 * 20),
        ];
        for (members, limit) in table {
            assert_eq!(retransmit_limit(members), limit, "{members} members");
        }
    }
}
