// LayerNorm (Ba et al. 2016) and its derivatives (twins of src/backend/cpu's; the math is on the
// Backend methods): one invocation per row of P.width scalars (2-D grid of 256-wide groups). Mean
// and variance are recomputed from x in every pass, two-pass.

struct LnParams {
    rows: u32,
    width: u32,
    off_x: u32,
    off_rx: u32,
    // γ and β in theta; v_γ and v_β (the direction's slices) in v.
    off_gamma: u32,
    off_beta: u32,
    off_vgamma: u32,
    off_vbeta: u32,
    off_dy: u32,
    off_rdy: u32,
    off_out: u32,
    off_prod: u32,
    eps: f32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

// x: the input; rx: R{x}; theta: the parameters (γ, β); v: the direction; dy: the gradient at the
// output; rdy: R{dy}; out: y, dx, R{y} or R{dx}; prod: the per-element products the parameter
// gradients sum (dy ⊙ x̂, or its R-derivative).
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rx: array<f32>;
@group(0) @binding(2) var<storage, read> theta: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read> rdy: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> prod: array<f32>;
@group(0) @binding(8) var<uniform> P: LnParams;

// (μ, 1/σ) of the row at `base` in x.
fn ln_stats(base: u32) -> vec2<f32> {
    let w = P.width;
    var s = 0.0;
    for (var j = 0u; j < w; j++) {
        s += x[base + j];
    }
    let mu = s / f32(w);
    var q = 0.0;
    for (var j = 0u; j < w; j++) {
        let c = x[base + j] - mu;
        q = fma(c, c, q);
    }
    return vec2<f32>(mu, 1.0 / sqrt(q / f32(w) + P.eps));
}

// y = γ ⊙ x̂ + β.
@compute @workgroup_size(256, 1, 1)
fn layer_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let row = linear_id(wg, nwg, lid);
    if (row >= P.rows) {
        return;
    }
    let w = P.width;
    let st = ln_stats(P.off_x + row * w);
    for (var j = 0u; j < w; j++) {
        let xh = (x[P.off_x + row * w + j] - st.x) * st.y;
        out[P.off_out + row * w + j] = fma(theta[P.off_gamma + j], xh, theta[P.off_beta + j]);
    }
}

// dx = (dx̂ − mean(dx̂) − x̂·mean(dx̂ ⊙ x̂))/σ with dx̂ = dy ⊙ γ, prod = dy ⊙ x̂.
@compute @workgroup_size(256, 1, 1)
fn layer_norm_vjp(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let row = linear_id(wg, nwg, lid);
    if (row >= P.rows) {
        return;
    }
    let w = P.width;
    let x0 = P.off_x + row * w;
    let g0 = P.off_dy + row * w;
    let st = ln_stats(x0);
    var m1 = 0.0;
    var m2 = 0.0;
    for (var j = 0u; j < w; j++) {
        let xh = (x[x0 + j] - st.x) * st.y;
        let dxh = dy[g0 + j] * theta[P.off_gamma + j];
        m1 += dxh;
        m2 = fma(dxh, xh, m2);
    }
    m1 /= f32(w);
    m2 /= f32(w);
    for (var j = 0u; j < w; j++) {
        let xh = (x[x0 + j] - st.x) * st.y;
        let dyj = dy[g0 + j];
        let dxh = dyj * theta[P.off_gamma + j];
        out[P.off_out + row * w + j] = st.y * (dxh - m1 - xh * m2);
        prod[P.off_prod + row * w + j] = dyj * xh;
    }
}

