//! Price lists: what a service costs at a hospital over a period, and invoice lines priced
//! from them.

use medcov_domain::{FieldError, Rejection};
use time::Date;
use uuid::Uuid;

use super::invoice::Line;

/// One price of a service at a hospital over a period (`effective_to` included; none: open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub service_code: String,
    pub category: String,
    pub description: String,
    /// Minor units.
    pub unit_price: i64,
    pub currency: String,
    pub effective_from: Date,
    pub effective_to: Option<Date>,
}

/// A price as asked for, before it is checked.
#[derive(Debug, Clone)]
pub struct NewPrice {
    pub hospital_id: Uuid,
    pub service_code: String,
    pub category: String,
    pub description: String,
    pub unit_price: i64,
    pub currency: String,
    pub effective_from: Date,
    pub effective_to: Option<Date>,
}

impl NewPrice {
    /// The price, normalised (code upper case, category lower case); every problem names its
    /// field. A hospital prices in its own currency (`hospital_currency`, when known) only.
    pub fn check(self, id: Uuid, hospital_currency: Option<&str>) -> Result<Price, Vec<FieldError>> {
        let code = self.service_code.trim().to_uppercase();
        let mut errors = Vec::new();
        if !(2..=20).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            errors.push(FieldError::new("service_code", "must be 2 to 20 of A-Z, 0-9, `-` and `.`"));
        }
        let category = self.category.trim().to_lowercase();
        if category.is_empty() || !category.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            errors.push(FieldError::new("category", "must be a-z and `_`, such as `laboratory`"));
        }
        if self.description.trim().is_empty() || self.description.chars().count() > 200 {
            errors.push(FieldError::new("description", "must be 1 to 200 characters"));
        } else if let Some(problem) = medcov_domain::text::display_problem("description", &self.description) {
            errors.push(problem);
        }
        if !(0..=1_000_000_000_000).contains(&self.unit_price) {
            errors.push(FieldError::new("unit_price", "must be 0 to 10^12 minor units"));
        }
        if let Err(why) = medcov_money::Currency::parse(&self.currency) {
            errors.push(FieldError::new("currency", why));
        } else if let Some(own) = hospital_currency
            && own != self.currency
        {
            errors.push(FieldError::new("currency", format!("must be the hospital's currency, {own}")));
        }
        if self.effective_to.is_some_and(|to| to < self.effective_from) {
            errors.push(FieldError::new("effective_to", "must not be before effective_from"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Price {
            id,
            hospital_id: self.hospital_id,
            service_code: code,
            category,
            description: self.description.trim().to_owned(),
            unit_price: self.unit_price,
            currency: self.currency,
            effective_from: self.effective_from,
            effective_to: self.effective_to,
        })
    }
}

impl Price {
    /// Whether this price's period shares a day with `[from, to]` (`to` none: open).
    pub fn overlaps(&self, from: Date, to: Option<Date>) -> bool {
        !(self.effective_to.is_some_and(|t| t < from) || to.is_some_and(|t| t < self.effective_from))
    }

    /// Whether it may join a price list whose periods of the same code are `periods`: periods
    /// of one code never overlap.
    pub fn fits(&self, periods: &[(Date, Option<Date>)]) -> Result<(), Rejection> {
        if periods.iter().any(|(from, to)| self.overlaps(*from, *to)) {
            return Err(Rejection::conflict(format!(
                "{} already has a price in this period; end it first (effective_to)",
                self.service_code
            )));
        }
        Ok(())
    }
}

/// A service to invoice: its code and quantity, with the category and description to use when
/// the price list has no price for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub code: String,
    pub quantity: u32,
    pub category: Option<String>,
    pub description: Option<String>,
    /// The approved pre-authorisation the encounter cites for it: the claim cites it too.
    pub preauth_id: Option<Uuid>,
}

