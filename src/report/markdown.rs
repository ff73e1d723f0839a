//! A [`Report`] as Markdown, in the shape of the hand-written test reports
//! it replaces: title, executive summary, scores by group, what changed,
//! then every check by group and every flow stage by stage.
//!
//! Everything in the report is already redacted. What is escaped here is
//! Markdown: a reason or a name can hold `|`, a newline, `<`, backticks or
//! emphasis characters, and none of them may break a table or inject HTML.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::serve::grid::Verdict as _;

use super::{
    AuthEntry, Brief, Change, CheckEntry, Comparison, FlowEntry, GroupDelta, Health, Kind, Report,
    ScoreDelta, StepEntry, StepState, percent,
};

/// At most this many failures are listed in the executive summary; the
/// sections below list them all.
const MAX_FINDINGS: usize = 15;

/// Renders the whole report, ending in a newline.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    header(&mut out, report);
    summary(&mut out, report);
    groups(&mut out, report);
    locations(&mut out, report);
    if let Some(c) = &report.comparison {
        changes(&mut out, c);
    }
    grids(&mut out, report);
    checks(&mut out, report);
    flows(&mut out, report);
    out
}

/// Each matrix or routes entry as a table, the way the hand-written
/// reports draw "service × key": rows and columns are its values.
fn grids(out: &mut String, report: &Report) {
    if report.grids.is_empty() {
        return;
    }
    out.push_str(
        "## Grids

",
    );
    for g in &report.grids {
        let passing = g.rows.iter().flat_map(|r| &r.cells).flatten();
        let (ok, all) = passing.fold((0, 0), |(ok, all), c| (ok + usize::from(c.ok), all + 1));
        let _ = writeln!(
            out,
            "### {} ({}): {ok}/{all} passed{}\n",
            text(&g.title),
            text(&g.group),
            if g.routes { ", routes compared" } else { "" }
        );
        let heading = g.rows_heading();
        let _ = write!(
            out,
            "| {} |",
            text(if heading.is_empty() {
                "check"
            } else {
                &heading
            })
        );
        for c in &g.columns {
            let _ = write!(out, " {} |", text(if c.is_empty() { "result" } else { c }));
        }
        out.push_str(if g.routes { " diagnosis |\n|" } else { "\n|" });
        for _ in 0..=g.columns.len() + usize::from(g.routes) {
            out.push_str(" --- |");
        }
        out.push('\n');
        for row in &g.rows {
            let label = if row.label.is_empty() {
                &g.title
            } else {
                &row.label
            };
            let _ = write!(out, "| {} |", code(label, true));
            for cell in &row.cells {
                let shown = match cell {
                    Some(c) if c.ok => format!("✅ {}", text(&c.shown())),
                    Some(c) => format!("❌ {}", text(&c.shown())),
                    None => "–".to_owned(),
                };
                let _ = write!(out, " {shown} |");
            }
            if g.routes {
                let _ = write!(out, " {} |", text(row.diagnosis.as_deref().unwrap_or("")));
            }
            out.push('\n');
        }
        out.push('\n');
    }
}

/// A global report's scores by location; nothing for one instance's.
fn locations(out: &mut String, report: &Report) {
    if report.locations.is_empty() {
        return;
    }
    out.push_str("## Scores by location\n\n| location | passing/total | score | |\n| --- | ---: | ---: | --- |\n");
    for l in &report.locations {
        let _ = writeln!(
            out,
            "| {} | {}/{} | {} | {} |",
            text(if l.name.is_empty() { "–" } else { &l.name }),
            l.score.passing,
            l.score.total,
            l.score.percent(),
            if l.down {
                "down: every check fails from here while others pass"
            } else {
                ""
            }
        );
    }
    out.push('\n');
}

fn header(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "# lookout report: {}\n",
        report.overall.status.as_upper()
    );
    let _ = writeln!(out, "**Generated**: {}  ", time(report.generated_at));
    let _ = write!(out, "**Config**: {}", code(&report.config, false));
    if let Some(c) = &report.comparison {
        let _ = write!(
            out,
            "  \n**Compared with**: the report of {} ({})",
            time(c.previous_generated_at),
            code(&c.previous_config, false)
        );
    }
    out.push_str("\n\n");
}

