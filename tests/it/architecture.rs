//! ARCHITECTURE.md's "Who may import whom" is the rule: every `crate::…`
//! path under src/ must be one its table allows, every module must be in
//! it, and the table itself must have no circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The table: module → what it may import.
fn allowed() -> Graph {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let section = text
        .split("## Who may import whom")
        .nth(1)
        .expect("ARCHITECTURE.md has a \"Who may import whom\" section");
    let tick = regex::Regex::new(r"`([a-z_]+)`").unwrap();
    let mut out = Graph::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "| `module` | `a`, `b` |" splits into ["", module, imports, ""].
        if cells.len() != 4 || !cells[1].starts_with('`') {
            continue;
        }
        let module = cells[1].trim_matches('`').to_owned();
        let may: BTreeSet<String> = tick
            .captures_iter(cells[2])
            .map(|c| c[1].to_owned())
            .collect();
        assert!(
            out.insert(module.clone(), may).is_none(),
            "{module} listed twice"
        );
    }
    out
}

/// What each top-level module of src/ does import (`crate::x` anywhere in
/// its files, comments aside).
fn actual() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let path_re = regex::Regex::new(r"crate::([a-z_]+)").unwrap();
    let mut out = Graph::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            if top == "main" || top == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let deps = out.entry(top.clone()).or_default();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for c in path_re.captures_iter(line) {
                    if c[1] != *top {
                        deps.insert(c[1].to_owned());
                    }
                }
            }
        }
    }
    out
}

#[test]
fn imports_follow_the_table() {
    let allowed = allowed();
    let actual = actual();
    let mut wrong = Vec::new();
    for (module, deps) in &actual {
        let Some(may) = allowed.get(module) else {
            wrong.push(format!("{module} is not in ARCHITECTURE.md's table"));
            continue;
        };
        for d in deps.difference(may) {
            wrong.push(format!(
                "{module} imports {d}, which the table does not allow"
            ));
        }
    }
    for module in allowed.keys().filter(|m| !actual.contains_key(*m)) {
        wrong.push(format!(
            "the table lists {module}, which src/ does not have"
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_table_has_no_circle() {
    let graph = allowed();
    // Kahn: repeatedly remove modules that import nothing left.
    let mut left = graph.clone();
    while !left.is_empty() {
        let free: Vec<String> = left
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| !left.contains_key(d)))
            .map(|(m, _)| m.clone())
            .collect();
        assert!(!free.is_empty(), "a circle among {:?}", left.keys());
        for m in free {
            left.remove(&m);
        }
    }
    // The ground floor imports nothing above it.
    for floor in ["model", "outcome"] {
        for above in ["config", "probe", "judge", "record", "serve"] {
            assert!(!graph[floor].contains(above), "{floor} may import {above}");
        }
    }
}

/// Adding a probe kind is local: outside `src/probe/`, only the files
/// ARCHITECTURE.md lists under "Adding a probe kind" name a concrete kind
/// (a `Target::`, `Seen::` or `Kind::` variant other than HTTP's, or a
/// kind's target or observation type), and each listed file does.
#[test]
fn a_probe_kind_is_named_only_where_architecture_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let section = text
        .split("## Adding a probe kind")
        .nth(1)
        .expect("ARCHITECTURE.md has an \"Adding a probe kind\" section");
    let listed: BTreeSet<String> = regex::Regex::new(r"`(src/[a-z_/]+\.rs)`")
        .unwrap()
        .captures_iter(section.split("\n## ").next().unwrap_or_default())
        .map(|c| c[1].to_owned())
        .collect();
    assert!(!listed.is_empty(), "the section lists no files");
    let kind = regex::Regex::new(
        r"\b(Target|Seen|Kind)::(Tcp|Tls|Dns|Grpc|Icmp)\b|\b(TcpTarget|TlsTarget|DnsTarget|GrpcTarget|IcmpTarget|TcpSeen|DnsSeen|GrpcSeen|IcmpSeen)\b",
    )
    .unwrap();
    let mut naming = BTreeSet::new();
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel.starts_with("src/probe/") || !rel.ends_with(".rs") {
                continue;
            }
            let code: String = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            if kind.is_match(&code) {
                naming.insert(rel);
            }
        }
    }
    let unlisted: Vec<_> = naming.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&naming).collect();
    assert!(
        unlisted.is_empty(),
        "these files name a probe kind but ARCHITECTURE.md does not list them: {unlisted:?}"
    );
    assert!(
        stale.is_empty(),
        "ARCHITECTURE.md lists files that name no probe kind: {stale:?}"
    );
}
