//! What a reload changed: the new config's checks and flows compared with
//! the running ones, by kind and name, with `Check::same_as` /
//! `Flow::same_as`. A pure comparison (as Vector's `config/diff.rs`); the
//! recorder and the daemon apply it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Check, Flow, TlsSettings};

/// What a reload compares: checks and flows alike.
pub trait Definition {
    fn name(&self) -> &str;
    fn job(&self) -> Job;
    fn same_as(&self, tls: &TlsSettings, other: &Self, other_tls: &TlsSettings) -> bool;
}

impl Definition for Check {
    fn name(&self) -> &str {
        &self.name
    }
    fn job(&self) -> Job {
        Job::Check(self.name.clone())
    }
    fn same_as(&self, tls: &TlsSettings, other: &Self, other_tls: &TlsSettings) -> bool {
        Check::same_as(self, tls, other, other_tls)
    }
}

impl Definition for Flow {
    fn name(&self) -> &str {
        &self.name
    }
    fn job(&self) -> Job {
        Job::Flow(self.name.clone())
    }
    fn same_as(&self, tls: &TlsSettings, other: &Self, other_tls: &TlsSettings) -> bool {
        Flow::same_as(self, tls, other, other_tls)
    }
}

/// The new config's items, with the old `Arc` for each unchanged one; their
/// resolved TLS settings; and `(new, old)` positions of the unchanged ones.
pub type Matched<T> = (Vec<Arc<T>>, Vec<TlsSettings>, Vec<(usize, usize)>);

pub fn match_up<T: Definition>(
    new: &[Arc<T>],
    old: &[Arc<T>],
    old_tls: &[TlsSettings],
    tls_of: impl Fn(&T) -> TlsSettings,
    diff: &mut Reloaded,
) -> Matched<T> {
    let by_name: HashMap<&str, (usize, &Arc<T>)> = old
        .iter()
        .enumerate()
        .map(|(i, item)| (item.name(), (i, item)))
        .collect();
    let (mut items, mut tls_list, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
    for (i, item) in new.iter().enumerate() {
        let tls = tls_of(item);
        match by_name.get(item.name()) {
            Some((j, prev)) if prev.same_as(&old_tls[*j], item, &tls) => {
                diff.unchanged.push(item.job());
                pairs.push((i, *j));
                items.push(Arc::clone(prev));
            }
            seen => {
                let list = if seen.is_some() {
                    &mut diff.changed
                } else {
                    &mut diff.added
                };
                list.push(item.job());
                items.push(item.clone());
            }
        }
        tls_list.push(tls);
    }
    // Removed: gone from this kind. A check that became a flow of the same
    // name is a removed check and an added flow.
    let kept: std::collections::HashSet<&str> = new.iter().map(|n| n.name()).collect();
    diff.removed.extend(
        old.iter()
            .filter(|o| !kept.contains(o.name()))
            .map(|o| o.job()),
    );
    (items, tls_list, pairs)
}

/// A scheduled job: a check or a flow, by name (one config never has both
/// of one name, but two configs may).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Job {
    Check(String),
    Flow(String),
}

impl Job {
    pub fn name(&self) -> &str {
        match self {
            Job::Check(n) | Job::Flow(n) => n,
        }
    }
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub added: Vec<Job>,
    pub changed: Vec<Job>,
    pub removed: Vec<Job>,
    pub unchanged: Vec<Job>,
}
