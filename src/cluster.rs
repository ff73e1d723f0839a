//! Where this instance stands among many: its shard, its location, its
//! replica; and which checks and flows a shard owns.
//!
//! Placement is rendezvous (highest-random-weight) hashing: each shard
//! scores a monitor's identity with a hash seeded by the shard's index, and
//! the highest score owns it. Every monitor has exactly one owner among `n`
//! shards, every shard computes the same answer alone (no coordination), and
//! going from `n` to `n + 1` shards moves only what the new shard now wins:
//! about `1/(n + 1)` of the monitors, none between old shards. Shards are
//! counted from 0, as StatefulSet ordinals and Prometheus' `hashmod` count.
//! This module imports nothing of the crate: config builds a [`Cluster`],
//! the daemon asks it what to run.

use std::fmt;
use std::str::FromStr;

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The most shards one fleet may have.
pub const MAX_SHARDS: u32 = 1024;

/// Shard `index` of `count`, with `index < count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("a shard is written i/n, counted from 0: \"0/3\", \"1/3\" or \"2/3\" (got {0:?})")]
    Syntax(String),
    #[error("shard {index}/{count}: the index counts from 0, so it must be below {count}")]
    IndexOutOfRange { index: u32, count: u32 },
    #[error("the shard count must be from 1 to {MAX_SHARDS} (got {0})")]
    Count(u32),
    #[error(
        "cannot take the shard from the host name {0:?}: a StatefulSet pod is named \
         like \"lookout-2\" (ordinal last); give --shard i/n instead"
    )]
    Hostname(String),
}

impl Shard {
    /// The one shard that owns everything.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 || count > MAX_SHARDS {
            return Err(ShardError::Count(count));
        }
        if index >= count {
            return Err(ShardError::IndexOutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// The shard of a StatefulSet pod: the ordinal after the last `-` of
    /// its name (`lookout-2` is index 2), of `count`.
    pub fn from_pod_name(name: &str, count: u32) -> Result<Shard, ShardError> {
        let ordinal = name
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse::<u32>().ok())
            .ok_or_else(|| ShardError::Hostname(name.to_owned()))?;
        Shard::new(ordinal, count)
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count
    }

    pub fn is_sharded(self) -> bool {
        self.count > 1
    }

    /// The shard, of those `count`, that owns `identity`.
    pub fn owner_of(identity: &str, count: u32) -> u32 {
        (0..count.max(1))
            .max_by_key(|&i| (score(identity, i), std::cmp::Reverse(i)))
            .unwrap_or(0)
    }

    /// Whether this shard runs the monitor named `identity`.
    pub fn owns(self, identity: &str) -> bool {
        self.count <= 1 || Shard::owner_of(identity, self.count) == self.index
    }
}

/// The weight shard `index` gives `identity`. The seed is the index, so a
/// shard's weights do not depend on how many shards there are.
fn score(identity: &str, index: u32) -> u64 {
    xxh3_64_with_seed(identity.as_bytes(), u64::from(index))
}

impl Default for Shard {
    fn default() -> Self {
        Shard::ALL
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let (i, n) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| ShardError::Syntax(s.to_owned()))?;
        let parse = |x: &str| {
            x.trim()
                .parse::<u32>()
                .map_err(|_| ShardError::Syntax(s.to_owned()))
        };
        Shard::new(parse(i)?, parse(n)?)
    }
}

/// This instance's place in a fleet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cluster {
    pub shard: Shard,
    /// Where this instance probes from (`[cluster] location`).
    pub location: Option<String>,
    /// Which copy of its shard this is, when two run side by side for HA.
    pub replica: Option<String>,
}

/// The identity a check is placed by: its kind and name, so a check and a
/// flow of the same name are placed independently.
pub fn check_identity(name: &str) -> String {
    format!("check\0{name}")
}

