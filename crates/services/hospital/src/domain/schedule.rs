//! Working hours and time zones: when a practitioner works, when a hospital is open, and which
//! slots of a day are free.
//!
//! Instants are Unix seconds (UTC); working hours are local times in the hospital's time zone,
//! converted with the bundled zone database, so a clinic's 08:00 stays 08:00 across DST.

use std::fmt;
use std::str::FromStr;

use jiff::tz::TimeZone;
use medcov_domain::FieldError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    fn from_jiff(day: jiff::civil::Weekday) -> Weekday {
        const DAYS: [Weekday; 7] = [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
            Weekday::Saturday,
            Weekday::Sunday,
        ];
        DAYS[usize::try_from(day.to_monday_zero_offset()).unwrap_or(0)]
    }
}

/// A local time of day, `HH:MM`, in minutes after midnight (`24:00` ends a day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, utoipa::ToSchema)]
#[schema(value_type = String, example = "08:30")]
pub struct LocalTime(pub u16);

impl FromStr for LocalTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a time of day: expected HH:MM, such as 08:30");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(LocalTime(h * 60 + m))
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for LocalTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// One stretch of work on one weekday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkingHours {
    pub weekday: Weekday,
    pub start: LocalTime,
    pub end: LocalTime,
}

/// Checks a practitioner's week of working hours: each stretch starts before it ends and none
/// overlap.
pub fn check_hours(hours: &[WorkingHours]) -> Vec<FieldError> {
    check_week("working_hours", hours)
}

/// Checks a week of hours named `field` (working or opening hours).
pub fn check_week(field: &str, hours: &[WorkingHours]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, h) in hours.iter().enumerate() {
        if h.start >= h.end {
            errors.push(FieldError::new(format!("{field}[{i}]"), "must start before it ends"));
        }
        if hours[..i].iter().any(|o| o.weekday == h.weekday && o.start < h.end && h.start < o.end) {
            errors.push(FieldError::new(format!("{field}[{i}]"), "overlaps another stretch on the same day"));
        }
    }
    errors
}

/// Whether a hospital with `opening` hours is open for all of `[start, end)`. No opening hours
/// means open around the clock.
pub fn open_for(opening: &[WorkingHours], tz: &TimeZone, start: i64, end: i64) -> bool {
    opening.is_empty() || within_hours(opening, tz, start, end)
}

/// A hospital's zone, from its IANA name.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| format!("`{name}` is not a known IANA time zone"))
}

/// Local date, weekday and minute of day of an instant.
pub fn local(tz: &TimeZone, at: i64) -> Option<(time::Date, Weekday, u16)> {
    let zoned = jiff::Timestamp::from_second(at).ok()?.to_zoned_datetime(tz.clone());
    let d = zoned.date();
    let date = time::Date::from_calendar_date(
        i32::from(d.year()),
        time::Month::try_from(u8::try_from(d.month()).ok()?).ok()?,
        u8::try_from(d.day()).ok()?,
    )
    .ok()?;
    let minutes = u16::try_from(zoned.time().hour()).ok()? * 60 + u16::try_from(zoned.time().minute()).ok()?;
    Some((date, Weekday::from_jiff(zoned.weekday()), minutes))
}

/// The instants a local date starts and ends (23 or 25 hours on DST days).
pub fn day_bounds(tz: &TimeZone, date: time::Date) -> Option<(i64, i64)> {
    let start = |d: time::Date| -> Option<i64> {
        let civil = jiff::civil::Date::new(
            i16::try_from(d.year()).ok()?,
            i8::try_from(u8::from(d.month())).ok()?,
            i8::try_from(d.day()).ok()?,
        )
        .ok()?;
        Some(civil.to_zoned_datetime(tz.clone()).ok()?.start_of_day().ok()?.timestamp().as_second())
    };
    Some((start(date)?, start(date.next_day()?)?))
}

/// Whether `[start, end)` lies inside one stretch of working hours on one local day.
pub fn within_hours(hours: &[WorkingHours], tz: &TimeZone, start: i64, end: i64) -> bool {
    let (Some((day, weekday, from)), Some((end_day, _, to))) = (local(tz, start), local(tz, end)) else {
        return false;
    };
    // An appointment ending exactly at midnight ends at 24:00 of its own day.
    let to = if end_day != day && to == 0 && end_day == day.next_day().unwrap_or(end_day) { 24 * 60 } else { to };
    if end_day != day && to != 24 * 60 {
        return false;
    }
    hours.iter().any(|h| h.weekday == weekday && h.start.0 <= from && to <= h.end.0)
}

