//! Fully connected layer y = x Wᵀ + b, PyTorch's `nn.Linear`: W is `[fan_out, fan_in]` row-major at
//! `w_off` in θ, b is `[fan_out]` at `b_off`. With `seq` > 1 a sample is a sequence of `seq`
//! positions and the layer acts on each position (a Transformer's projections): the passes see
//! rows × seq rows of `fan_in`.

use super::{Block, DataForm, Input, Layer, OpRule, Pass, Shape, Ten, TenMut, got};
use crate::backend::{Backend, Batch, InputRows, Mat, MatMut};
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

    /// acc(c) = α · x Mᵀ + β · acc for a `[fan_out, fan_in]` matrix M (W or V).
    fn x_bt<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        x: &Input<B>,
        m: Ten<B>,
        beta: f64,
        y: &mut TenMut<B>,
    ) -> Result<()> {
        match x {
            Input::Data(d, r0) => be.input_gemm_nt(
                InputRows::new(*d, *r0),
                Mat::new(m.0, m.1, self.fan_out, self.fan_in),
                MatMut::new(y.0, y.1, rows, self.fan_out),
                1.0,
                beta,
            ),
            Input::Buf(Ten(xb, xo)) => be.gemm(
                Mat::new(*xb, *xo, rows, self.fan_in),
                Mat::new(m.0, m.1, self.fan_out, self.fan_in).t(),
                MatMut::new(y.0, y.1, rows, self.fan_out),
                1.0,
                beta,
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
            Input::Data(d, r0) => be.input_gemm_tn(
                Mat::new(g.0, g.1, rows, self.fan_out),
                InputRows::new(*d, *r0),
                MatMut::new(out.0, w, self.fan_out, self.fan_in),
                1.0,
                1.0,
            ),
            Input::Buf(Ten(xb, xo)) => be.gemm(
                Mat::new(g.0, g.1, rows, self.fan_out).t(),
                Mat::new(*xb, *xo, rows, self.fan_in),
                MatMut::new(out.0, w, self.fan_out, self.fan_in),
                1.0,
                1.0,
            ),
        }
    }
}

impl Layer for Linear {
    fn shape(&self) -> Shape {
        Shape {
            input: self.in_width(),
            output: self.out_width(),
            params: self.num_params(),
            ..Shape::default()
        }
    }
    fn reads_data(&self) -> Option<DataForm> {
        Some(DataForm::Features)
    }
}

