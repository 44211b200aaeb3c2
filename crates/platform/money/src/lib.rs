//! Money in MedCov: an integer count of minor units (cents) with an ISO 4217 currency.
//!
//! There is one rounding rule and it lives here: a share of an amount given in basis points
//! (1/100 of a percent) is rounded half away from zero to the minor unit ([`share`]). Splits are
//! computed as one share and the remainder, so the parts always add back to the whole.

#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};

/// Ten thousand basis points: 100 %.
pub const WHOLE: u32 = 10_000;

/// An ISO 4217 code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "KES")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(code: &str) -> Result<Currency, &'static str> {
        match code.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Currency([*a, *b, *c])),
            _ => Err("must be an ISO 4217 code such as `KES` or `USD`"),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl TryFrom<String> for Currency {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Currency::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Money {
    /// Minor units (cents for USD, cents for KES).
    #[schema(example = 150000)]
    pub minor: i64,
    pub currency: Currency,
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

/// `basis_points` / 10 000 of `amount`, rounded half away from zero to the minor unit.
///
/// This is MedCov's one rounding rule. The intermediate product is 128-bit, so no amount that
/// fits in an `i64` overflows.
pub fn share(amount: i64, basis_points: u32) -> i64 {
    let product = i128::from(amount) * i128::from(basis_points);
    let whole = i128::from(WHOLE);
    let half = whole / 2;
    let rounded = if product >= 0 { (product + half) / whole } else { (product - half) / whole };
    // |rounded| <= |amount| * basis_points / 10 000; callers pass at most 100 %.
    i64::try_from(rounded).unwrap_or(if rounded > 0 { i64::MAX } else { i64::MIN })
}

/// Splits `amount` into (`basis_points` share, the rest); the parts add up to `amount` exactly.
pub fn split(amount: i64, basis_points: u32) -> (i64, i64) {
    let part = share(amount, basis_points.min(WHOLE));
    (part, amount - part)
}

/// Shares `total` out in proportion to `weights`, to the minor unit, by the largest remainder:
/// the parts add up to `total` exactly, and ties go to the earlier weight. All weights zero
/// gives everything to the first part.
pub fn allocate(total: i64, weights: &[i64]) -> Vec<i64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: i128 = weights.iter().map(|w| i128::from((*w).max(0))).sum();
    if sum == 0 {
        let mut parts = vec![0; weights.len()];
        parts[0] = total;
        return parts;
    }
    let total128 = i128::from(total);
    let mut parts: Vec<i64> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(i128, usize)> = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let numerator = total128 * i128::from((*w).max(0));
        parts.push(i64::try_from(numerator.div_euclid(sum)).unwrap_or(0));
        remainders.push((numerator.rem_euclid(sum), i));
    }
    let mut left = total - parts.iter().sum::<i64>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders.iter().cycle() {
        if left == 0 {
            break;
        }
        parts[*i] += 1;
        left -= 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn shares_round_half_away_from_zero() {
        // (amount, basis points, expected), worked by hand.
        let table = [
            (10_000, 2_000, 2_000), // 20 % of 100.00 = 20.00
            (1_005, 5_000, 503),    // 50 % of 10.05 = 5.025 -> 5.03
            (1_003, 5_000, 502),    // 5.015 -> 5.02
            (1_001, 5_000, 501),    // 5.005 -> 5.01
            (999, 3_333, 333),      // 3.329667 -> 3.33
            (1, 4_999, 0),          // 0.4999 cent -> 0
            (1, 5_000, 1),          // 0.5 cent -> 1
            (-1_005, 5_000, -503),  // symmetric below zero
            (12_345, 0, 0),
            (12_345, 10_000, 12_345),
            (i64::MAX, 10_000, i64::MAX),
        ];
        for (amount, bp, expected) in table {
            assert_eq!(share(amount, bp), expected, "{bp} bp of {amount}");
        }
    }

    #[test]
    fn currency_codes() {
        assert!(Currency::parse("KES").is_ok());
        for bad in ["kes", "KE", "KESS", "K3S", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
        let m = Money { minor: -12_345, currency: Currency::parse("USD").unwrap() };
        assert_eq!(m.to_string(), "-123.45 USD");
    }

    #[test]
    fn allocation_by_hand() {
        assert_eq!(allocate(100, &[1, 1, 1]), vec![34, 33, 33]);
        assert_eq!(allocate(1_000, &[500, 300, 200]), vec![500, 300, 200]);
        assert_eq!(allocate(10, &[0, 0]), vec![10, 0]);
        assert_eq!(allocate(7, &[2, 1]), vec![5, 2]); // 4.67 / 2.33
    }

    proptest! {
        #[test]
        fn splits_add_up(amount in -1_000_000_000_000i64..1_000_000_000_000, bp in 0u32..=10_000) {
            let (a, b) = split(amount, bp);
            prop_assert_eq!(a + b, amount);
            prop_assert!(a.abs() <= amount.abs());
        }

        #[test]
        fn allocations_add_up(total in 0i64..10_000_000_000, weights in proptest::collection::vec(0i64..1_000_000, 1..20)) {
            let parts = allocate(total, &weights);
            prop_assert_eq!(parts.iter().sum::<i64>(), total);
            prop_assert!(parts.iter().all(|p| *p >= 0));
        }
    }
}