fn summary(out: &mut String, report: &Report) {
    let o = &report.overall;
    out.push_str("## Executive summary\n\n");
    let headline = match o.status {
        Health::Healthy => format!("✅ **HEALTHY**: all {} checks passed.", o.total),
        Health::Degraded => format!(
            "⚠️ **DEGRADED**: {} of {} checks passed, {} failed.",
            o.passing, o.total, o.failing
        ),
        Health::Down => format!(
            "❌ **DOWN**: {} of {} checks passed, {} failed.",
            o.passing, o.total, o.failing
        ),
        Health::Empty => "**EMPTY**: the config has no checks or flows to run.".to_owned(),
    };
    let _ = writeln!(out, "{headline}\n");
    let _ = write!(
        out,
        "- **Overall health score**: {} ({}/{} checks)",
        o.percent(),
        o.passing,
        o.total
    );
    if let Some(c) = &report.comparison {
        let _ = write!(out, ", {}", delta_text(&c.overall));
    }
    out.push('\n');
    for f in &report.flows {
        let since = report.comparison.as_ref().map_or_else(String::new, |c| {
            match flow_before(c, &f.name) {
                Before::New => ", new".to_owned(),
                Before::Was(b) if b.steps_passed == Some(f.steps_passed) => {
                    ", unchanged".to_owned()
                }
                Before::Was(b) => format!(", was {}", b.short()),
                Before::Passing => ", unchanged".to_owned(),
            }
        });
        let _ = writeln!(
            out,
            "- **Flow** {} ({}): {}{}",
            code(&f.name, false),
            text(&f.group),
            stages(f),
            text(&since)
        );
    }
    if let Some(c) = &report.comparison {
        let _ = writeln!(out, "- **Since the previous report**: {}", counts(c));
    }
    out.push('\n');

    let failing: Vec<(String, String, String)> = report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| {
            (
                code(&c.name, false),
                c.group.clone(),
                c.reason.clone().unwrap_or_else(|| c.outcome.clone()),
            )
        })
        .chain(report.flows.iter().filter(|f| !f.ok).map(|f| {
            (
                format!("flow {}", code(&f.name, false)),
                f.group.clone(),
                format!(
                    "{}/{} stages, {}",
                    f.steps_passed,
                    f.steps_total,
                    f.reason.as_deref().unwrap_or(&f.outcome)
                ),
            )
        }))
        .collect();
    if failing.is_empty() {
        return;
    }
    out.push_str("### Key findings\n\n");
    for (i, (name, group, why)) in failing.iter().take(MAX_FINDINGS).enumerate() {
        let _ = writeln!(out, "{}. ❌ {name} ({}): {}", i + 1, text(group), text(why));
    }
    if failing.len() > MAX_FINDINGS {
        let _ = writeln!(
            out,
            "\n…and {} more failures, listed below.",
            failing.len() - MAX_FINDINGS
        );
    }
    out.push('\n');
}

enum Before<'a> {
    /// Not in the previous report.
    New,
    /// Passing then and now.
    Passing,
    Was(&'a Brief),
}

/// How a flow that is in this report was in the previous one.
fn flow_before<'a>(c: &'a Comparison, name: &str) -> Before<'a> {
    let is = |x: &&Change| x.kind == Kind::Flow && x.name == name;
    if c.new.iter().any(|x| is(&x)) {
        return Before::New;
    }
    let was = [&c.fixed, &c.broken, &c.still_failing]
        .into_iter()
        .find_map(|l| l.iter().find(is).and_then(|x| x.before.as_ref()));
    match was {
        Some(b) => Before::Was(b),
        None => Before::Passing,
    }
}

