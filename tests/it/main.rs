//! One integration-test binary (links once): each module is one area.

mod daemon;
mod probe_http;
mod probe_tls;
mod snapshots;
mod support;
