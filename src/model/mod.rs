//! The check's model: what a check and a flow are ([`check`]), what a
//! probe is told to send ([`request`]), what it must find
//! ([`expect`]), and what it observed ([`observation`]). The verdict is
//! [`crate::outcome`]. Config builds these, probe fills the observation,
//! judge reads both; this module imports none of them (only the leaves
//! `schedule`, `secret` and `outcome`).

pub mod check;
pub mod expect;
pub mod observation;
pub mod request;
pub mod target;

pub use crate::seen::{
    DnsSeen, GrpcSeen, IcmpSeen, Seen, ServingStatus, TcpSeen, TlsSeen, TlsVersion, Unmatched,
};
pub use check::{
    BUILTIN_VARS, BodyTemplate, Burst, Capture, CaptureFrom, Check, Family, Flow, ROUTE_KEY,
    RequestTemplate, Step, Thresholds,
};
pub use expect::{
    BurstStatus, Challenge, Comparison, Expectations, HeaderCheck, HeaderExpect, JsonCheck,
    JsonExpect, JsonType, RetryAfter, StatusMatcher, StatusPattern,
};
pub use observation::{BurstObservation, Observation};
pub use request::{Auth, CaFile, ClientAuth, HttpRequest, OAuth2, TlsSettings};
pub use target::{
    CertExpect, DnsExpect, DnsTarget, DnsTransport, Endpoint, GrpcTarget, IcmpTarget, IpVersion,
    Kind, MODULE_HOST, QueryStep, RecordType, Target, TcpTarget, TlsOn, TlsTarget,
};