/// Free slots of `duration` minutes on a local date, on a 15-minute grid inside working hours,
/// that overlap none of `busy`.
pub fn free_slots(
    hours: &[WorkingHours],
    tz: &TimeZone,
    date: time::Date,
    duration_minutes: u16,
    busy: &[(i64, i64)],
) -> Vec<(i64, i64)> {
    const GRID: i64 = 15 * 60;
    let Some((day_start, day_end)) = day_bounds(tz, date) else { return Vec::new() };
    let length = i64::from(duration_minutes) * 60;
    let mut slots = Vec::new();
    let mut at = day_start;
    while at + length <= day_end {
        let end = at + length;
        let free = !busy.iter().any(|(s, e)| *s < end && at < *e);
        if free && within_hours(hours, tz, at, end) {
            slots.push((at, end));
        }
        at += GRID;
    }
    slots
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn week() -> Vec<WorkingHours> {
        vec![
            WorkingHours { weekday: Weekday::Monday, start: "08:00".parse().unwrap(), end: "12:00".parse().unwrap() },
            WorkingHours { weekday: Weekday::Monday, start: "13:00".parse().unwrap(), end: "17:00".parse().unwrap() },
        ]
    }

    /// 2026-11-23 is a Monday; Nairobi is UTC+3 all year.
    fn at(hour: i64, minute: i64) -> i64 {
        let midnight_utc = date!(2026 - 11 - 23).midnight().assume_utc().unix_timestamp();
        midnight_utc + (hour - 3) * 3600 + minute * 60
    }

    #[test]
    fn local_times_parse_and_print() {
        assert_eq!("08:30".parse::<LocalTime>().unwrap(), LocalTime(510));
        assert_eq!(LocalTime(510).to_string(), "08:30");
        assert!("24:00".parse::<LocalTime>().is_ok());
        for bad in ["8:30", "24:01", "12:60", "noon"] {
            assert!(bad.parse::<LocalTime>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bookings_must_fit_working_hours_in_local_time() {
        let tz = zone("Africa/Nairobi").unwrap();
        let table = [
            (at(8, 0), at(8, 30), true),
            (at(11, 30), at(12, 0), true),
            (at(11, 45), at(12, 15), false),
            (at(7, 45), at(8, 15), false),
            (at(12, 30), at(13, 0), false),
            (at(16, 30), at(17, 0), true),
            (at(8, 0) + 86_400, at(8, 30) + 86_400, false),
        ];
        for (start, end, ok) in table {
            assert_eq!(within_hours(&week(), &tz, start, end), ok, "{start}..{end}");
        }
        assert!(zone("Mars/Olympus").is_err());
    }

    #[test]
    fn opening_hours_bound_appointments_and_none_means_always_open() {
        let tz = zone("Africa/Nairobi").unwrap();
        let opening = [WorkingHours { weekday: Weekday::Monday, start: LocalTime(8 * 60), end: LocalTime(18 * 60) }];
        // Monday 2026-11-30, 09:00 and 17:45 Nairobi (UTC+3).
        let nine = time::macros::datetime!(2026-11-30 06:00 UTC).unix_timestamp();
        let quarter_to_six = time::macros::datetime!(2026-11-30 14:45 UTC).unix_timestamp();
        assert!(open_for(&opening, &tz, nine, nine + 1800));
        assert!(!open_for(&opening, &tz, quarter_to_six, quarter_to_six + 1800), "runs past closing");
        assert!(!open_for(&opening, &tz, nine + 86_400, nine + 86_400 + 1800), "closed on Tuesdays");
        assert!(open_for(&[], &tz, quarter_to_six, quarter_to_six + 1800));
        let overlapping =
            [opening[0], WorkingHours { weekday: Weekday::Monday, start: LocalTime(17 * 60), end: LocalTime(20 * 60) }];
        let fields: Vec<String> = check_week("opening_hours", &overlapping).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["opening_hours[1]"]);
    }

    #[test]
    fn free_slots_skip_busy_times_and_breaks() {
        let tz = zone("Africa/Nairobi").unwrap();
        let busy = [(at(8, 30), at(9, 0))];
        let slots = free_slots(&week(), &tz, date!(2026 - 11 - 23), 30, &busy);
        assert_eq!(slots.first(), Some(&(at(8, 0), at(8, 30))));
        assert!(!slots.iter().any(|(s, e)| *s < at(9, 0) && at(8, 30) < *e), "busy time offered");
        assert!(!slots.iter().any(|(s, _)| *s >= at(12, 0) && *s < at(13, 0)), "lunch offered");
        // 8:00-12:00 has 15 half-hour starts on the quarter hour (8:00 to 11:30), less the three
        // that overlap 8:30-9:00 (8:15, 8:30, 8:45); 13:00-17:00 has 15.
        assert_eq!(slots.len(), 12 + 15);
        assert!(free_slots(&week(), &tz, date!(2026 - 11 - 24), 30, &[]).is_empty(), "no hours on Tuesday");
    }

    #[test]
    fn a_dst_day_keeps_local_hours() {
        // Berlin moves to summer time on 2026-03-29 (a Sunday): the day is 23 hours long.
        let tz = zone("Europe/Berlin").unwrap();
        let (start, end) = day_bounds(&tz, date!(2026 - 03 - 29)).unwrap();
        assert_eq!(end - start, 23 * 3600);
        let sunday =
            [WorkingHours { weekday: Weekday::Sunday, start: "09:00".parse().unwrap(), end: "10:00".parse().unwrap() }];
        let slots = free_slots(&sunday, &tz, date!(2026 - 03 - 29), 60, &[]);
        assert_eq!(slots.len(), 1);
        assert_eq!(local(&tz, slots[0].0).unwrap().2, 9 * 60);
    }

    #[test]
    fn overlapping_hours_are_refused() {
        let mut hours = week();
        hours.push(WorkingHours {
            weekday: Weekday::Monday,
            start: "11:00".parse().unwrap(),
            end: "14:00".parse().unwrap(),
        });
        hours.push(WorkingHours {
            weekday: Weekday::Friday,
            start: "10:00".parse().unwrap(),
            end: "09:00".parse().unwrap(),
        });
        let fields: Vec<String> = check_hours(&hours).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["working_hours[2]", "working_hours[3]"]);
    }
}