// R{y} = v_γ ⊙ x̂ + γ ⊙ R{x̂} + v_β, R{x̂} = (Rx − mean(Rx) − x̂·mean(x̂ ⊙ Rx))/σ.
@compute @workgroup_size(256, 1, 1)
fn layer_norm_jvp(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let row = linear_id(wg, nwg, lid);
    if (row >= P.rows) {
        return;
    }
    let w = P.width;
    let x0 = P.off_x + row * w;
    let r0 = P.off_rx + row * w;
    let st = ln_stats(x0);
    var ma = 0.0;
    var mb = 0.0;
    for (var j = 0u; j < w; j++) {
        let xh = (x[x0 + j] - st.x) * st.y;
        let rxj = rx[r0 + j];
        ma += rxj;
        mb = fma(xh, rxj, mb);
    }
    ma /= f32(w);
    mb /= f32(w);
    for (var j = 0u; j < w; j++) {
        let xh = (x[x0 + j] - st.x) * st.y;
        let rxh = st.y * (rx[r0 + j] - ma - xh * mb);
        out[P.off_out + row * w + j] =
            v[P.off_vgamma + j] * xh + theta[P.off_gamma + j] * rxh + v[P.off_vbeta + j];
    }
}

// The R-operator of layer_norm_vjp: R{dx}, and prod = R{dy} ⊙ x̂ + dy ⊙ R{x̂}.
@compute @workgroup_size(256, 1, 1)
fn layer_norm_rvjp(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let row = linear_id(wg, nwg, lid);
    if (row >= P.rows) {
        return;
    }
    let w = P.width;
    let fw = f32(w);
    let x0 = P.off_x + row * w;
    let r0 = P.off_rx + row * w;
    let d0 = P.off_dy + row * w;
    let q0 = P.off_rdy + row * w;
    let st = ln_stats(x0);
    let rstd = st.y;
    // mean(Rx), mean(x̂ ⊙ Rx), mean(dx̂), mean(dx̂ ⊙ x̂), mean(R{dx̂}).
    var ma = 0.0;
    var mb = 0.0;
    var m1 = 0.0;
    var m2 = 0.0;
    var rm1 = 0.0;
    for (var j = 0u; j < w; j++) {
        let xh = (x[x0 + j] - st.x) * rstd;
        let rxj = rx[r0 + j];
        let dyj = dy[d0 + j];
        let dxh = dyj * theta[P.off_gamma + j];
        let rdxh = rdy[q0 + j] * theta[P.off_gamma + j] + dyj * v[P.off_vgamma + j];
        ma += rxj;
        mb = fma(xh, rxj, mb);
        m1 += dxh;
        m2 = fma(dxh, xh, m2);
        rm1 += rdxh;
    }
    ma /= fw;
    mb /= fw;
    m1 /= fw;
    m2 /= fw;
    rm1 /= fw;
    // mean(R{dx̂} ⊙ x̂ + dx̂ ⊙ R{x̂}) needs R{x̂}, hence mean(Rx) and mean(x̂ ⊙ Rx) first.
    var rm2 = 0.0;
    for (var j = 0u; j < w; j++) {
        let xh = (x[x0 + j] - st.x) * rstd;
        let rxh = rstd * (rx[r0 + j] - ma - xh * mb);
        let dyj = dy[d0 + j];
        let dxh = dyj * theta[P.off_gamma + j];
        let rdxh = rdy[q0 + j] * theta[P.off_gamma + j] + dyj * v[P.off_vgamma + j];
        rm2 += rdxh * xh + dxh * rxh;
    }
    rm2 /= fw;
    let r_rstd = -mb * rstd * rstd;
    for (var j = 0u; j < w; j++) {
        let xh = (x[x0 + j] - st.x) * rstd;
        let rxh = rstd * (rx[r0 + j] - ma - xh * mb);
        let dyj = dy[d0 + j];
        let rdyj = rdy[q0 + j];
        let dxh = dyj * theta[P.off_gamma + j];
        let rdxh = rdyj * theta[P.off_gamma + j] + dyj * v[P.off_vgamma + j];
        let a = dxh - m1 - xh * m2;
        out[P.off_out + row * w + j] = r_rstd * a + rstd * (rdxh - rm1 - rxh * m2 - xh * rm2);
        prod[P.off_prod + row * w + j] = rdyj * xh + dyj * rxh;
    }
}
