//! Ranking candidates by their distance to the writer's voice, with the model's own
//! likelihood beside it.

use crate::profile::{Fit, Profile};
use serde::{Deserialize, Serialize};

/// Nats of mean token log-probability worth one unit of voice distance. Voice leads: a
/// candidate the model found a nat per token less likely loses a quarter of a spread.
pub const LIKELIHOOD_WEIGHT: f64 = 0.25;

/// Where a candidate ranked, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoiceRank {
    pub fit: Fit,
    /// Mean log-probability per token under the model, when the backend reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_logprob: Option<f64>,
    /// Lower ranks first: the distance, plus the likelihood's share.
    pub score: f64,
    pub reason: String,
}

/// Each candidate's rank entry, in the candidates' order; sort by `score` to rank them. The
/// likelihood counts only when every candidate has one (a missing figure is not a good one).
pub fn rank(profile: &Profile, candidates: &[(&str, Option<f64>)]) -> Vec<VoiceRank> {
    let all_scored = candidates.iter().all(|(_, lp)| lp.is_some());
    candidates
        .iter()
        .map(|&(text, mean_logprob)| {
            let fit = profile.fit(text);
            let likelihood = if all_scored { mean_logprob.map_or(0.0, |lp| -lp * LIKELIHOOD_WEIGHT) } else { 0.0 };
            let reason = profile.reason(&fit);
            VoiceRank { score: fit.distance + likelihood, fit, mean_logprob, reason }
        })
        .collect()
}