impl<B: Backend> OpRule<B> for Linear {
    /// y = x Wᵀ + b.
    fn forward(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, rows, theta) = (p.be, p.rows * self.seq, p.theta);
        let x = got(p.x, "input")?;
        let mut y = got(p.y_out, "output")?;
        self.x_bt(be, rows, &x, Ten(theta, self.w_off), 0.0, &mut y)?;
        be.bias_act(None, rows, self.fan_out, Ten(theta, self.b_off), y)
    }

    /// ∂L/∂W += gyᵀ x, ∂L/∂b += Σ_rows gy (into `grad`, θ's layout, when given);
    /// gx = gy W (when given).
    fn vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, rows, theta) = (p.be, p.rows * self.seq, p.theta);
        let (x, gy) = (got(p.x, "input")?, got(p.gy, "∂L/∂y")?);
        if let Some(mut g) = p.grad {
            self.gt_x(be, rows, gy, &x, &mut g)?;
            be.col_sum(
                rows,
                self.fan_out,
                1.0,
                gy,
                1.0,
                TenMut(g.0, g.1 + self.b_off),
            )?;
        }
        if let Some(gx) = p.gx {
            be.gemm(
                Mat::new(gy.0, gy.1, rows, self.fan_out),
                Mat::new(theta, self.w_off, self.fan_out, self.fan_in),
                MatMut::new(gx.0, gx.1, rows, self.fan_in),
                1.0,
                0.0,
            )?;
        }
        Ok(())
    }

    /// R{y} = x Vᵀ + R{x} Wᵀ + v_b (R{x} absent for the first layer: the data do not move).
    fn jvp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, rows, theta) = (p.be, p.rows * self.seq, p.theta);
        let (x, v) = (got(p.x, "input")?, got(p.v, "direction")?);
        let mut ry = got(p.ry, "R{y}")?;
        self.x_bt(be, rows, &x, Ten(v.0, v.1 + self.w_off), 0.0, &mut ry)?;
        if let Some(rx) = p.rx {
            let w = Ten(theta, self.w_off);
            self.x_bt(be, rows, &Input::Buf(rx), w, 1.0, &mut ry)?;
        }
        be.bias_act(None, rows, self.fan_out, Ten(v.0, v.1 + self.b_off), ry)
    }

    /// R{∂L/∂W} += R{gy}ᵀ x + gyᵀ R{x}, R{∂L/∂b} += Σ_rows R{gy} (into `hv`);
    /// R{gx} = R{gy} W + gy V (when given).
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, rows, theta) = (p.be, p.rows * self.seq, p.theta);
        let (x, v) = (got(p.x, "input")?, got(p.v, "direction")?);
        let (gy, rgy) = (got(p.gy, "∂L/∂y")?, got(p.rgy, "R{∂L/∂y}")?);
        let mut hv = got(p.hv, "H·v")?;
        self.gt_x(be, rows, rgy, &x, &mut hv)?;
        if let Some(rx) = p.rx {
            self.gt_x(be, rows, gy, &Input::Buf(rx), &mut hv)?;
        }
        be.col_sum(
            rows,
            self.fan_out,
            1.0,
            rgy,
            1.0,
            TenMut(hv.0, hv.1 + self.b_off),
        )?;
        if let Some(rgx) = p.rgx {
            let (m, k, n) = (rows, self.fan_out, self.fan_in);
            be.gemm(
                Mat::new(rgy.0, rgy.1, m, k),
                Mat::new(theta, self.w_off, k, n),
                MatMut::new(rgx.0, rgx.1, m, n),
                1.0,
                0.0,
            )?;
            be.gemm(
                Mat::new(gy.0, gy.1, m, k),
                Mat::new(v.0, v.1 + self.w_off, k, n),
                MatMut::new(rgx.0, rgx.1, m, n),
                1.0,
                1.0,
            )?;
        }
        Ok(())
    }

    /// [`OpRule::jvp`] for the `b.n` directions of a block HVP at once: each product (x V_iᵀ with
    /// x shared, R{x}_i Wᵀ with W shared) is one batched GEMM for all directions
    /// ([`Backend::gemm_batched`]: one dispatch on a GPU) where the input is an activation
    /// buffer; each direction's R{y} equals [`OpRule::jvp`]'s bit for bit (the same operations
    /// on its data, in the same order).
    fn jvp_block(&self, p: Pass<'_, B>, b: Block) -> Result<()> {
        let (be, rows, theta, nb, vs) = (p.be, p.rows, p.theta, b.n, b.vs);
        let (x, v) = (got(p.x, "input")?, got(p.v, "direction")?);
        let ry = got(p.ry, "R{y}")?;
        let r = rows * self.seq;
        let (sx, sy) = (r * self.fan_in, r * self.fan_out);
        let (fo, fi) = (self.fan_out, self.fan_in);
        match &x {
            Input::Data(d, r0) => {
                let each = Batch::new(nb, 0, vs, sy);
                let vo = v.1 + self.w_off;
                be.input_gemm_nt_batched(
                    InputRows::new(*d, *r0),
                    Mat::new(v.0, vo, fo, fi),
                    MatMut::new(ry.0, ry.1, r, fo),
                    1.0,
                    0.0,
                    each,
                )?;
            }
            Input::Buf(Ten(xb, xo)) => {
                let each = Batch::new(nb, 0, vs, sy);
                let vo = v.1 + self.w_off;
                be.gemm_batched(
                    Mat::new(*xb, *xo, r, fi),
                    Mat::new(v.0, vo, fo, fi).t(),
                    MatMut::new(ry.0, ry.1, r, fo),
                    1.0,
                    0.0,
                    each,
                )?;
            }
        }
        if let Some(rx) = p.rx {
            let each = Batch::new(nb, sx, 0, sy);
            be.gemm_batched(
                Mat::new(rx.0, rx.1, r, fi),
                Mat::new(theta, self.w_off, fo, fi).t(),
                MatMut::new(ry.0, ry.1, r, fo),
                1.0,
                1.0,
                each,
            )?;
        }
        for i in 0..nb {
            let bo = v.1 + i * vs + self.b_off;
            be.bias_act(None, r, fo, Ten(v.0, bo), TenMut(ry.0, ry.1 + i * sy))?;
        }
        Ok(())
    }

    /// [`OpRule::r_vjp`] for the `b.n` directions at once, laid out as in
    /// [`OpRule::jvp_block`]; the weight-gradient and R{gx} products are batched GEMMs (the
    /// long-K Gᵀ·X products run one by one where the GPU splits K). Each direction's result
    /// equals [`OpRule::r_vjp`]'s bit for bit.
    fn r_vjp_block(&self, p: Pass<'_, B>, b: Block) -> Result<()> {
        let (be, rows, theta, nb, vs) = (p.be, p.rows, p.theta, b.n, b.vs);
        let (x, v) = (got(p.x, "input")?, got(p.v, "direction")?);
        let (gy, rgy) = (got(p.gy, "∂L/∂y")?, got(p.rgy, "R{∂L/∂y}")?);
        let hv = got(p.hv, "H·v")?;
        let r = rows * self.seq;
        let (sx, sy) = (r * self.fan_in, r * self.fan_out);
        let (fo, fi) = (self.fan_out, self.fan_in);
        let hw = hv.1 + self.w_off;
        match &x {
            Input::Data(d, r0) => {
                let each = Batch::new(nb, sy, 0, vs);
                be.input_gemm_tn_batched(
                    Mat::new(rgy.0, rgy.1, r, fo),
                    InputRows::new(*d, *r0),
                    MatMut::new(hv.0, hw, fo, fi),
                    1.0,
                    1.0,
                    each,
                )?;
            }
            Input::Buf(Ten(xb, xo)) => {
                let each = Batch::new(nb, sy, 0, vs);
                be.gemm_batched(
                    Mat::new(rgy.0, rgy.1, r, fo).t(),
                    Mat::new(*xb, *xo, r, fi),
                    MatMut::new(hv.0, hw, fo, fi),
                    1.0,
                    1.0,
                    each,
                )?;
            }
        }
        if let Some(rx) = p.rx {
            let each = Batch::new(nb, 0, sx, vs);
            be.gemm_batched(
                Mat::new(gy.0, gy.1, r, fo).t(),
                Mat::new(rx.0, rx.1, r, fi),
                MatMut::new(hv.0, hw, fo, fi),
                1.0,
                1.0,
                each,
            )?;
        }
        for i in 0..nb {
            let (go, ho) = (rgy.1 + i * sy, hv.1 + i * vs + self.b_off);
            be.col_sum(r, fo, 1.0, Ten(rgy.0, go), 1.0, TenMut(hv.0, ho))?;
        }
        if let Some(rgx) = p.rgx {
            let by_w = Batch::new(nb, sy, 0, sx);
            be.gemm_batched(
                Mat::new(rgy.0, rgy.1, r, fo),
                Mat::new(theta, self.w_off, fo, fi),
                MatMut::new(rgx.0, rgx.1, r, fi),
                1.0,
                0.0,
                by_w,
            )?;
            let by_v = Batch::new(nb, 0, vs, sx);
            let vo = v.1 + self.w_off;
            be.gemm_batched(
                Mat::new(gy.0, gy.1, r, fo),
                Mat::new(v.0, vo, fo, fi),
                MatMut::new(rgx.0, rgx.1, r, fi),
                1.0,
                1.0,
                by_v,
            )?;
        }
        Ok(())
    }
}
