//! Logarithms in fixed point, exactly the same on every machine.
//!
//! Owns the only logarithms the gossip rules take (of cluster sizes and
//! confirmation counts). A platform's `ln` is not correctly rounded, so a
//! floating-point logarithm could differ between machines and move a
//! timeout by a nanosecond, and with it a whole simulated run; these are
//! integer computations. It must never be used where a value is not an
//! integer of at least 1.

/// Fractional bits of the fixed-point results.
pub const FRACTION_BITS: u32 = 32;

/// One, in fixed point.
pub const ONE: u64 = 1 << FRACTION_BITS;

/// log2(`x`) in fixed point (`FRACTION_BITS` fractional bits), rounded
/// down, for `x >= 1`.
pub fn log2(x: u64) -> u64 {
    assert!(x >= 1, "the logarithm of {x} is not taken");
    let whole = u64::from(63 - x.leading_zeros());
    // The mantissa m in [1, 2) as a Q62 number; each squaring yields one
    // fractional bit: m² ≥ 2 means the bit is 1 (and m² / 2 goes on).
    let mut m = if whole <= 62 {
        u128::from(x) << (62 - whole)
    } else {
        u128::from(x) >> (whole - 62)
    };
    let mut fraction = 0u64;
    for bit in (0..FRACTION_BITS).rev() {
        m = (m * m) >> 62;
        if m >= 2 << 62 {
            m >>= 1;
            fraction |= 1 << bit;
        }
    }
    (whole << FRACTION_BITS) | fraction
}

/// log10(`x`) in fixed point, rounded down, for `x >= 1`.
pub fn log10(x: u64) -> u64 {
    // log10(x) = log2(x) / log2(10).
    let scaled = u128::from(log2(x)) << FRACTION_BITS;
    u64::try_from(scaled / u128::from(log2(10))).expect("log10 of a u64 fits")
}

/// `value` × `numerator` / `denominator`, rounded down, without overflow.
pub fn scale(value: u64, numerator: u64, denominator: u64) -> u64 {
    assert!(denominator > 0, "a scale has a denominator");
    let scaled = u128::from(value) * u128::from(numerator) / u128::from(denominator);
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed-point number as thousandths, rounded down (for tables).
    fn milli(fixed: u64) -> u64 {
        scale(fixed, 1000, ONE)
    }

    // Goal: logarithms of the sizes and counts the rules take, to three
    // places, exactly.
    #[test]
    fn logarithms_table() {
        let log2_table = [
            (1, 0),
            (2, 1_000),
            (3, 1_584),
            (4, 2_000),
            (10, 3_321),
            (100, 6_643),
            (1_000, 9_965),
            (1 << 40, 40_000),
            (u64::MAX, 63_999),
        ];
        for (x, expected) in log2_table {
            assert_eq!(milli(log2(x)), expected, "log2({x})");
        }
        let log10_table = [
            (1, 0),
            (2, 301),
            (5, 698),
            (9, 954),
            (10, 1_000),
            (100, 2_000),
            (1_000, 3_000),
            (1_001, 3_000),
            (10_000, 4_000),
        ];
        for (x, expected) in log10_table {
            assert_eq!(milli(log10(x)), expected, "log10({x})");
        }
    }

    // Goal: the logarithm never decreases as its argument grows.
    #[test]
    fn logarithms_are_monotonic() {
        let mut last = 0;
        for x in 1..5_000 {
            let now = log2(x);
            assert!(now >= last, "log2({x})");
            last = now;
        }
    }
}
