//! The run spec's density fields (`density_every`, `density_probes`, `density_steps`): their
//! defaults and checks, apart from [`super::density`] so that the spec imports nothing that
//! imports it back.

use crate::error::{Error, Result};

pub(super) fn is_zero(x: &usize) -> bool {
    *x == 0
}
/// The default `density_probes`.
pub fn d_probes() -> usize {
    4
}
/// The default `density_steps`.
pub fn d_steps() -> usize {
    40
}
pub(super) fn is_d_probes(x: &usize) -> bool {
    *x == d_probes()
}
pub(super) fn is_d_steps(x: &usize) -> bool {
    *x == d_steps()
}

/// The density fields of a spec on a network of `p` parameters: probes ≥ 1 and 2 ≤ steps ≤ p
/// when `every` > 0. Errors: the field named.
pub(super) fn validate(every: usize, probes: usize, steps: usize, p: usize) -> Result<()> {
    if every == 0 {
        return Ok(());
    }
    if probes == 0 {
        return Err(Error::InvalidArgument(
            "density_probes = 0: need ≥ 1 (density_every is on)".into(),
        ));
    }
    if !(2..=p).contains(&steps) {
        return Err(Error::InvalidArgument(format!(
            "density_steps = {steps}: need 2 ..= {p} (the parameters)"
        )));
    }
    Ok(())
}
