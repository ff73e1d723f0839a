//! When a check or flow runs: `schedule` or `interval`, and `timezone`.

use super::*;

/// The schedule settings a check or flow writes itself.
pub(in crate::config) struct OwnSchedule<'a> {
    pub schedule: Option<&'a Spanned<super::raw::CronText>>,
    pub interval: Option<&'a Spanned<super::raw::HumanDuration>>,
    pub timezone: Option<&'a Spanned<String>>,
    /// Where to point when the default interval is the problem.
    pub name_span: Range<usize>,
}

pub(in crate::config) fn schedule(
    ctx: &Ctx<'_>,
    field: &str,
    raw: OwnSchedule<'_>,
    defaults: &RawDefaults,
) -> Result<Schedule, ConfigError> {
    if let (Some(_), Some(interval)) = (raw.schedule, raw.interval) {
        return Err(ctx.err(
            interval.span(),
            format!("{field}.interval"),
            "set either schedule (cron) or interval, not both",
        ));
    }
    if let (Some(_), Some(interval)) = (&defaults.schedule, &defaults.interval) {
        return Err(ctx.err(
            interval.span(),
            "defaults.interval",
            "set either schedule (cron) or interval, not both",
        ));
    }
    let tz_field = if raw.timezone.is_some() {
        format!("{field}.timezone")
    } else {
        "defaults.timezone".to_owned()
    };
    let tz = match raw.timezone.or(defaults.timezone.as_ref()) {
        None => chrono_tz::UTC,
        Some(tz) => tz.get_ref().parse::<chrono_tz::Tz>().map_err(|_| {
            ctx.err(
                tz.span(),
                tz_field,
                format!(
                    "unknown time zone {:?} (use an IANA name such as \"Europe/Berlin\")",
                    tz.get_ref()
                ),
            )
        })?,
    };
    // The check's own setting wins over either kind of default.
    let cron = raw.schedule.map(|c| c.get_ref().0.clone());
    let every = raw.interval.map(|i| i.get_ref().0);
    let every_min = Duration::from_millis(10);
    let pick = match (cron, every) {
        (Some(spec), _) => Ok(spec),
        (None, Some(every)) => Err(every),
        (None, None) => match (&defaults.schedule, &defaults.interval) {
            (Some(c), _) => Ok(c.get_ref().0.clone()),
            (None, Some(i)) => Err(i.get_ref().0),
            (None, None) => Err(DEFAULT_INTERVAL),
        },
    };
    match pick {
        Ok(spec) => Ok(Schedule::Cron { spec, tz }),
        Err(every) if every < every_min => {
            let (span, where_) = match (raw.interval, &defaults.interval) {
                (Some(i), _) => (i.span(), format!("{field}.interval")),
                (None, Some(i)) => (i.span(), "defaults.interval".to_owned()),
                (None, None) => (raw.name_span, format!("{field}.interval")),
            };
            Err(ctx.err(span, where_, "an interval must be at least 10ms"))
        }
        // The real phase is set per expanded check in `build_one`.
        Err(every) => Ok(Schedule::Interval {
            every,
            phase: Duration::ZERO,
        }),
    }
}
