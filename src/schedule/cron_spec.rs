//! Cron expressions with crontab meaning.
//!
//! The `cron` crate takes 6 or 7 fields (seconds first) and numbers the days
//! of the week 1 = Sunday … 7 = Saturday. SREs write crontab, where 0 and 7
//! are Sunday and 1 is Monday: `1-5` means weekdays. So we accept 5-field
//! crontab (second 0 is put in front) and rewrite a numeric day-of-week field
//! into day names, which both dialects read the same way.
//!
//! When both day-of-month and day-of-week are restricted, crontab runs on
//! days that match *either* (`0 9 1 * MON` is the 1st and every Monday); the
//! `cron` crate requires both. We keep crontab's meaning by parsing such an
//! expression twice, once with each day field opened up, and taking whichever
//! schedule fires first. As in Vixie cron, a field that starts with `*`
//! (including `*/2`) counts as unrestricted.

use std::fmt;
use std::str::FromStr;

use chrono::DateTime;

#[derive(Clone)]
pub struct CronSpec {
    /// As the user wrote it, for display.
    pub text: String,
    /// One schedule, or two whose union is the crontab meaning (see the
    /// module comment). Shared: every check expanded from one matrix clones it.
    schedules: std::sync::Arc<[cron::Schedule]>,
}

impl fmt::Debug for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSpec({:?})", self.text)
    }
}

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl CronSpec {
    pub fn parse(text: &str) -> Result<CronSpec, String> {
        let trimmed = text.trim();
        let normalized = if trimmed.starts_with('@') {
            vec![trimmed.to_owned()]
        } else {
            let mut fields: Vec<String> = trimmed.split_whitespace().map(str::to_owned).collect();
            match fields.len() {
                5 => fields.insert(0, "0".to_owned()),
                6 | 7 => {}
                n => {
                    return Err(format!(
                        "invalid cron expression {text:?}: expected 5 fields (crontab) or 6-7 fields \
                         with seconds first, found {n}"
                    ));
                }
            }
            fields[5] = crontab_day_of_week(&fields[5])
                .map_err(|e| format!("invalid cron expression {text:?}: day of week: {e}"))?;
            let restricted = |f: &str| !(f.starts_with('*') || f == "?");
            if restricted(&fields[3]) && restricted(&fields[5]) {
                let mut by_month_day = fields.clone();
                by_month_day[5] = "*".to_owned();
                let mut by_week_day = fields;
                by_week_day[3] = "*".to_owned();
                vec![by_month_day.join(" "), by_week_day.join(" ")]
            } else {
                vec![fields.join(" ")]
            }
        };
        let schedules = normalized
            .iter()
            .map(|n| cron::Schedule::from_str(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("invalid cron expression {text:?}: {e}"))?;
        let spec = CronSpec {
            text: trimmed.to_owned(),
            schedules: schedules.into(),
        };
        if spec.after(&chrono::Utc::now()).next().is_none() {
            return Err(format!("cron expression {text:?} never fires"));
        }
        Ok(spec)
    }

    /// The times the expression fires strictly after `t`, in order.
    pub fn after<'a, Z: chrono::TimeZone + 'a>(
        &'a self,
        t: &DateTime<Z>,
    ) -> impl Iterator<Item = DateTime<Z>> + 'a {
        let mut streams: Vec<_> = self
            .schedules
            .iter()
            .map(|s| s.after(t).peekable())
            .collect();
        // A merge of sorted streams that yields each instant once.
        std::iter::from_fn(move || {
            let next = streams.iter_mut().filter_map(|s| s.peek().cloned()).min()?;
            for s in &mut streams {
                if s.peek() == Some(&next) {
                    s.next();
                }
            }
            Some(next)
        })
    }
}

/// Rewrites a crontab day-of-week field (0-7, names, ranges, steps, lists)
/// as a list of day names. `*` and `?` are left alone.
fn crontab_day_of_week(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_owned());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("step {s:?} is not a number"))?;
                if step == 0 {
                    return Err("step must be at least 1".to_owned());
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (first, last) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            (day_number(a)?, day_number(b)?)
        } else {
            let d = day_number(range)?;
            // `5/2` in crontab means "from 5 to the end, every 2".
            if item.contains('/') { (d, 6) } else { (d, d) }
        };
        // 7 stays 7 here so that `5-7` is Friday to Sunday; `% 7` folds it.
        if first > last {
            return Err(format!("range {range:?} runs backwards"));
        }
        let mut day = first;
        while day <= last {
            days[(day % 7) as usize] = true;
            day += step;
        }
    }
    let names: Vec<&str> = (0..7).filter(|&d| days[d]).map(|d| DAY_NAMES[d]).collect();
    Ok(names.join(","))
}

