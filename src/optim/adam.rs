//! Adam with bias correction (`beta1 = 0` is "Adam −m"): one fused backend kernel
//! ([`Backend::adam`]) updates both moments and writes d.

use super::OptBuffers;
use crate::backend::{AdamStep, Backend};
use crate::error::Result;
use crate::experiment::spec::OptimizerSpec;

/// The kernel's constants for step `t` (1 for the first step): the rates and the bias
/// corrections 1 − β₁ᵗ and 1 − β₂ᵗ.
pub fn hyper(opt: &OptimizerSpec, t: u64) -> AdamStep {
    let t = t as i32;
    AdamStep {
        lr: opt.lr,
        beta1: opt.beta1,
        beta2: opt.beta2,
        eps: opt.eps,
        c1: 1.0 - opt.beta1.powi(t),
        c2: 1.0 - opt.beta2.powi(t),
    }
}

/// d ← Adam's step from g, the moments' next values written to `st.m_next` and `st.v_next`
/// (committed when the step succeeds; zero moments on the first step).
pub fn update<B: Backend>(
    b: &B,
    st: &mut OptBuffers<B>,
    h: AdamStep,
    g: &B::Buf,
    d: &mut B::Buf,
    p: usize,
) -> Result<()> {
    if st.m.is_none() || st.v.is_none() {
        st.m = Some(b.zeros(p)?);
        st.v = Some(b.zeros(p)?);
    }
    if st.m_next.is_none() || st.v_next.is_none() {
        st.m_next = Some(b.zeros(p)?);
        st.v_next = Some(b.zeros(p)?);
    }
    if let (Some(m), Some(v), Some(m2), Some(v2)) = (
        st.m.as_ref(),
        st.v.as_ref(),
        st.m_next.as_mut(),
        st.v_next.as_mut(),
    ) {
        b.copy(m, 0, m2, 0, p)?;
        b.copy(v, 0, v2, 0, p)?;
        b.adam(g, m2, v2, d, p, h)?;
    }
    Ok(())
}