fn groups(out: &mut String, report: &Report) {
    if report.groups.is_empty() && report.comparison.is_none() {
        return;
    }
    out.push_str("## Scores by group\n\n");
    let cmp = report.comparison.as_ref();
    if cmp.is_some() {
        out.push_str("| group | passing/total | score | change |\n| --- | ---: | ---: | --- |\n");
    } else {
        out.push_str("| group | passing/total | score |\n| --- | ---: | ---: |\n");
    }
    let delta_of = |name: &str| -> Option<&GroupDelta> {
        cmp.and_then(|c| c.groups.iter().find(|g| g.name == name))
    };
    for g in &report.groups {
        let _ = write!(
            out,
            "| {} | {}/{} | {} |",
            text(&g.name),
            g.score.passing,
            g.score.total,
            g.score.percent()
        );
        if cmp.is_some() {
            let change = match delta_of(&g.name) {
                Some(d) if d.in_previous => points_text(&d.delta),
                _ => "new group".to_owned(),
            };
            let _ = write!(out, " {} |", text(&change));
        }
        out.push('\n');
    }
    if let Some(c) = cmp {
        for g in c.groups.iter().filter(|g| !g.in_current) {
            let _ = writeln!(
                out,
                "| {} | – | – | {} |",
                text(&g.name),
                text(&format!("removed (was {})", percent(g.delta.previous)))
            );
        }
    }
    let o = &report.overall;
    let _ = write!(
        out,
        "| **overall** | **{}/{}** | **{}** |",
        o.passing,
        o.total,
        o.percent()
    );
    if let Some(c) = cmp {
        let _ = write!(out, " {} |", text(&points_text(&c.overall)));
    }
    out.push_str("\n\n");
}

fn changes(out: &mut String, c: &Comparison) {
    out.push_str("## What changed\n\n");
    let _ = writeln!(
        out,
        "Since the report of {}: {}.\n",
        time(c.previous_generated_at),
        counts(c)
    );
    if c.fixed.is_empty() && c.broken.is_empty() && c.new.is_empty() && c.removed.is_empty() {
        out.push_str("No check or flow changed from passing to failing or back.\n\n");
    }
    type Line = fn(&Change) -> String;
    let sections: [(&str, &[Change], Line); 5] = [
        ("Fixed", &c.fixed, fixed_line),
        ("Broken", &c.broken, broken_line),
        ("New", &c.new, new_line),
        ("Removed", &c.removed, removed_line),
        ("Still failing", &c.still_failing, still_line),
    ];
    for (title, list, line) in sections {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {title}\n");
        for change in list {
            let _ = writeln!(out, "- {}", line(change));
        }
        out.push('\n');
    }
}

fn who(c: &Change) -> String {
    let kind = match c.kind {
        Kind::Check => "",
        Kind::Flow => "flow ",
    };
    format!("{kind}{} ({})", code(&c.name, false), text(&c.group))
}

fn arrow(c: &Change) -> String {
    let before = c
        .before
        .as_ref()
        .map_or_else(|| "–".to_owned(), Brief::short);
    let after = c
        .after
        .as_ref()
        .map_or_else(|| "–".to_owned(), Brief::short);
    format!("{before} → {after}")
}

fn fixed_line(c: &Change) -> String {
    format!("✅ {}: {}, fixed", who(c), text(&arrow(c)))
}

fn broken_line(c: &Change) -> String {
    let why = c
        .after
        .as_ref()
        .and_then(|b| b.reason.as_deref())
        .map_or_else(String::new, |r| format!(": {}", text(r)));
    format!("❌ {}: {}, broken{why}", who(c), text(&arrow(c)))
}

fn brief_text(b: &Brief) -> String {
    let mut s = format!(
        "{}, {}",
        if b.ok { "✅ PASS" } else { "❌ FAIL" },
        b.short()
    );
    if let (false, Some(r)) = (b.ok, &b.reason) {
        let _ = write!(s, ": {r}");
    }
    text(&s)
}

fn new_line(c: &Change) -> String {
    let now = c.after.as_ref().map_or_else(String::new, brief_text);
    format!("🆕 {}: {now}", who(c))
}

fn removed_line(c: &Change) -> String {
    let was = c.before.as_ref().map_or_else(String::new, brief_text);
    format!("➖ {}: was {was}", who(c))
}

fn still_line(c: &Change) -> String {
    let why = c
        .after
        .as_ref()
        .and_then(|b| b.reason.as_deref())
        .map_or_else(String::new, |r| format!(": {}", text(r)));
    format!("❌ {}: {}{why}", who(c), text(&arrow(c)))
}

fn counts(c: &Comparison) -> String {
    format!(
        "{} fixed, {} broken, {} new, {} removed, {} still failing",
        c.fixed.len(),
        c.broken.len(),
        c.new.len(),
        c.removed.len(),
        c.still_failing.len()
    )
}

