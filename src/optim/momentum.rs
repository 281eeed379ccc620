//! Heavy-ball momentum in PyTorch's convention: buf ← μ·buf + g (the first step: buf ← g),
//! d = η·buf.

use super::OptBuffers;
use crate::backend::Backend;
use crate::error::Result;

/// d ← η·(μ·m + g) with the new buffer written to `st.m_next` (committed when the step succeeds).
pub fn update<B: Backend>(
    b: &B,
    st: &mut OptBuffers<B>,
    mu: f64,
    lr: f64,
    g: &B::Buf,
    d: &mut B::Buf,
    p: usize,
) -> Result<()> {
    if st.m_next.is_none() {
        st.m_next = Some(b.zeros(p)?);
    }
    if let Some(next) = st.m_next.as_mut() {
        match &st.m {
            Some(m) => {
                // PyTorch: buf ← μ·buf + g.
                b.copy(m, 0, next, 0, p)?;
                b.scale(mu, next, 0, p)?;
                b.axpy(1.0, g, 0, next, 0, p)?;
            }
            // The first step initialises the buffer with the gradient.
            None => b.copy(g, 0, next, 0, p)?,
        }
        b.copy(next, 0, d, 0, p)?;
    }
    b.scale(lr, d, 0, p)
}
