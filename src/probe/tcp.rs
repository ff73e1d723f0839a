//! WIP
use super::Observation;
use super::tls::TlsProfile;
use crate::model::*;
use crate::outcome::FailureKind;
use crate::secret::Redactor;
pub async fn probe(
    _t: &TcpTarget,
    _tls: Option<(&TlsOn, &TlsProfile)>,
    _r: &Redactor,
) -> Observation {
    Observation::failed(FailureKind::Internal, "wip")
}
pub async fn probe_tls(_t: &TlsTarget, _tls: &TlsProfile, _r: &Redactor) -> Observation {
    Observation::failed(FailureKind::Internal, "wip")
}