fn checks(out: &mut String, report: &Report) {
    if report.checks.is_empty() {
        return;
    }
    out.push_str("## Checks\n\n");
    for g in &report.groups {
        let in_group: Vec<&CheckEntry> =
            report.checks.iter().filter(|c| c.group == g.name).collect();
        if in_group.is_empty() {
            continue;
        }
        let passing = in_group.iter().filter(|c| c.ok).count();
        let _ = writeln!(
            out,
            "### {}: {passing}/{} checks passed\n",
            text(&g.name),
            in_group.len()
        );
        out.push_str(
            "| check | result | status | latency ms | reason | request |\n\
             | --- | --- | ---: | ---: | --- | --- |\n",
        );
        for c in &in_group {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                code(&c.name, true),
                if c.ok { "✅ PASS" } else { "❌ FAIL" },
                status(c.status),
                millis(c.duration_seconds),
                text(c.reason.as_deref().unwrap_or("")),
                code(&format!("{} {}", c.method, c.url), true),
            );
        }
        out.push('\n');
        let with_auth: Vec<(&CheckEntry, &AuthEntry)> = in_group
            .iter()
            .filter_map(|c| c.auth.as_ref().map(|a| (*c, a)))
            .collect();
        if !with_auth.is_empty() {
            out.push_str("Credentials (keys are shown only by fingerprint):\n\n");
            for (c, a) in with_auth {
                let _ = writeln!(out, "- {}: {}", code(&c.name, false), auth_text(a));
            }
            out.push('\n');
        }
    }
}

fn auth_text(a: &AuthEntry) -> String {
    let from = match &a.secret_name {
        Some(n) => format!("secret {}", code(n, false)),
        None => "a literal value in the config".to_owned(),
    };
    format!(
        "{}, {}, key {} ({from})",
        text(&a.scheme),
        text(&a.placement),
        code(&a.key_fingerprint, false)
    )
}

fn stages(f: &FlowEntry) -> String {
    format!(
        "{}/{} stages ({:.0}%)",
        f.steps_passed,
        f.steps_total,
        f.stage_score * 100.0
    )
}

fn flows(out: &mut String, report: &Report) {
    if report.flows.is_empty() {
        return;
    }
    out.push_str("## Flows\n\n");
    for f in &report.flows {
        let _ = writeln!(
            out,
            "### {} ({}): {}, {}\n",
            code(&f.name, false),
            text(&f.group),
            stages(f),
            if f.ok { "✅ PASS" } else { "❌ FAIL" }
        );
        let failed = f
            .steps
            .iter()
            .enumerate()
            .find(|(_, s)| s.result != StepState::Passed);
        match failed {
            Some((i, s)) => {
                let _ = writeln!(
                    out,
                    "Stopped at step {}/{} {}: {}  ",
                    i + 1,
                    f.steps.len(),
                    code(&s.name, false),
                    text(s.reason.as_deref().unwrap_or(&s.outcome))
                );
            }
            None => out.push_str("Every step passed.  \n"),
        }
        let _ = writeln!(
            out,
            "Took {} ms in all, cleanup included.\n",
            millis(f.duration_seconds)
        );
        step_table(out, &f.steps);
        if !f.cleanup.is_empty() {
            out.push_str("Cleanup:\n\n");
            step_table(out, &f.cleanup);
        }
        if f.cleanup_failed {
            let failed: Vec<String> = f
                .cleanup
                .iter()
                .filter(|s| s.result == StepState::Failed)
                .map(|s| code(&s.name, false))
                .collect();
            let _ = writeln!(
                out,
                "> ⚠️ **Cleanup failed** ({}): this run may have left test data behind.\n",
                failed.join(", ")
            );
        }
        flow_credentials(out, f);
    }
}