/// The identity the routes of one request are placed by (`routes`): the
/// entry's title and its matrix values but the route, so every route of a
/// row runs on one instance and its diagnosis can be made there.
pub fn routes_identity(title: &str, matrix: &[(String, String)]) -> String {
    let values: Vec<String> = matrix.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("routes\0{title}\0{}", values.join("\0"))
}

/// The identity a flow is placed by (whole: all its steps go together).
pub fn flow_identity(name: &str) -> String {
    format!("flow\0{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| check_identity(&format!("endpoint-{i}[path=/v1/r{}]", i * 7)))
            .collect()
    }

    #[test]
    fn parses_and_refuses_shards() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(" 0 / 1 ".parse::<Shard>(), Ok(Shard::ALL));
        for (bad, want) in [
            ("3/3", ShardError::IndexOutOfRange { index: 3, count: 3 }),
            ("0/0", ShardError::Count(0)),
            ("1/2000", ShardError::Count(2000)),
            ("1", ShardError::Syntax("1".into())),
            ("a/3", ShardError::Syntax("a/3".into())),
            ("-1/3", ShardError::Syntax("-1/3".into())),
        ] {
            assert_eq!(bad.parse::<Shard>(), Err(want), "{bad}");
        }
        assert_eq!(
            Shard::from_pod_name("lookout-eu-2", 3),
            Ok(Shard { index: 2, count: 3 })
        );
        assert!(Shard::from_pod_name("lookout", 3).is_err());
        assert!(Shard::from_pod_name("lookout-3", 3).is_err());
    }

    /// Every monitor has exactly one owner, whichever shard asks.
    #[test]
    fn exactly_one_owner() {
        let ids = names(2_000);
        for n in 1..=8 {
            for id in &ids {
                let owners = (0..n)
                    .filter(|&i| Shard::new(i, n).unwrap().owns(id))
                    .count();
                assert_eq!(owners, 1, "{id} over {n} shards");
            }
        }
    }

    /// 10,000 monitors over 1..=8 shards: each shard holds within 10 % of
    /// its fair share (binomial spread is about 1 % of it at n = 8, so 10 %
    /// is far outside chance; the names are fixed, so this is exact).
    #[test]
    fn balanced() {
        let ids = names(10_000);
        for n in 1..=8u32 {
            let mut load = vec![0usize; n as usize];
            for id in &ids {
                load[Shard::owner_of(id, n) as usize] += 1;
            }
            let fair = ids.len() as f64 / f64::from(n);
            for (i, &l) in load.iter().enumerate() {
                let off = (l as f64 - fair).abs() / fair;
                assert!(off <= 0.10, "shard {i}/{n} holds {l}, fair is {fair:.0}");
            }
        }
    }

    /// Going from n to n + 1 shards moves at most 1/(n + 1) of the
    /// monitors plus 1.5 points, and only to the new shard.
    #[test]
    fn adding_a_shard_moves_only_its_share() {
        let ids = names(10_000);
        for n in 1..8u32 {
            let mut moved = 0;
            for id in &ids {
                let before = Shard::owner_of(id, n);
                let after = Shard::owner_of(id, n + 1);
                if before != after {
                    assert_eq!(after, n, "{id} moved between old shards");
                    moved += 1;
                }
            }
            let share = moved as f64 / ids.len() as f64;
            let bound = 1.0 / f64::from(n + 1) + 0.015;
            assert!(share <= bound, "{n} -> {}: moved {share:.3}", n + 1);
        }
    }

    #[test]
    fn stable_across_calls_and_kinds() {
        let id = check_identity("auth-health");
        assert_eq!(Shard::owner_of(&id, 5), Shard::owner_of(&id, 5));
        // Known values: placement must not change between releases, or an
        // upgrade would move checks between shards.
        assert_eq!(score(&id, 0), 2_859_839_066_490_634_027);
        assert_eq!(score(&id, 6), 11_398_814_311_162_664_899);
        assert_eq!(Shard::owner_of(&id, 7), 2);
        assert_ne!(check_identity("x"), flow_identity("x"));
    }
}
