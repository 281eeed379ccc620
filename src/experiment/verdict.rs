//! A claim of the paper checked on measured numbers.

use std::collections::BTreeMap;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Verdict {
    pub claim: String,
    pub holds: bool,
    pub numbers: BTreeMap<String, f64>,
    /// The human line: claim — numbers — HOLDS / DOES NOT HOLD.
    pub text: String,
}

impl Verdict {
    pub fn new(claim: &str, holds: bool, detail: String, numbers: &[(&str, f64)]) -> Self {
        let status = if holds { "HOLDS" } else { "DOES NOT HOLD" };
        Verdict {
            claim: claim.into(),
            holds,
            numbers: numbers.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            text: format!("{claim} — {detail} — {status}"),
        }
    }
}
