//! WIP
use super::Observation;
use crate::model::*;
use crate::outcome::FailureKind;
pub async fn probe(_t: &DnsTarget) -> Observation {
    Observation::failed(FailureKind::Internal, "wip")
}