fn step_table(out: &mut String, steps: &[StepEntry]) {
    out.push_str(
        "| # | step | result | status | latency ms | reason |\n\
         | ---: | --- | --- | ---: | ---: | --- |\n",
    );
    for (i, s) in steps.iter().enumerate() {
        let (result, latency) = match s.result {
            StepState::Passed => ("✅ passed", millis(s.duration_seconds)),
            StepState::Failed => ("❌ failed", millis(s.duration_seconds)),
            StepState::Skipped => ("⏭️ skipped", "–".to_owned()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {result} | {} | {latency} | {} |",
            i + 1,
            code(&s.name, true),
            status(s.status),
            text(s.reason.as_deref().unwrap_or(""))
        );
    }
    out.push('\n');
}

/// One line per distinct credential, with the steps that send it.
fn flow_credentials(out: &mut String, f: &FlowEntry) {
    let mut seen: Vec<(&AuthEntry, Vec<String>)> = Vec::new();
    let tagged = f
        .steps
        .iter()
        .map(|s| (s, ""))
        .chain(f.cleanup.iter().map(|s| (s, "cleanup ")));
    for (s, tag) in tagged {
        let Some(a) = &s.auth else { continue };
        let name = format!("{tag}{}", code(&s.name, false));
        match seen.iter_mut().find(|(b, _)| *b == a) {
            Some((_, names)) => names.push(name),
            None => seen.push((a, vec![name])),
        }
    }
    if seen.is_empty() {
        return;
    }
    out.push_str("Credentials (keys are shown only by fingerprint):\n\n");
    for (a, names) in seen {
        let _ = writeln!(out, "- {}: {}", auth_text(a), names.join(", "));
    }
    out.push('\n');
}

/// "45.5% → 54.5%, +9.0 points".
fn delta_text(d: &ScoreDelta) -> String {
    let arrow = format!("{} → {}", percent(d.previous), percent(d.current));
    match d.delta_points {
        Some(p) if p.abs() < 0.05 => format!("{arrow}, no change"),
        Some(p) => format!("{arrow}, {p:+.1} points"),
        None => arrow,
    }
}

/// "+9.0 points (was 45.5%)", or "no change".
fn points_text(d: &ScoreDelta) -> String {
    match d.delta_points {
        Some(p) if p.abs() < 0.05 => "no change".to_owned(),
        Some(p) => format!("{p:+.1} points (was {})", percent(d.previous)),
        None => format!("{} → {}", percent(d.previous), percent(d.current)),
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn status(s: Option<u16>) -> String {
    s.map_or_else(|| "–".to_owned(), |s| s.to_string())
}

fn millis(seconds: f64) -> String {
    format!("{:.0}", seconds * 1000.0)
}

/// Text as Markdown that renders as itself: one line (a newline becomes
/// `<br>`), backslash escapes for the characters that make tables, code,
/// links, HTML or emphasis, and no other control characters.
pub fn text(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\r' if chars.get(i + 1) == Some(&'\n') => {
                out.push_str("<br>");
                i += 1;
            }
            '\n' | '\r' => out.push_str("<br>"),
            '\\' | '`' | '*' | '[' | ']' | '<' | '>' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            // An underscore inside a word never starts emphasis; leave
            // `experiment_id` readable.
            '_' => {
                let inner = |j: Option<usize>| {
                    j.and_then(|j| chars.get(j))
                        .is_some_and(|c| c.is_alphanumeric())
                };
                if !(inner(i.checked_sub(1)) && inner(Some(i + 1))) {
                    out.push('\\');
                }
                out.push('_');
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// A code span that holds `s` literally, whatever backticks it contains,
/// on one line. In a table cell, `|` is escaped as GFM requires (GFM takes
/// the escape out again inside code).
pub fn code(s: &str, in_table: bool) -> String {
    let mut body: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if in_table {
        body = body.replace('|', "\\|");
    }
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if body.starts_with('`') || body.ends_with('`') || body.is_empty() {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{body}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_break_a_table_or_inject_html() {
        assert_eq!(text("a | b\nc"), "a \\| b<br>c");
        assert_eq!(text("x\r\ny\rz"), "x<br>y<br>z");
        assert_eq!(
            text("<script>alert(1)</script>"),
            "\\<script\\>alert(1)\\</script\\>"
        );
        assert_eq!(text("a\\|b"), "a\\\\\\|b");
        assert_eq!(text("experiment_id _x_"), "experiment_id \\_x\\_");
        assert_eq!(text("tab\there"), "tab here");
    }

    #[test]
    fn code_spans_hold_backticks_and_pipes() {
        assert_eq!(code("a`b", false), "``a`b``");
        assert_eq!(code("`x", false), "`` `x ``");
        assert_eq!(code("a|b", true), "`a\\|b`");
        assert_eq!(code("a|b", false), "`a|b`");
        assert_eq!(code("a\nb", false), "`a b`");
    }
}
