//! WIP
use super::Observation;
use super::tls::TlsProfile;
use crate::model::*;
use crate::outcome::FailureKind;
pub async fn probe(_t: &GrpcTarget, _tls: Option<(&TlsOn, &TlsProfile)>) -> Observation {
    Observation::failed(FailureKind::Internal, "wip")
}
