//! One integration-test binary (links once): each module is one area.

mod architecture;
mod browser;
mod cluster;
mod config_errors;
mod daemon;
mod deploy;
mod docs;
mod examples;
mod files;
mod fleet;
mod flows;
mod headers;
mod history;
mod hostile;
mod judge_table;
mod listener;
mod never_panics;
mod probe_http;
mod probe_tls;
mod prometheus_e2e;
mod reload;
mod report;
mod secret_forms;
mod snapshots;
mod store;
mod support;
