//! The Markdown docs hold together: every relative link and image in
//! README.md, ARCHITECTURE.md, BENCHMARKS.md, deploy/README.md and
//! docs/*.md names a file or folder that exists, and every `#anchor` a
//! heading of the file it points into, by GitHub's rules. The README links
//! every file of docs/. The Markdown is read by pulldown-cmark, so code
//! blocks and spans are not mistaken for links or headings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files whose links are checked, relative to the repository.
fn checked_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md"]
        .into_iter()
        .chain(["deploy/README.md"])
        .map(PathBuf::from)
        .collect();
    files.extend(docs_files());
    files
}

/// docs/*.md, relative to the repository, sorted.
fn docs_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| Path::new("docs").join(p.file_name().expect("a file name")))
        .collect();
    files.sort();
    files
}

/// GitHub's options: tables, footnotes, strikethrough, task lists.
fn parser(text: &str) -> Parser<'_> {
    Parser::new_ext(
        text,
        Options::ENABLE_TABLES
            | Options::ENABLE_FOOTNOTES
            | Options::ENABLE_STRIKETHROUGH
            | Options::ENABLE_TASKLISTS,
    )
}

/// A heading's anchor as GitHub makes it: lower case, letters, digits,
/// `-` and `_` kept, each space a `-`, everything else dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor of a Markdown text: its headings' slugs, a repeated one
/// with `-1`, `-2`, … as GitHub numbers them.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    let mut heading: Option<String> = None;
    for event in parser(text) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().expect("a heading ends after it starts"));
                let n = seen.entry(base.clone()).or_insert(0);
                anchors.insert(if *n == 0 { base } else { format!("{base}-{n}") });
                *n += 1;
            }
            _ => {}
        }
    }
    anchors
}

/// A link or image of a file: its destination and the line it is on.
struct Link {
    dest: String,
    line: usize,
}

fn links(text: &str) -> Vec<Link> {
    parser(text)
        .into_offset_iter()
        .filter_map(|(event, at)| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => Some(Link {
                dest: dest_url.into_string(),
                line: text[..at.start].lines().count().max(1),
            }),
            _ => None,
        })
        .collect()
}

/// `a/../b/./c` as `b/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// What is wrong with one relative link of `file` (relative to the
/// repository), if anything.
fn broken(file: &Path, dest: &str) -> Option<String> {
    let (path, anchor) = match dest.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (dest, None),
    };
    let target = if path.is_empty() {
        file.to_path_buf()
    } else {
        normalize(&file.parent().unwrap_or(Path::new("")).join(path))
    };
    if target.as_os_str().is_empty() || target.starts_with("..") {
        return Some(format!("{} is outside the repository", target.display()));
    }
    let full = repo().join(&target);
    if !full.exists() {
        return Some(format!("{} does not exist", target.display()));
    }
    let anchor = anchor?;
    if target.extension().is_none_or(|x| x != "md") {
        return Some(format!(
            "#{anchor} points into {}, which is not Markdown",
            target.display()
        ));
    }
    let known = anchors(&read(&full));
    (!known.contains(anchor)).then(|| {
        format!(
            "{} has no heading #{anchor} (it has: {})",
            target.display(),
            known.into_iter().collect::<Vec<_>>().join(", ")
        )
    })
}

#[test]
fn github_anchor_rules() {
    for (heading, anchor) in [
        ("Config reference", "config-reference"),
        ("The fleet's view", "the-fleets-view"),
        ("`[server]`", "server"),
        ("`[[checks]]`", "checks"),
        ("Grafana and alerting", "grafana-and-alerting"),
        ("With basic auth", "with-basic-auth"),
        (
            "What the `max_body_bytes` limit is for",
            "what-the-max_body_bytes-limit-is-for",
        ),
        (
            "Cron, and intervals: 1-5 / MON-FRI",
            "cron-and-intervals-1-5--mon-fri",
        ),
    ] {
        assert_eq!(slug(heading), anchor, "{heading:?}");
    }
    let text = "# Notes\n\n## Notes\n\n```sh\n# not a heading\n```\n\n## `code` *and* text\n";
    assert_eq!(
        anchors(text),
        BTreeSet::from(["notes", "notes-1", "code-and-text"].map(String::from))
    );
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in checked_files() {
        let text = read(&repo().join(&file));
        for link in links(&text) {
            // An absolute URL (https:, mailto:) is not the repository's.
            if url::Url::parse(&link.dest).is_ok() {
                continue;
            }
            checked += 1;
            if let Some(why) = broken(&file, &link.dest) {
                problems.push(format!(
                    "{}:{}: ({}) {why}",
                    file.display(),
                    link.line,
                    link.dest
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
    assert!(checked > 20, "only {checked} relative links found");
}

#[test]
fn the_readme_links_every_docs_file() {
    let readme = read(&repo().join("README.md"));
    let linked: BTreeSet<PathBuf> = links(&readme)
        .into_iter()
        .map(|l| normalize(Path::new(l.dest.split('#').next().unwrap_or(""))))
        .collect();
    let docs = docs_files();
    assert!(!docs.is_empty(), "docs/ has Markdown files");
    let missing: Vec<_> = docs.iter().filter(|d| !linked.contains(*d)).collect();
    assert!(missing.is_empty(), "README.md does not link {missing:?}");
}
