//! Decimal-safe arithmetic for scores and rates.
//!
//! Rounding is half away from zero on the *decimal* value, not on the binary
//! double: averages are summed in fixed point (10⁻¹² units, each input taken
//! as its shortest round-trip decimal). So 57.25 stays 57.25 and the mean of
//! 50.11 and 50.12 is 50.12, where naive `f64` arithmetic lands at
//! 50.114999… and rounds down.
//! Inputs with more than 12 decimals are first rounded to 12.

/// Fixed-point scale for sums: 10^12 units per 1.
pub(crate) const FIXED_DECIMALS: u32 = 12;

/// Clamps to [0, 1]; NaN counts as 0.
pub fn clamp_unit(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 1.0)
    }
}

/// Rounds half away from zero to `decimals` places (at most 12), treating
/// the value as its shortest round-trip decimal (so 1.005 → 1.01, 2.675 →
/// 2.68). Non-finite values and values too large for fixed point are
/// rounded in plain `f64`.
pub fn round_half_away_from_zero(value: f64, decimals: u32) -> f64 {
    let decimals = decimals.min(FIXED_DECIMALS);
    match to_fixed(value).and_then(|units| round_fixed(units, 1, decimals)) {
        Some(rounded) => from_scaled(rounded, decimals),
        None => round_float(value, decimals),
    }
}

fn round_float(value: f64, decimals: u32) -> f64 {
    let factor = 10f64.powi(i32::try_from(decimals).unwrap_or(0));
    let scaled = (value * factor).round() / factor;
    if scaled.is_finite() { scaled } else { value }
}

/// `units / count` (units at 10⁻¹²) rounded half away from zero to
/// `decimals`, as an integer of 10^-decimals.
fn round_fixed(units: i128, count: u128, decimals: u32) -> Option<i128> {
    let divisor = pow10(FIXED_DECIMALS - decimals).checked_mul(count)?;
    let magnitude = div_round_half_up(units.unsigned_abs(), divisor)?;
    let magnitude = i128::try_from(magnitude).ok()?;
    Some(if units < 0 { -magnitude } else { magnitude })
}

/// `numerator / denominator` rounded half up (non-negative operands).
pub(crate) fn div_round_half_up(numerator: u128, denominator: u128) -> Option<u128> {
    if denominator == 0 {
        return None;
    }
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    // remainder ≥ denominator/2 ⇔ 2·remainder ≥ denominator (no overflow:
    // remainder < denominator ≤ u128::MAX, compare via subtraction).
    if remainder >= denominator - remainder {
        quotient.checked_add(1)
    } else {
        Some(quotient)
    }
}

pub(crate) fn pow10(exponent: u32) -> u128 {
    10u128.pow(exponent)
}

/// An integer of 10^-decimals as the nearest double (e.g. 8680, 2 → 86.8).
fn from_scaled(scaled: i128, decimals: u32) -> f64 {
    // Correctly rounded division of exact operands (|scaled| < 2^53 in
    // practice) gives the double nearest the decimal.
    scaled as f64 / pow10(decimals) as f64
}

/// The value's shortest round-trip decimal as 10⁻¹² units, rounded half away
/// from zero at the 12th decimal. None when not finite or too large.
pub(crate) fn to_fixed(value: f64) -> Option<i128> {
    if !value.is_finite() {
        return None;
    }
    // `Display` for f64 is the shortest round-trip decimal, never exponent.
    let text = value.abs().to_string();
    let (whole, fraction) = text.split_once('.').unwrap_or((text.as_str(), ""));
    let whole: i128 = whole.parse().ok()?;
    let kept = fraction.get(..fraction.len().min(FIXED_DECIMALS as usize))?;
    let mut fraction_units: i128 = if kept.is_empty() {
        0
    } else {
        kept.parse().ok()?
    };
    for _ in kept.len()..FIXED_DECIMALS as usize {
        fraction_units = fraction_units.checked_mul(10)?;
    }
    let round_up = fraction
        .as_bytes()
        .get(FIXED_DECIMALS as usize)
        .is_some_and(|digit| *digit >= b'5');
    let units = whole
        .checked_mul(i128::try_from(pow10(FIXED_DECIMALS)).ok()?)?
        .checked_add(fraction_units)?
        .checked_add(i128::from(round_up))?;
    Some(if value.is_sign_negative() {
        -units
    } else {
        units
    })
}

/// Mean of `values` rounded half away from zero to `decimals`; None when a
/// value does not fit fixed point or `values` is empty.
fn mean_exact(values: &[f64], decimals: u32) -> Option<f64> {
    let count = u128::try_from(values.len()).ok()?;
    let mut sum: i128 = 0;
    for value in values {
        sum = sum.checked_add(to_fixed(*value)?)?;
    }
    round_fixed(sum, count, decimals).map(|scaled| from_scaled(scaled, decimals))
}

pub(crate) fn mean_rounded(values: &[f64], decimals: u32) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    mean_exact(values, decimals).unwrap_or_else(|| {
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        round_float(mean, decimals)
    })
}

/// `part / whole` rounded half away from zero to `decimals`; 0 when empty.
pub(crate) fn rate_rounded(part: usize, whole: usize, decimals: u32) -> f64 {
    let exact = u128::try_from(part)
        .ok()
        .zip(u128::try_from(whole).ok())
        .and_then(|(part, whole)| {
            let scaled = div_round_half_up(part.checked_mul(pow10(decimals))?, whole)?;
            i128::try_from(scaled).ok()
        });
    match exact {
        Some(scaled) => from_scaled(scaled, decimals),
        None if whole == 0 => 0.0,
        None => round_float(part as f64 / whole as f64, decimals),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_rounding_is_half_away_from_zero() {
        assert_eq!(round_half_away_from_zero(1.005, 2), 1.01);
        assert_eq!(round_half_away_from_zero(2.675, 2), 2.68);
        assert_eq!(round_half_away_from_zero(-2.675, 2), -2.68);
        assert_eq!(round_half_away_from_zero(0.33335, 4), 0.3334);
        assert_eq!(round_half_away_from_zero(0.33334999, 4), 0.3333);
        assert_eq!(round_half_away_from_zero(86.80000000000001, 2), 86.8);
        assert_eq!(round_half_away_from_zero(0.1 + 0.2, 4), 0.3);
        assert_eq!(round_half_away_from_zero(57.25, 2), 57.25);
        assert_eq!(round_half_away_from_zero(0.5, 0), 1.0);
        assert_eq!(round_half_away_from_zero(-0.5, 0), -1.0);
        assert_eq!(round_half_away_from_zero(1e300, 2), 1e300);
        assert!(round_half_away_from_zero(f64::NAN, 2).is_nan());
        assert_eq!(round_half_away_from_zero(f64::INFINITY, 2), f64::INFINITY);
    }
}
