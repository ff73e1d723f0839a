//! lookout: continuous synthetic monitoring.
//!
//! The modules follow a check through the pipeline:
//! [`config`] → [`schedule`] → [`probe`] → [`judge`] → [`record`] → [`serve`];
//! [`flow`] runs multi-step flows out of the same probe and judge;
//! [`daemon`] wires them. See ARCHITECTURE.md.

pub mod cluster;
pub mod config;
pub mod daemon;
pub mod file;
pub mod fleet;
pub mod flow;
pub mod judge;
pub mod model;
pub mod outcome;
pub mod probe;
pub mod record;
pub mod report;
pub mod run;
pub mod schedule;
pub mod secret;
pub mod seen;
pub mod serve;
pub mod store;
pub mod template;
