//! Delay before a retry of a remote decision.
//!
//! Nominal delay before retry n (n ≥ 1) is `base × 2^(n−1)` ms, exponent
//! capped at 8 and delay at 5000 ms (spec 20 §4.3). We add EQUAL jitter: the
//! first half of the nominal delay is fixed and the second half is uniform
//! random. Why equal rather than full jitter: retries from many gateway
//! tasks still spread out, yet never fire back-to-back at a struggling OPA,
//! and the worst case stays the nominal delay, so latency bounds are unchanged.

use std::time::Duration;

const MAX_EXPONENT: u32 = 8;
const MAX_DELAY_MS: u64 = 5_000;

/// Nominal (un-jittered) delay in ms before retry `retry` (1-based).
pub(crate) fn nominal_delay_ms(base_ms: u64, retry: u32) -> u64 {
    let exponent = retry.saturating_sub(1).min(MAX_EXPONENT);
    base_ms.saturating_mul(1 << exponent).min(MAX_DELAY_MS)
}

/// Equal jitter: `nominal − nominal/2 + random in [0, nominal/2]`.
/// `random` is any u64; only its value modulo the jitter range is used.
pub(crate) fn equal_jitter_ms(nominal_ms: u64, random: u64) -> u64 {
    let half = nominal_ms / 2;
    nominal_ms - half + random % (half + 1)
}

/// The jittered delay to sleep before retry `retry` (1-based).
pub(crate) fn retry_delay(base_ms: u64, retry: u32) -> Duration {
    let nominal = nominal_delay_ms(base_ms, retry);
    Duration::from_millis(equal_jitter_ms(nominal, fastrand::u64(..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nominal_doubles_then_caps() {
        assert_eq!(nominal_delay_ms(50, 1), 50);
        assert_eq!(nominal_delay_ms(50, 2), 100);
        assert_eq!(nominal_delay_ms(50, 3), 200);
        // exponent capped at 8: 10 × 2^8
        assert_eq!(nominal_delay_ms(10, 20), 2_560);
        assert_eq!(nominal_delay_ms(1_000, 5), 5_000);
        assert_eq!(nominal_delay_ms(u64::MAX, 3), 5_000);
        assert_eq!(nominal_delay_ms(0, 3), 0);
    }

    #[test]
    fn equal_jitter_stays_in_upper_half() {
        assert_eq!(equal_jitter_ms(100, 0), 50);
        assert_eq!(equal_jitter_ms(100, 50), 100);
        assert_eq!(equal_jitter_ms(101, 0), 51);
        assert_eq!(equal_jitter_ms(0, 12345), 0);
        for _ in 0..1_000 {
            let delay = retry_delay(50, 2).as_millis();
            assert!((50..=100).contains(&delay), "{delay}");
        }
    }

    #[test]
    fn jitter_actually_varies() {
        let delays: std::collections::HashSet<u128> = (0..200)
            .map(|_| retry_delay(1_000, 1).as_millis())
            .collect();
        assert!(delays.len() > 10, "{delays:?}");
    }
}