/// Invoice lines for `services` priced from `prices` (the price list valid on the date of
/// service), and the invoice's one currency: the hospital's (`currency`) when known,
/// otherwise that of the first priced line. A service without a price in that currency is an
/// unpriced line: an invoice never adds two currencies.
pub fn price_lines(prices: &[Price], services: &[Service], currency: Option<&str>) -> (Vec<Line>, Option<String>) {
    let mut currency = currency.map(str::to_owned);
    let lines = services
        .iter()
        .map(|service| {
            let price = prices
                .iter()
                .find(|p| p.service_code == service.code && currency.as_ref().is_none_or(|c| *c == p.currency));
            if let Some(p) = price {
                currency.get_or_insert_with(|| p.currency.clone());
            }
            Line::priced(
                &service.code,
                &price.map(|p| p.category.clone()).or_else(|| service.category.clone()).unwrap_or_default(),
                &price
                    .map(|p| p.description.clone())
                    .or_else(|| service.description.clone())
                    .unwrap_or_else(|| service.code.clone()),
                service.quantity,
                price.map(|p| p.unit_price),
            )
            .citing(service.preauth_id)
        })
        .collect();
    (lines, currency)
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn asked(code: &str, from: Date, to: Option<Date>) -> NewPrice {
        NewPrice {
            hospital_id: Uuid::from_u128(1),
            service_code: code.into(),
            category: "Laboratory".into(),
            description: " Full blood count ".into(),
            unit_price: 125_000,
            currency: "KES".into(),
            effective_from: from,
            effective_to: to,
        }
    }

    #[test]
    fn a_price_is_checked_and_normalised() {
        let price = asked(" lab-fbc ", date!(2026 - 01 - 01), None).check(Uuid::from_u128(9), Some("KES")).unwrap();
        assert_eq!(
            (price.service_code.as_str(), price.category.as_str(), price.description.as_str()),
            ("LAB-FBC", "laboratory", "Full blood count")
        );
        let bad = NewPrice {
            unit_price: -1,
            currency: "shillings".into(),
            ..asked("x", date!(2026 - 01 - 31), Some(date!(2026 - 01 - 01)))
        };
        let fields: Vec<String> =
            bad.check(Uuid::nil(), Some("KES")).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["service_code", "unit_price", "currency", "effective_to"]);
    }

    #[test]
    fn periods_of_a_code_never_overlap() {
        let price = |from, to| asked("LAB", from, to).check(Uuid::nil(), None).unwrap();
        let jan = (date!(2026 - 01 - 01), Some(date!(2026 - 01 - 31)));
        let open_from_march = (date!(2026 - 03 - 01), None);
        for (from, to, fits) in [
            (date!(2026 - 02 - 01), Some(date!(2026 - 02 - 28)), true),
            (date!(2025 - 01 - 01), Some(date!(2025 - 12 - 31)), true),
            (date!(2026 - 01 - 31), Some(date!(2026 - 02 - 10)), false),
            (date!(2025 - 06 - 01), None, false),
            (date!(2026 - 02 - 01), None, false),
            (date!(2027 - 01 - 01), None, false),
        ] {
            assert_eq!(price(from, to).fits(&[jan, open_from_march]).is_ok(), fits, "{from} to {to:?}");
        }
        assert_eq!(
            price(date!(2026 - 01 - 15), None).fits(&[jan]),
            Err(Rejection::conflict("LAB already has a price in this period; end it first (effective_to)"))
        );
    }

    #[test]
    fn lines_are_priced_from_the_list() {
        let prices = [asked("LAB", date!(2026 - 01 - 01), None).check(Uuid::nil(), None).unwrap()];
        let service = |code: &str, category: Option<&str>| Service {
            code: code.into(),
            quantity: 2,
            category: category.map(str::to_owned),
            description: None,
            preauth_id: None,
        };
        let (lines, currency) =
            price_lines(&prices, &[service("XR", Some("imaging")), service("LAB", Some("x"))], None);
        assert_eq!(currency.as_deref(), Some("KES"));
        assert_eq!(
            (lines[0].unpriced, lines[0].category.as_str(), lines[0].description.as_str()),
            (true, "imaging", "XR")
        );
        assert_eq!((lines[1].total, lines[1].category.as_str()), (250_000, "laboratory"));
        assert_eq!(price_lines(&prices, &[service("XR", None)], None).1, None, "no price, no currency");
    }

    #[test]
    fn a_hospital_prices_and_invoices_in_its_own_currency_only() {
        // A KES hospital refuses a USD price, naming the field.
        let usd = NewPrice { currency: "USD".into(), ..asked("LAB", date!(2026 - 01 - 01), None) };
        let refused = usd.clone().check(Uuid::nil(), Some("KES")).unwrap_err();
        assert_eq!(refused, [FieldError::new("currency", "must be the hospital's currency, KES")]);
        assert!(usd.clone().check(Uuid::nil(), Some("USD")).is_ok());
        // A list that holds both (written before the rule) prices a KES invoice from KES
        // prices only: the USD line is unpriced, never added to the KES one.
        let mut xr = usd.check(Uuid::nil(), None).unwrap();
        xr.service_code = "XR".into();
        let lab = asked("LAB", date!(2026 - 01 - 01), None).check(Uuid::nil(), None).unwrap();
        let prices = [xr, lab];
        let service = |code: &str| Service {
            code: code.into(),
            quantity: 1,
            category: None,
            description: None,
            preauth_id: None,
        };
        let (lines, currency) = price_lines(&prices, &[service("XR"), service("LAB")], Some("KES"));
        assert_eq!(currency.as_deref(), Some("KES"));
        assert_eq!((lines[0].unpriced, lines[1].unpriced, lines[1].total), (true, false, 125_000));
        // Without the hospital's currency the first priced line fixes it.
        let (lines, currency) = price_lines(&prices, &[service("XR"), service("LAB")], None);
        assert_eq!(currency.as_deref(), Some("USD"));
        assert_eq!((lines[0].unpriced, lines[1].unpriced), (false, true));
    }
}
