//! When a list's digest goes out by itself: `"mon 08:00"` (weekly),
//! `"daily 07:30"`, or a cron expression, in an IANA time zone. Cron is the
//! `cron` crate's; time zones and their DST rules are `chrono-tz`'s.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone)]
pub struct Schedule {
    spec: String,
    cron: cron::Schedule,
    timezone: Tz,
}

impl Schedule {
    /// `spec` in `timezone` (an IANA name such as `America/New_York`;
    /// `None`: UTC). An error says what is wrong.
    pub fn parse(spec: &str, timezone: Option<&str>) -> Result<Self, String> {
        let timezone = match timezone {
            Some(name) => Tz::from_str(name.trim())
                .map_err(|_| format!("{name:?} is not an IANA time zone such as Europe/Berlin or America/New_York"))?,
            None => Tz::UTC,
        };
        let expression = cron_of(spec.trim())?;
        let cron = cron::Schedule::from_str(&expression).map_err(|e| {
            format!("{spec:?} is not \"mon 08:00\", \"daily 07:30\" or a cron expression like \"0 8 * * 1\": {e}")
        })?;
        Ok(Self { spec: spec.trim().to_owned(), cron, timezone })
    }

    pub fn spec(&self) -> &str {
        &self.spec
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The latest slot at or before `now` and less than `grace` old: the one
    /// to send if nobody sent it yet. Never more than one.
    pub fn due(&self, now: DateTime<Utc>, grace: chrono::Duration) -> Option<DateTime<Utc>> {
        let from = (now - grace).with_timezone(&self.timezone);
        self.cron.after(&from).map(|t| t.with_timezone(&Utc)).take_while(|t| *t <= now).last()
    }

    /// The next `n` slots after `now`.
    pub fn upcoming(&self, now: DateTime<Utc>, n: usize) -> Vec<DateTime<Tz>> {
        self.cron.after(&now.with_timezone(&self.timezone)).take(n).collect()
    }
}

/// The `cron` crate's expression (seconds first) for our shorthands and for
/// standard five-field cron.
fn cron_of(spec: &str) -> Result<String, String> {
    let words: Vec<&str> = spec.split_whitespace().collect();
    let at = |time: &str| -> Result<(u32, u32), String> {
        let (h, m) = time.split_once(':').ok_or_else(|| format!("{time:?} is not a time like 08:00"))?;
        match (h.parse::<u32>(), m.parse::<u32>()) {
            (Ok(h), Ok(m)) if h < 24 && m < 60 => Ok((h, m)),
            _ => Err(format!("{time:?} is not a time like 08:00")),
        }
    };
    let day = |word: &str| -> Option<&'static str> {
        let w = word.to_ascii_lowercase();
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .into_iter()
            .zip(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
            .find(|(short, _)| w.starts_with(short))
            .map(|(_, cron)| cron)
    };
    match words.as_slice() {
        [d, time] if d.eq_ignore_ascii_case("daily") => at(time).map(|(h, m)| format!("0 {m} {h} * * *")),
        [d, time] if day(d).is_some() && !d.contains(['*', '/', ',']) => {
            let (h, m) = at(time)?;
            Ok(format!("0 {m} {h} * * {}", day(d).unwrap_or("Mon")))
        }
        // Standard cron has no seconds field, and counts weekdays from
        // Sunday = 0 (or 7); the `cron` crate from Sunday = 1: names mean
        // the same to both.
        [minute, hour, dom, month, dow] => Ok(format!("0 {minute} {hour} {dom} {month} {}", weekday_names(dow))),
        fields if fields.len() == 6 || fields.len() == 7 => Ok(spec.to_owned()),
        _ => Err(format!("{spec:?} is not \"mon 08:00\", \"daily 07:30\" or a cron expression like \"0 8 * * 1\"")),
    }
}

/// A standard cron day-of-week field with its numbers as names (`1-5` →
/// `Mon-Fri`); steps after `/` stay numbers.
fn weekday_names(field: &str) -> String {
    const NAMES: [&str; 8] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let mut out = String::with_capacity(field.len() * 2);
    let mut digits = String::new();
    let mut after_slash = false;
    let flush = |digits: &mut String, out: &mut String, after_slash: bool| {
        if digits.is_empty() {
            return;
        }
        match digits.parse::<usize>().ok().and_then(|n| NAMES.get(n)) {
            Some(name) if !after_slash => out.push_str(name),
            _ => out.push_str(digits),
        }
        digits.clear();
    };
    for c in field.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        flush(&mut digits, &mut out, after_slash);
        after_slash = c == '/';
        out.push(c);
    }
    flush(&mut digits, &mut out, after_slash);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn shorthands_cron_and_time_zones() {
        let weekly = Schedule::parse("mon 08:00", Some("America/New_York")).unwrap();
        // Monday 7 Dec 2026, 08:00 in New York is 13:00 UTC (EST).
        assert_eq!(weekly.upcoming(utc("2026-12-03T00:00:00Z"), 1)[0].with_timezone(&Utc), utc("2026-12-07T13:00:00Z"));
        // After the clocks change (8 Mar 2027), 08:00 is 12:00 UTC (EDT).
        assert_eq!(weekly.upcoming(utc("2027-03-09T00:00:00Z"), 1)[0].with_timezone(&Utc), utc("2027-03-15T12:00:00Z"));
        let daily = Schedule::parse("daily 07:30", None).unwrap();
        assert_eq!(daily.upcoming(utc("2026-12-03T08:00:00Z"), 1)[0].with_timezone(&Utc), utc("2026-12-04T07:30:00Z"));
        let cron = Schedule::parse("30 6 * * 1-5", Some("Europe/Berlin")).unwrap();
        assert_eq!(cron.upcoming(utc("2026-12-05T00:00:00Z"), 1)[0].with_timezone(&Utc), utc("2026-12-07T05:30:00Z"));
        let sunday = Schedule::parse("0 9 * * 0", None).unwrap();
        assert_eq!(sunday.upcoming(utc("2026-12-03T00:00:00Z"), 1)[0].with_timezone(&Utc), utc("2026-12-06T09:00:00Z"));
        assert_eq!(weekday_names("1-5"), "Mon-Fri");
        assert_eq!(weekday_names("*/2"), "*/2");
        assert_eq!(weekday_names("0,6"), "Sun,Sat");
        for bad in ["mon 25:00", "weekly", "daily", "0 8 * *", "every day"] {
            assert!(Schedule::parse(bad, None).is_err(), "{bad}");
        }
        assert!(Schedule::parse("daily 07:30", Some("Mars/Olympus")).unwrap_err().contains("IANA"));
    }

    #[test]
    fn a_missed_slot_is_due_once_within_its_grace() {
        let daily = Schedule::parse("daily 07:30", None).unwrap();
        let grace = chrono::Duration::hours(6);
        assert_eq!(daily.due(utc("2026-12-03T07:30:00Z"), grace), Some(utc("2026-12-03T07:30:00Z")));
        assert_eq!(daily.due(utc("2026-12-03T13:29:00Z"), grace), Some(utc("2026-12-03T07:30:00Z")));
        assert_eq!(daily.due(utc("2026-12-03T13:31:00Z"), grace), None, "too old");
        assert_eq!(daily.due(utc("2026-12-03T07:29:00Z"), grace), None, "yesterday's is too old, today's not yet");
        let every_minute = Schedule::parse("* * * * *", None).unwrap();
        assert_eq!(
            every_minute.due(utc("2026-12-03T10:00:30Z"), grace),
            Some(utc("2026-12-03T10:00:00Z")),
            "only the latest"
        );
    }
}
