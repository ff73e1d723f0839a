//! WIP
use super::Observation;
use crate::model::*;
use crate::outcome::FailureKind;
pub async fn probe(_t: &IcmpTarget) -> Observation {
    Observation::failed(FailureKind::Internal, "wip")
}
