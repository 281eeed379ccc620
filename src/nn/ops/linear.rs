//! Fully connected layer y = x Wᵀ + b, PyTorch's `nn.Linear`: W is `[fan_out, fan_in]` row-major at
//! `w_off` in θ, b is `[fan_out]` at `b_off`. With `seq` > 1 a sample is a sequence of `seq`
//! positions and the layer acts on each position (a Transformer's projections): the passes see
//! rows × seq rows of `fan_in`.

use super::{Input, Ten, TenMut};
use crate::backend::{Backend, Batch};
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    pub fan_in: usize,
    pub fan_out: usize,
    pub w_off: usize,
    pub b_off: usize,
    /// Positions per sample (1 for an ordinary layer).
    pub seq: usize,
}

impl Linear {
    /// Parameters of the layer.
    pub fn num_params(&self) -> usize {
        self.fan_in * self.fan_out + self.fan_out
    }
    /// Elements per sample of the input.
    pub fn in_width(&self) -> usize {
        self.seq * self.fan_in
    }
    /// Elements per sample of the output.
    pub fn out_width(&self) -> usize {
        self.seq * self.fan_out
    }

    /// acc(c) = α · x Bᵀ + β · acc for a `[fan_out, fan_in]` matrix B (W or V) at `b_off`.
    #[allow(clippy::too_many_arguments)]
    fn x_bt<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        x: &Input<B>,
        m: &B::Buf,
        m_off: usize,
        beta: f64,
        y: &mut TenMut<B>,
    ) -> Result<()> {
        match x {
            Input::Data(d, r0) => {
                be.input_gemm_nt(d, *r0, rows, self.fan_out, 1.0, m, m_off, beta, y.0, y.1)
            }
            Input::Buf(Ten(xb, xo)) => be.gemm(
                false,
                true,
                rows,
                self.fan_out,
                self.fan_in,
                1.0,
                xb,
                *xo,
                m,
                m_off,
                beta,
                y.0,
                y.1,
            ),
        }
    }

    /// out_W += gᵀ x for a `[rows, fan_out]` tensor g.
    fn gt_x<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        g: Ten<B>,
        x: &Input<B>,
        out: &mut TenMut<B>,
    ) -> Result<()> {
        let w = out.1 + self.w_off;
        match x {
            Input::Data(d, r0) => {
                be.input_gemm_tn(g.0, g.1, d, *r0, rows, self.fan_out, 1.0, 1.0, out.0, w)
            }
            Input::Buf(Ten(xb, xo)) => be.gemm(
                true,
                false,
                self.fan_out,
                self.fan_in,
                rows,
                1.0,
                g.0,
                g.1,
                xb,
                *xo,
                1.0,
                out.0,
                w,
            ),
        }
    }

    /// y = x Wᵀ + b.
    #[allow(clippy::too_many_arguments)]
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        x: Input<B>,
        theta: &B::Buf,
        mut y: TenMut<B>,
    ) -> Result<()> {
        let rows = rows * self.seq;
        self.x_bt(be, rows, &x, theta, self.w_off, 0.0, &mut y)?;
        be.bias_act(None, rows, self.fan_out, theta, self.b_off, y.0, y.1)
    }

    /// ∂L/∂W += gyᵀ x, ∂L/∂b += Σ_rows gy (into `grad`, θ's layout, when given);
    /// gx = gy W (when given).
    #[allow(clippy::too_many_arguments)]
    pub fn vjp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        x: Input<B>,
        theta: &B::Buf,
        gy: Ten<B>,
        grad: Option<TenMut<B>>,
        gx: Option<TenMut<B>>,
    ) -> Result<()> {
        let rows = rows * self.seq;
        if let Some(mut g) = grad {
            self.gt_x(be, rows, gy, &x, &mut g)?;
            be.col_sum(
                rows,
                self.fan_out,
                1.0,
                gy.0,
                gy.1,
                1.0,
                g.0,
                g.1 + self.b_off,
            )?;
        }
        if let Some(gx) = gx {
            be.gemm(
                false,
                false,
                rows,
                self.fan_in,
                self.fan_out,
                1.0,
                gy.0,
                gy.1,
                theta,
                self.w_off,
                0.0,
                gx.0,
                gx.1,
            )?;
        }
        Ok(())
    }

    /// R{y} = x Vᵀ + R{x} Wᵀ + v_b (R{x} absent for the first layer: the data do not move).
    #[allow(clippy::too_many_arguments)]
    pub fn jvp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        x: Input<B>,
        rx: Option<Ten<B>>,
        theta: &B::Buf,
        v: Ten<B>,
        mut ry: TenMut<B>,
    ) -> Result<()> {
        let rows = rows * self.seq;
        self.x_bt(be, rows, &x, v.0, v.1 + self.w_off, 0.0, &mut ry)?;
        if let Some(rx) = rx {
            self.x_bt(be, rows, &Input::Buf(rx), theta, self.w_off, 1.0, &mut ry)?;
        }
        be.bias_act(None, rows, self.fan_out, v.0, v.1 + self.b_off, ry.0, ry.1)
    }

    /// R{∂L/∂W} += R{gy}ᵀ x + gyᵀ R{x}, R{∂L/∂b} += Σ_rows R{gy} (into `hv`);
    /// R{gx} = R{gy} W + gy V (when given).
    #[allow(clippy::too_many_arguments)]
    pub fn r_vjp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        x: Input<B>,
        rx: Option<Ten<B>>,
        theta: &B::Buf,
        v: Ten<B>,
        gy: Ten<B>,
        rgy: Ten<B>,
        mut hv: TenMut<B>,
        rgx: Option<TenMut<B>>,
    ) -> Result<()> {
        let rows = rows * self.seq;
        self.gt_x(be, rows, rgy, &x, &mut hv)?;
        if let Some(rx) = rx {
            self.gt_x(be, rows, gy, &Input::Buf(rx), &mut hv)?;
        }
        be.col_sum(
            rows,
            self.fan_out,
            1.0,
            rgy.0,
            rgy.1,
            1.0,
            hv.0,
            hv.1 + self.b_off,
        )?;
        if let Some(rgx) = rgx {
            let (m, k, n) = (rows, self.fan_out, self.fan_in);
            be.gemm(
                false, false, m, n, k, 1.0, rgy.0, rgy.1, theta, self.w_off, 0.0, rgx.0, rgx.1,
            )?;
            be.gemm(
                false,
                false,
                m,
                n,
                k,
                1.0,
                gy.0,
                gy.1,
                v.0,
                v.1 + self.w_off,
                1.0,
                rgx.0,
                rgx.1,
            )?;
        }
        Ok(())
    }

    /// [`Linear::jvp`] for `nb` directions at once (a block HVP): direction i's v at
    /// `v.1 + i·vs` (θ's layout), its R{x} and R{y} stacked at `i·rows·in_width` and
    /// `i·rows·out_width` from their offsets. Each product (x V_iᵀ with x shared, R{x}_i Wᵀ with W
    /// shared) is one batched GEMM for all directions ([`Backend::gemm_batched`]: one dispatch on
    /// a GPU) where the input is an activation buffer; each direction's R{y} equals
    /// [`Linear::jvp`]'s bit for bit (the same operations on its data, in the same order).
    #[allow(clippy::too_many_arguments)]
    pub fn jvp_block<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        nb: usize,
        x: Input<B>,
        rx: Option<Ten<B>>,
        theta: &B::Buf,
        v: Ten<B>,
        vs: usize,
        ry: TenMut<B>,
    ) -> Result<()> {
        let r = rows * self.seq;
        let (sx, sy) = (r * self.fan_in, r * self.fan_out);
        let (fo, fi) = (self.fan_out, self.fan_in);
        match &x {
            Input::Data(d, r0) => {
                let each = Batch::new(nb, 0, vs, sy);
                let vo = v.1 + self.w_off;
                be.input_gemm_nt_batched(d, *r0, r, fo, 1.0, v.0, vo, 0.0, ry.0, ry.1, each)?;
            }
            Input::Buf(Ten(xb, xo)) => {
                let each = Batch::new(nb, 0, vs, sy);
                let vo = v.1 + self.w_off;
                be.gemm_batched(
                    false, true, r, fo, fi, 1.0, xb, *xo, v.0, vo, 0.0, ry.0, ry.1, each,
                )?;
            }
        }
        if let Some(rx) = rx {
            let each = Batch::new(nb, sx, 0, sy);
            be.gemm_batched(
                false, true, r, fo, fi, 1.0, rx.0, rx.1, theta, self.w_off, 1.0, ry.0, ry.1, each,
            )?;
        }
        for i in 0..nb {
            let bo = v.1 + i * vs + self.b_off;
            be.bias_act(None, r, fo, v.0, bo, ry.0, ry.1 + i * sy)?;
        }
        Ok(())
    }

    /// [`Linear::r_vjp`] for `nb` directions at once, laid out as in [`Linear::jvp_block`]
    /// (direction i's H·v at `hv.1 + i·vs`, its R{gy}/R{gx} stacked); the weight-gradient and
    /// R{gx} products are batched GEMMs (the long-K Gᵀ·X products run one by one where the GPU
    /// splits K). Each direction's result equals [`Linear::r_vjp`]'s bit for bit.
    #[allow(clippy::too_many_arguments)]
    pub fn r_vjp_block<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        nb: usize,
        x: Input<B>,
        rx: Option<Ten<B>>,
        theta: &B::Buf,
        v: Ten<B>,
        vs: usize,
        gy: Ten<B>,
        rgy: Ten<B>,
        hv: TenMut<B>,
        rgx: Option<TenMut<B>>,
    ) -> Result<()> {
        let r = rows * self.seq;
        let (sx, sy) = (r * self.fan_in, r * self.fan_out);
        let (fo, fi) = (self.fan_out, self.fan_in);
        let hw = hv.1 + self.w_off;
        match &x {
            Input::Data(d, r0) => {
                let each = Batch::new(nb, sy, 0, vs);
                be.input_gemm_tn_batched(rgy.0, rgy.1, d, *r0, r, fo, 1.0, 1.0, hv.0, hw, each)?;
            }
            Input::Buf(Ten(xb, xo)) => {
                let each = Batch::new(nb, sy, 0, vs);
                be.gemm_batched(
                    true, false, fo, fi, r, 1.0, rgy.0, rgy.1, xb, *xo, 1.0, hv.0, hw, each,
                )?;
            }
        }
        if let Some(rx) = rx {
            let each = Batch::new(nb, 0, sx, vs);
            be.gemm_batched(
                true, false, fo, fi, r, 1.0, gy.0, gy.1, rx.0, rx.1, 1.0, hv.0, hw, each,
            )?;
        }
        for i in 0..nb {
            let (go, ho) = (rgy.1 + i * sy, hv.1 + i * vs + self.b_off);
            be.col_sum(r, fo, 1.0, rgy.0, go, 1.0, hv.0, ho)?;
        }
        if let Some(rgx) = rgx {
            let by_w = Batch::new(nb, sy, 0, sx);
            be.gemm_batched(
                false, false, r, fi, fo, 1.0, rgy.0, rgy.1, theta, self.w_off, 0.0, rgx.0, rgx.1,
                by_w,
            )?;
            let by_v = Batch::new(nb, 0, vs, sx);
            let vo = v.1 + self.w_off;
            be.gemm_batched(
                false, false, r, fi, fo, 1.0, gy.0, gy.1, v.0, vo, 1.0, rgx.0, rgx.1, by_v,
            )?;
        }
        Ok(())
    }
}
