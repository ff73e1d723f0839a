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

/// The most consecutive runs a threshold may ask for.
const MAX_THRESHOLD: u32 = 100;

/// What a check or flow writes of `run_at_start` and its thresholds.
pub(in crate::config) struct OwnPolicy<'a> {
    pub run_at_start: Option<bool>,
    pub failure_threshold: Option<&'a Spanned<u32>>,
    pub success_threshold: Option<&'a Spanned<u32>>,
}

/// `run_at_start` (default true) and the thresholds (default 1 and 1),
/// each from the check or flow, else `[defaults]`.
pub(in crate::config) fn policy(
    ctx: &Ctx<'_>,
    field: &str,
    own: OwnPolicy<'_>,
    defaults: &RawDefaults,
) -> Result<(bool, Thresholds), ConfigError> {
    let threshold = |own: Option<&Spanned<u32>>, default: Option<&Spanned<u32>>, key: &str| {
        let (value, place) = match (own, default) {
            (Some(v), _) => (v, format!("{field}.{key}")),
            (None, Some(v)) => (v, format!("defaults.{key}")),
            (None, None) => return Ok(1),
        };
        if (1..=MAX_THRESHOLD).contains(value.get_ref()) {
            Ok(*value.get_ref())
        } else {
            Err(ctx.err(
                value.span(),
                place,
                format!("must be 1 to {MAX_THRESHOLD} consecutive runs"),
            ))
        }
    };
    Ok((
        own.run_at_start.or(defaults.run_at_start).unwrap_or(true),
        Thresholds {
            failure: threshold(
                own.failure_threshold,
                defaults.failure_threshold.as_ref(),
                "failure_threshold",
            )?,
            success: threshold(
                own.success_threshold,
                defaults.success_threshold.as_ref(),
                "success_threshold",
            )?,
        },
    ))
}
