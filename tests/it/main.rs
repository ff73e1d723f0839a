//! One integration-test binary (links once): each module is one area.

mod daemon;
mod probe_http;
mod support;
