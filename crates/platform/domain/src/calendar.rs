//! The calendar rule every service shares: an instant is on the day its place says it is.
//!
//! A hospital's date of service, an insurer's "today", a report's day: each is the local date
//! of an instant in the time zone of the tenant it belongs to (an IANA name such as
//! `Africa/Nairobi`, resolved with the zone database bundled in the binary, never the host's),
//! never the UTC date. A hospital at UTC+14 treats a patient at 09:00 UTC on 30 November on
//! its own 1 December.

use jiff::tz::TimeZone;
use time::{Date, Month, OffsetDateTime};

/// A tenant's time zone, from its IANA name (`Pacific/Kiritimati`, `UTC`).
pub fn zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| format!("`{name}` is not a known IANA time zone"))
}

/// Whether `name` is a known IANA time zone.
pub fn is_zone(name: &str) -> bool {
    zone(name).is_ok()
}

/// The local date of the instant `at` in `tz`.
pub fn local_date(at: OffsetDateTime, tz: &TimeZone) -> Date {
    // Every `OffsetDateTime` time can represent (years -9999..=9999) is in jiff's range; on
    // the impossible failure the UTC date is the answer rather than a panic.
    let local = || -> Option<Date> {
        let instant = jiff::Timestamp::from_second(at.unix_timestamp()).ok()?;
        let d = instant.to_zoned_datetime(tz.clone()).date();
        Date::from_calendar_date(
            i32::from(d.year()),
            Month::try_from(u8::try_from(d.month()).ok()?).ok()?,
            u8::try_from(d.day()).ok()?,
        )
        .ok()
    };
    local().unwrap_or_else(|| at.to_offset(time::UtcOffset::UTC).date())
}

/// The local date of the instant `at` in the zone named `name`; an unknown name (which
/// validation keeps out of the stores) counts as UTC.
pub fn local_date_in(at: OffsetDateTime, name: &str) -> Date {
    local_date(at, &zone(name).unwrap_or(TimeZone::UTC))
}

/// Today in the zone named `name`.
pub fn today_in(name: &str) -> Date {
    local_date_in(OffsetDateTime::now_utc(), name)
}

/// How long after the instant `at` the next local day begins in `tz` (its midnight, or the
/// first instant of the day where a transition skips midnight): how long an answer about
/// "today" there holds. At least one second.
pub fn left_of_day(at: OffsetDateTime, tz: &TimeZone) -> std::time::Duration {
    let next = || -> Option<i64> {
        let instant = jiff::Timestamp::from_second(at.unix_timestamp()).ok()?;
        let next = instant.to_zoned_datetime(tz.clone()).tomorrow().ok()?.start_of_day().ok()?;
        Some(next.timestamp().as_second())
    };
    // On the impossible failure, the next UTC midnight.
    let next = next().unwrap_or_else(|| at.unix_timestamp() - at.unix_timestamp().rem_euclid(86_400) + 86_400);
    std::time::Duration::from_secs(u64::try_from(next - at.unix_timestamp()).unwrap_or(0).max(1))
}