/// Crontab numbering: 0 and 7 are Sunday. Names are accepted in any case.
fn day_number(text: &str) -> Result<u32, String> {
    if let Ok(n) = text.parse::<u32>() {
        return match n {
            0..=7 => Ok(n),
            _ => Err(format!("{n} is not a day (0-7, 0 and 7 are Sunday)")),
        };
    }
    let upper = text.to_ascii_uppercase();
    DAY_NAMES
        .iter()
        .position(|name| upper.starts_with(name) && upper.len() >= 3)
        .map(|p| p as u32)
        .ok_or_else(|| format!("{text:?} is not a day (0-7 or SUN-SAT)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Utc, Weekday};

    fn weekdays_fired(expr: &str) -> Vec<Weekday> {
        let spec = CronSpec::parse(expr).unwrap();
        // 2026-11-22 is a Sunday; look at one week.
        let start = Utc.with_ymd_and_hms(2026, 11, 21, 23, 0, 0).unwrap();
        let mut days: Vec<Weekday> = spec
            .after(&start)
            .take_while(|t| *t < start + chrono::Duration::days(7))
            .map(|t| t.weekday())
            .collect();
        days.dedup();
        days
    }

    #[test]
    fn crontab_one_is_monday() {
        assert_eq!(weekdays_fired("0 9 * * 1"), vec![Weekday::Mon]);
        assert_eq!(weekdays_fired("0 0 9 * * 1"), vec![Weekday::Mon]);
    }

    #[test]
    fn day_of_week_table() {
        use Weekday::*;
        let cases: &[(&str, &[Weekday])] = &[
            ("0 9 * * 1-5", &[Mon, Tue, Wed, Thu, Fri]),
            ("0 9 * * 0", &[Sun]),
            ("0 9 * * 7", &[Sun]),
            ("0 9 * * 5-7", &[Sun, Fri, Sat]),
            ("0 9 * * 6,0", &[Sun, Sat]),
            ("0 9 * * 0-7", &[Sun, Mon, Tue, Wed, Thu, Fri, Sat]),
            ("0 9 * * */2", &[Sun, Tue, Thu, Sat]),
            ("0 9 * * 1-5/2", &[Mon, Wed, Fri]),
            ("0 9 * * MON-FRI", &[Mon, Tue, Wed, Thu, Fri]),
            ("0 9 * * sat", &[Sat]),
        ];
        for (expr, want) in cases {
            assert_eq!(&weekdays_fired(expr), want, "{expr}");
        }
    }

    #[test]
    fn restricted_day_of_month_and_week_means_either() {
        let spec = CronSpec::parse("0 9 1,15 * MON").unwrap();
        let start = Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap();
        let days: Vec<String> = spec
            .after(&start)
            .take(6)
            .map(|t| t.format("%m-%d %a").to_string())
            .collect();
        // Mondays, plus the 1st and 15th whatever weekday they fall on.
        assert_eq!(
            days,
            [
                "12-01 Tue",
                "12-07 Mon",
                "12-14 Mon",
                "12-15 Tue",
                "12-21 Mon",
                "12-28 Mon"
            ]
        );
        // A starred day of month keeps the plain meaning: only Mondays.
        let spec = CronSpec::parse("0 9 */1 * 1").unwrap();
        assert!(
            spec.after(&start)
                .take(5)
                .all(|t| t.weekday() == Weekday::Mon)
        );
        // The same instant from both halves is one tick: Monday 2027-03-01.
        let spec = CronSpec::parse("0 9 1 * MON").unwrap();
        let from = Utc.with_ymd_and_hms(2027, 2, 28, 0, 0, 0).unwrap();
        let ticks: Vec<_> = spec.after(&from).take(2).collect();
        assert_eq!(ticks[0], Utc.with_ymd_and_hms(2027, 3, 1, 9, 0, 0).unwrap());
        assert_eq!(ticks[1], Utc.with_ymd_and_hms(2027, 3, 8, 9, 0, 0).unwrap());
    }

    #[test]
    fn rejects_bad_expressions_with_the_reason() {
        for (expr, needle) in [
            ("* * *", "expected 5 fields"),
            ("0 9 * * 8", "not a day"),
            ("0 9 * * 5-2", "backwards"),
            ("0 61 * * *", "invalid cron expression"),
            ("0 9 * * 1/0", "at least 1"),
        ] {
            let err = CronSpec::parse(expr).unwrap_err();
            assert!(err.contains(needle), "{expr}: {err}");
        }
    }

    #[test]
    fn accepts_six_fields_and_macros() {
        assert!(CronSpec::parse("*/30 * * * * *").is_ok());
        assert!(CronSpec::parse("@hourly").is_ok());
    }
}
