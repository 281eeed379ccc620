//! 2×2 max-pool with stride 2 (PyTorch's `nn.MaxPool2d(2)`) on NHWC activations. The forward pass
//! records each output's arg-max (the first maximum in row-major window order on ties, as PyTorch);
//! every derivative is routed through it: the pool is linear in its input at a fixed arg-max, so
//! the JVP gathers, the VJP scatters, and the R-backward is the VJP of R{gy} (no second-order term).

use super::{Kinks, Layer, OpRule, Pass, Shape, buf, got, need};
use crate::backend::{Backend, Nhwc};
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2 {
    /// Input height, width (even) and channels.
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl MaxPool2 {
    pub fn in_width(&self) -> usize {
        self.h * self.w * self.c
    }
    pub fn out_width(&self) -> usize {
        self.h * self.w * self.c / 4
    }
    fn geom(&self, samples: usize) -> Nhwc {
        Nhwc {
            n: samples,
            h: self.h,
            w: self.w,
            c: self.c,
        }
    }
}

impl Layer for MaxPool2 {
    /// The arg-max (`aux`) has the shape of the output.
    fn shape(&self) -> Shape {
        Shape {
            input: self.in_width(),
            output: self.out_width(),
            aux: self.out_width(),
            ..Shape::default()
        }
    }
    fn has_kinks(&self) -> bool {
        true
    }
    /// Windows whose maximum is non-zero and attained more than once (NHWC input; a window of
    /// zeros behind a ReLU is clamped as a whole and is no kink).
    fn kinks(&self, input: &[f64]) -> Kinks {
        let (h, w, c) = (self.h, self.w, self.c);
        let mut ties = 0;
        for s in input.chunks_exact(self.in_width()) {
            for oi in 0..h / 2 {
                for oj in 0..w / 2 {
                    for ch in 0..c {
                        let at =
                            |di: usize, dj: usize| s[((2 * oi + di) * w + 2 * oj + dj) * c + ch];
                        let v = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                        let m = v.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                        if m != 0.0 && v.iter().filter(|&&x| x == m).count() > 1 {
                            ties += 1;
                        }
                    }
                }
            }
        }
        Kinks {
            relu_zeros: 0,
            pool_ties: ties,
        }
    }
}

impl<B: Backend> OpRule<B> for MaxPool2 {
    /// y = max over each window; `aux_out` (the shape of y) receives the arg-max.
    fn forward(&self, p: Pass<'_, B>) -> Result<()> {
        let x = buf(p.x)?;
        let (y, idx) = (got(p.y_out, "output")?, got(p.aux_out, "arg-max")?);
        let g = self.geom(p.rows);
        p.be.maxpool2(g, x, y, idx)
    }
    /// gx = gy at the arg-max, zero elsewhere.
    fn vjp(&self, p: Pass<'_, B>) -> Result<()> {
        if let Some(gx) = p.gx {
            let (idx, gy) = (got(p.aux, "arg-max")?, got(p.gy, "∂L/∂y")?);
            let g = self.geom(p.rows);
            p.be.pool2_scatter(g, idx, gy, gx)?;
        }
        Ok(())
    }
    /// R{y} = R{x} at the arg-max.
    fn jvp(&self, p: Pass<'_, B>) -> Result<()> {
        let (idx, rx) = (got(p.aux, "arg-max")?, need(p.rx)?);
        let ry = got(p.ry, "R{y}")?;
        let g = self.geom(p.rows);
        p.be.pool2_gather(g, idx, rx, ry)
    }
    /// R{gx}: the VJP applied to R{gy} (no second-order term).
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        if let Some(rgx) = p.rgx {
            let (idx, rgy) = (got(p.aux, "arg-max")?, got(p.rgy, "R{∂L/∂y}")?);
            let g = self.geom(p.rows);
            p.be.pool2_scatter(g, idx, rgy, rgx)?;
        }
        Ok(())
    }
}