/// [`left_of_day`] in the zone named `name` (an unknown name counts as UTC).
pub fn left_of_day_in(at: OffsetDateTime, name: &str) -> std::time::Duration {
    left_of_day(at, &zone(name).unwrap_or(TimeZone::UTC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn an_instant_is_on_its_local_day_on_either_side_of_local_midnight() {
        // (zone, instant, local date). Kiritimati is UTC+14 and Honolulu UTC-10 all year (no
        // DST): the same instant is on two dates a day apart; Nairobi is UTC+3; Berlin moves.
        let cases = [
            ("Pacific/Kiritimati", datetime!(2026-11-30 09:59:59 UTC), date!(2026 - 11 - 30)),
            ("Pacific/Kiritimati", datetime!(2026-11-30 10:00:00 UTC), date!(2026 - 12 - 01)),
            ("Pacific/Kiritimati", datetime!(2026-11-30 23:59:59 UTC), date!(2026 - 12 - 01)),
            ("Pacific/Kiritimati", datetime!(2026-12-31 10:00:00 UTC), date!(2027 - 01 - 01)),
            ("Pacific/Honolulu", datetime!(2026-12-01 09:59:59 UTC), date!(2026 - 11 - 30)),
            ("Pacific/Honolulu", datetime!(2026-12-01 10:00:00 UTC), date!(2026 - 12 - 01)),
            ("Pacific/Honolulu", datetime!(2026-12-01 00:30:00 UTC), date!(2026 - 11 - 30)),
            ("Pacific/Honolulu", datetime!(2027-01-01 09:00:00 UTC), date!(2026 - 12 - 31)),
            ("Africa/Nairobi", datetime!(2026-11-30 21:00:00 UTC), date!(2026 - 12 - 01)),
            ("Africa/Nairobi", datetime!(2026-11-30 20:59:59 UTC), date!(2026 - 11 - 30)),
            ("Europe/Berlin", datetime!(2026-07-01 22:00:00 UTC), date!(2026 - 07 - 02)),
            ("Europe/Berlin", datetime!(2026-12-01 22:00:00 UTC), date!(2026 - 12 - 01)),
            ("UTC", datetime!(2026-11-30 23:59:59 UTC), date!(2026 - 11 - 30)),
        ];
        for (name, at, expected) in cases {
            let tz = zone(name).unwrap();
            assert_eq!(local_date(at, &tz), expected, "{at} in {name}");
            assert_eq!(local_date_in(at, name), expected, "{at} in {name}");
            // The offset the instant is written with changes nothing.
            let elsewhere = at.to_offset(time::UtcOffset::from_hms(5, 30, 0).unwrap());
            assert_eq!(local_date(elsewhere, &tz), expected, "{elsewhere} in {name}");
        }
    }

    #[test]
    fn a_day_ends_at_the_next_local_midnight_daylight_saving_included() {
        // (zone, instant, seconds until the next local day).
        let cases = [
            ("Africa/Nairobi", datetime!(2026-11-30 20:59:59 UTC), 1),
            ("Africa/Nairobi", datetime!(2026-11-30 21:00:00 UTC), 86_400),
            ("Africa/Nairobi", datetime!(2026-11-30 09:00:00 UTC), 12 * 3600),
            ("Pacific/Kiritimati", datetime!(2026-11-30 09:59:59 UTC), 1),
            ("Pacific/Honolulu", datetime!(2026-12-01 09:00:00 UTC), 3600),
            ("UTC", datetime!(2026-11-30 23:59:59 UTC), 1),
            // Berlin springs forward on 29 March 2026: that day has 23 hours.
            ("Europe/Berlin", datetime!(2026-03-28 23:00:00 UTC), 23 * 3600),
            // And falls back on 25 October 2026: that day has 25.
            ("Europe/Berlin", datetime!(2026-10-24 22:00:00 UTC), 25 * 3600),
        ];
        for (name, at, seconds) in cases {
            let tz = zone(name).unwrap();
            assert_eq!(left_of_day(at, &tz), std::time::Duration::from_secs(seconds), "{at} in {name}");
            assert_eq!(left_of_day_in(at, name), std::time::Duration::from_secs(seconds), "{at} in {name}");
        }
    }

    #[test]
    fn kiritimati_is_always_a_day_ahead_of_honolulu() {
        let (east, west) = (zone("Pacific/Kiritimati").unwrap(), zone("Pacific/Honolulu").unwrap());
        let mut at = datetime!(2026-11-29 00:00:00 UTC);
        while at < datetime!(2026-12-03 00:00:00 UTC) {
            let (e, w) = (local_date(at, &east), local_date(at, &west));
            assert_eq!(w.next_day(), Some(e), "{at}");
            at += time::Duration::minutes(17);
        }
    }

    #[test]
    fn only_iana_names_are_zones() {
        for good in ["UTC", "Africa/Nairobi", "Pacific/Kiritimati", "America/Argentina/Buenos_Aires"] {
            assert!(is_zone(good), "{good}");
        }
        for bad in ["", "nairobi", "Mars/Olympus", "UTC+3 ", "../etc/passwd"] {
            assert!(!is_zone(bad), "{bad}");
        }
    }
}
