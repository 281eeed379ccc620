// Kernels of the Transformer's ops over sequences (twins of src/backend/cpu_seq.rs and the
// embedding / pooling kernels of src/backend/cpu.rs; the math of each is on its Backend method).
// A batch is [rows, T, D] row-major; token ids are f32 scalars, a key or position is padding when
// its id is 0. Invocations are 1-D (2-D grid of 256-wide groups, linear_id); no atomics: every
// output element is written by exactly one invocation, sums run in a fixed order.
//
// Attention (P.m = T, P.n = dh, P.k = H, D = H·dh, P.scale = 1/√dh, P.flags = 1 when padding
// keys are masked): qkv is [rows, T, 3D] with [q | k | v] per position and head h in columns
// h·dh..; probs is [rows, H, T, T]. The "rows" kernels run one invocation per (r, h, query i),
// the "cols" kernels one per (r, h, key j); the rows kernels leave per-(r, h, i) scalars
// (ρ_i, δ_i, Rδ_i) in a scratch buffer (stride 3, offset 0) that the cols kernels read. Per-head
// vectors of dh scalars are accumulated in place in the output (each invocation owns its rows).

// ---------------------------------------------------------------------------------------------
// Embedding and mean pooling.

// out[r, t, j] = table[tok + id·D + j] + table[pos + t·D + j]: ids at off_a, table bound as b
// (token rows at off_b) and c (positions at off_c); P.m = T, P.n = D, P.len = rows·T·D.
@compute @workgroup_size(256, 1, 1)
fn embed(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wg, nwg, lid);
    if (e >= P.len) {
        return;
    }
    let d = P.n;
    let p = e / d;
    let j = e % d;
    let t = p % P.m;
    let id = u32(in_a[P.off_a + p]);
    out[P.off_out + e] = in_b[P.off_b + id * d + j] + in_c[P.off_c + t * d + j];
}

// out[tok + v·D + j] += Σ_{p ∈ start[v]..start[v+1]} gy[order[p]·D + j]: start at a, order at b
// (both offset 0), gy at off_c, out at off_out; P.n = D, P.len = vocab·D. A compensated sum in
// the order of `order` (a padding id can gather thousands of positions).
@compute @workgroup_size(256, 1, 1)
fn embed_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wg, nwg, lid);
    if (e >= P.len) {
        return;
    }
    let d = P.n;
    let v = e / d;
    let j = e % d;
    let a = u32(in_a[v]);
    let b = u32(in_a[v + 1u]);
    if (a >= b) {
        return;
    }
    var s = 0.0;
    var c = 0.0;
    for (var p = a; p < b; p++) {
        let y = in_c[P.off_c + u32(in_b[p]) * d + j] - c;
        let t = s + y;
        c = (t - s) - y;
        s = t;
    }
    out[P.off_out + e] = out[P.off_out + e] + s;
}

// Kept positions of sequence r (ids at off_a): the pooling weight's denominator, T unmasked.
fn pool_count(r: u32) -> u32 {
    let t = P.m;
    if (P.flags == 0u) {
        return t;
    }
    var n = 0u;
    for (var p = 0u; p < t; p++) {
        if (in_a[P.off_a + r * t + p] != 0.0) {
            n++;
        }
    }
    return n;
}

fn pool_keep(r: u32, p: u32) -> bool {
    return P.flags == 0u || in_a[P.off_a + r * P.m + p] != 0.0;
}

// out[r, j] = Σ_t w_rt x[r, t, j] (w_rt = 1/#kept at kept positions, 0 elsewhere; 0 for a
// sequence of padding only): ids at off_a, x at off_b; P.m = T, P.n = D, P.len = rows·D.
@compute @workgroup_size(256, 1, 1)
fn seq_mean(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wg, nwg, lid);
    if (e >= P.len) {
        return;
    }
    let d = P.n;
    let t = P.m;
    let r = e / d;
    let j = e % d;
    let n = pool_count(r);
    var s = 0.0;
    if (n > 0u) {
        let w = 1.0 / f32(n);
        for (var p = 0u; p < t; p++) {
            if (pool_keep(r, p)) {
                s = fma(w, in_b[P.off_b + (r * t + p) * d + j], s);
            }
        }
    }
    out[P.off_out + e] = s;
}

// dx[r, t, j] = w_rt dy[r, j] (overwritten): ids at off_a, dy at off_b; P.len = rows·T·D.
@compute @workgroup_size(256, 1, 1)
fn seq_mean_adjoint(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wg, nwg, lid);
    if (e >= P.len) {
        return;
    }
    let d = P.n;
    let t = P.m;
    let j = e % d;
    let rp = e / d;
    let r = rp / t;
    let p = rp % t;
    var v = 0.0;
    if (pool_keep(r, p)) {
        v = (1.0 / f32(pool_count(r))) * in_b[P.off_b + r * d + j];
    }
    out[P.off_out + e] = v;
}

// ---------------------------------------------------------------------------------------------
// LayerNorm: one invocation per row of P.n = width scalars (P.m = P.len = rows, P.alpha = ε);
// x is always at a (off_a). Mean and variance are recomputed from x in every pass, two-pass.

// (μ, 1/σ) of the row at `base` in in_a.
fn ln_stats(base: u32) -> vec2<f32> {
    let w = P.n;
    var s = 0.0;
    for (var j = 0u; j < w; j++) {
        s += in_a[base + j];
    }
    let mu = s / f32(w);
    var q = 0.0;
    for (var j = 0u; j < w; j++) {
        let c = in_a[base + j] - mu;
        q = fma(c, c, q);
    }
    return vec2<f32>(mu, 1.0 / sqrt(q / f32(w) + P.alpha));
}

// y = γ ⊙ x̂ + β: γ at b (off_b), β at c (off_c), y at off_out.
@compute @workgroup_size(256, 1, 1)
fn layer_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let row = linear_id(wg, nwg, lid);
    if (row >= P.len) {
        return;
    }
    let w = P.n;
    let st = ln_stats(P.off_a + row * w);
    for (var j = 0u; j < w; j++) {
        let xh = (in_a[P.off_a + row * w + j] - st.x) * st.y;
        out[P.off_out + row * w + j] = fma(in_b[P.off_b + j], xh, in_c[P.off_c + j]);
    }
}

// dx = (dx̂ − mean(dx̂) − x̂·mean(dx̂ ⊙ x̂))/σ with dx̂ = dy ⊙ γ, prod = dy ⊙ x̂: γ at b (off_b),
// dy at c (off_c); dx at off_out, prod in out2 at off_out2.
@compute @workgroup_size(256, 1, 1)
fn layer_norm_vjp(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let row = linear_id(wg, nwg, lid);
    if (row >= P.len) {
        return;
    }
    let w = P.n;
    let x0 = P.off_a + row * w;
    let g0 = P.off_c + row * w;
    let st = ln_stats(x0);
    var m1 = 0.0;
    var m2 = 0.0;
    for (var j = 0u; j < w; j++) {
        let xh = (in_a[x0 + j] - st.x) * st.y;
        let dxh = in_c[g0 + j] * in_b[P.off_b + j];
        m1 += dxh;
        m2 = fma(dxh, xh, m2);
    }
    m1 /= f32(w);
    m2 /= f32(w);
    for (var j = 0u; j < w; j++) {
        let xh = (in_a[x0 + j] - st.x) * st.y;
        let dy = in_c[g0 + j];
        let dxh = dy * in_b[P.off_b + j];
        out[P.off_out + row * w + j] = st.y * (dxh - m1 - xh * m2);
        out2[P.off_out2 + row * w + j] = dy * xh;
    }
}

// R{y} = v_γ ⊙ x̂ + γ ⊙ R{x̂} + v_β, R{x̂} = (Rx − mean(Rx) − x̂·mean(x̂ ⊙ Rx))/σ: Rx at b
// (off_b), γ at c (off_c), v_γ at d (off_d), v_β at e (off_e); R{y} at off_out.
@compute @workgroup_size(256, 1, 1)
fn layer_norm_jvp(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let row = linear_id(wg, nwg, lid);
    if (row >= P.len) {
        return;
    }
    let w = P.n;
    let x0 = P.off_a + row * w;
    let r0 = P.off_b + row * w;
    let st = ln_stats(x0);
    var ma = 0.0;
    var mb = 0.0;
    for (var j = 0u; j < w; j++) {
        let xh = (in_a[x0 + j] - st.x) * st.y;
        let rx = in_b[r0 + j];
        ma += rx;
        mb = fma(xh, rx, mb);
    }
    ma /= f32(w);
    mb /= f32(w);
    for (var j = 0u; j < w; j++) {
        let xh = (in_a[x0 + j] - st.x) * st.y;
        let rxh = st.y * (in_b[r0 + j] - ma - xh * mb);
        out[P.off_out + row * w + j] =
            in_d[P.off_d + j] * xh + in_c[P.off_c + j] * rxh + in_e[P.off_e + j];
    }
}

// The R-operator of layer_norm_vjp: Rx at b (off_b), γ at c (off_c), v_γ at d (off_d), dy at e
// (off_e), R{dy} at f (off_f); R{dx} at off_out, prod = R{dy} ⊙ x̂ + dy ⊙ R{x̂} in out2 at
// off_out2.
@compute @workgroup_size(256, 1, 1)
fn layer_norm_rvjp(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let row = linear_id(wg, nwg, lid);
    if (row >= P.len) {
        return;
    }
    let w = P.n;
    let fw = f32(w);
    let x0 = P.off_a + row * w;
    let r0 = P.off_b + row * w;
    let d0 = P.off_e + row * w;
    let q0 = P.off_f + row * w;
    let st = ln_stats(x0);
    let rstd = st.y;
    // mean(Rx), mean(x̂ ⊙ Rx), mean(dx̂), mean(dx̂ ⊙ x̂), mean(R{dx̂}).
    var ma = 0.0;
    var mb = 0.0;
    var m1 = 0.0;
    var m2 = 0.0;
    var rm1 = 0.0;
    for (var j = 0u; j < w; j++) {
        let xh = (in_a[x0 + j] - st.x) * rstd;
        let rx = in_b[r0 + j];
        let dy = in_e[d0 + j];
        let dxh = dy * in_c[P.off_c + j];
        let rdxh = in_f[q0 + j] * in_c[P.off_c + j] + dy * in_d[P.off_d + j];
        ma += rx;
        mb = fma(xh, rx, mb);
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
        let xh = (in_a[x0 + j] - st.x) * rstd;
        let rxh = rstd * (in_b[r0 + j] - ma - xh * mb);
        let dy = in_e[d0 + j];
        let dxh = dy * in_c[P.off_c + j];
        let rdxh = in_f[q0 + j] * in_c[P.off_c + j] + dy * in_d[P.off_d + j];
        rm2 += rdxh * xh + dxh * rxh;
    }
    rm2 /= fw;
    let r_rstd = -mb * rstd * rstd;
    for (var j = 0u; j < w; j++) {
        let xh = (in_a[x0 + j] - st.x) * rstd;
        let rxh = rstd * (in_b[r0 + j] - ma - xh * mb);
        let dy = in_e[d0 + j];
        let rdy = in_f[q0 + j];
        let dxh = dy * in_c[P.off_c + j];
        let rdxh = rdy * in_c[P.off_c + j] + dy * in_d[P.off_d + j];
        let a = dxh - m1 - xh * m2;
        out[P.off_out + row * w + j] = r_rstd * a + rstd * (rdxh - rm1 - rxh * m2 - xh * rm2);
        out2[P.off_out2 + row * w + j] = rdy * xh + dy * rxh;
    }
}

// ---------------------------------------------------------------------------------------------
// Attention. qkv (and R{qkv}, dqkv, R{dqkv}) index of position (r, t), part 0 q / 1 k / 2 v,
// head h; seq_at: the same in a [rows, T, D] tensor (out, dout, R{dout}).

fn qkv_at(off: u32, r: u32, t: u32, part: u32, h: u32) -> u32 {
    let d = P.k * P.n;
    return off + (r * P.m + t) * 3u * d + part * d + h * P.n;
}

fn seq_at(off: u32, r: u32, t: u32, h: u32) -> u32 {
    return off + (r * P.m + t) * P.k * P.n + h * P.n;
}

// Invocation id → (r, h, i) with rh = r·H + h.
struct Rhi {
    r: u32,
    h: u32,
    i: u32,
    rh: u32,
}

fn rhi(id: u32) -> Rhi {
    let i = id % P.m;
    let rh = id / P.m;
    return Rhi(rh / P.k, rh % P.k, i, rh);
}

// Dot products of dh scalars between two bindings (first argument's binding first).
fn dot_aa(x: u32, y: u32) -> f32 {
    var s = 0.0;
    for (var l = 0u; l < P.n; l++) {
        s = fma(in_a[x + l], in_a[y + l], s);
    }
    return s;
}

fn dot_ca(x: u32, y: u32) -> f32 {
    var s = 0.0;
    for (var l = 0u; l < P.n; l++) {
        s = fma(in_c[x + l], in_a[y + l], s);
    }
    return s;
}

fn dot_da(x: u32, y: u32) -> f32 {
    var s = 0.0;
    for (var l = 0u; l < P.n; l++) {
        s = fma(in_d[x + l], in_a[y + l], s);
    }
    return s;
}

fn dot_ea(x: u32, y: u32) -> f32 {
    var s = 0.0;
    for (var l = 0u; l < P.n; l++) {
        s = fma(in_e[x + l], in_a[y + l], s);
    }
    return s;
}

fn dot_dc(x: u32, y: u32) -> f32 {
    var s = 0.0;
    for (var l = 0u; l < P.n; l++) {
        s = fma(in_d[x + l], in_c[y + l], s);
    }
    return s;
}

// out[dst..dst+dh] = 0.
fn zero_out(dst: u32) {
    for (var l = 0u; l < P.n; l++) {
        out[dst + l] = 0.0;
    }
}

// out[dst + l] += α·a[x + l] (+ β·c[y + l], d/e likewise).
fn acc_a(dst: u32, al: f32, x: u32) {
    for (var l = 0u; l < P.n; l++) {
        out[dst + l] = fma(al, in_a[x + l], out[dst + l]);
    }
}

fn acc_c(dst: u32, al: f32, x: u32) {
    for (var l = 0u; l < P.n; l++) {
        out[dst + l] = fma(al, in_c[x + l], out[dst + l]);
    }
}

fn acc_ac(dst: u32, al: f32, x: u32, be: f32, y: u32) {
    for (var l = 0u; l < P.n; l++) {
        out[dst + l] = out[dst + l] + al * in_a[x + l] + be * in_c[y + l];
    }
}

fn acc_de(dst: u32, al: f32, x: u32, be: f32, y: u32) {
    for (var l = 0u; l < P.n; l++) {
        out[dst + l] = out[dst + l] + al * in_d[x + l] + be * in_e[y + l];
    }
}

// Forward, one invocation per (r, h, i): qkv at a (off_a), ids at b (off_b); out at off_out,
// probs in out2 at off_out2 (its row i holds the scores, then exp, then P while this runs).
// P.len = rows·H·T.
@compute @workgroup_size(256, 1, 1)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let id = linear_id(wg, nwg, lid);
    if (id >= P.len) {
        return;
    }
    let t = P.m;
    let x = rhi(id);
    let prow = P.off_out2 + (x.rh * t + x.i) * t;
    let qi = qkv_at(P.off_a, x.r, x.i, 0u, x.h);
    let o = seq_at(P.off_out, x.r, x.i, x.h);
    zero_out(o);
    var mx = 0.0;
    var found = false;
    for (var j = 0u; j < t; j++) {
        if (P.flags == 0u || in_b[P.off_b + x.r * t + j] != 0.0) {
            let s = P.scale * dot_aa(qi, qkv_at(P.off_a, x.r, j, 1u, x.h));
            out2[prow + j] = s;
            if (!found || s > mx) {
                mx = s;
            }
            found = true;
        } else {
            out2[prow + j] = 0.0;
        }
    }
    if (!found) {
        return; // every key masked: P and o stay 0
    }
    var z = 0.0;
    for (var j = 0u; j < t; j++) {
        if (P.flags == 0u || in_b[P.off_b + x.r * t + j] != 0.0) {
            let e = exp(out2[prow + j] - mx);
            out2[prow + j] = e;
            z += e;
        }
    }
    for (var j = 0u; j < t; j++) {
        let p = out2[prow + j] / z;
        out2[prow + j] = p;
        if (p != 0.0) {
            acc_a(o, p, qkv_at(P.off_a, x.r, j, 2u, x.h));
        }
    }
}

// VJP, rows: qkv at a, probs at b, dout at c; dq into dqkv at off_out, δ_i into the scratch
// (out2, slot 1). dq_i = Σ_j P_ij (dP_ij − δ_i) k_j / √dh with dP_ij = do_i·v_j.
@compute @workgroup_size(256, 1, 1)
fn attention_vjp_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let id = linear_id(wg, nwg, lid);
    if (id >= P.len) {
        return;
    }
    let t = P.m;
    let x = rhi(id);
    let prow = P.off_b + (x.rh * t + x.i) * t;
    let doi = seq_at(P.off_c, x.r, x.i, x.h);
    var delta = 0.0;
    for (var j = 0u; j < t; j++) {
        let p = in_b[prow + j];
        if (p != 0.0) {
            delta = fma(p, dot_ca(doi, qkv_at(P.off_a, x.r, j, 2u, x.h)), delta);
        }
    }
    out2[id * 3u + 1u] = delta;
    let dq = qkv_at(P.off_out, x.r, x.i, 0u, x.h);
    zero_out(dq);
    for (var j = 0u; j < t; j++) {
        let p = in_b[prow + j];
        if (p != 0.0) {
            let ds = p * (dot_ca(doi, qkv_at(P.off_a, x.r, j, 2u, x.h)) - delta);
            acc_a(dq, P.scale * ds, qkv_at(P.off_a, x.r, j, 1u, x.h));
        }
    }
}

// VJP, cols, one invocation per (r, h, key j): qkv at a, probs at b, dout at c, the scratch at
// d; dk_j = Σ_i dS_ij q_i / √dh and dv_j = Σ_i P_ij do_i into dqkv at off_out.
@compute @workgroup_size(256, 1, 1)
fn attention_vjp_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let id = linear_id(wg, nwg, lid);
    if (id >= P.len) {
        return;
    }
    let t = P.m;
    let x = rhi(id);
    let j = x.i;
    let vj = qkv_at(P.off_a, x.r, j, 2u, x.h);
    let dk = qkv_at(P.off_out, x.r, j, 1u, x.h);
    let dv = qkv_at(P.off_out, x.r, j, 2u, x.h);
    zero_out(dk);
    zero_out(dv);
    for (var i = 0u; i < t; i++) {
        let p = in_b[P.off_b + (x.rh * t + i) * t + j];
        if (p != 0.0) {
            let doi = seq_at(P.off_c, x.r, i, x.h);
            let delta = in_d[(x.rh * t + i) * 3u + 1u];
            let ds = p * (dot_ca(doi, vj) - delta);
            acc_a(dk, P.scale * ds, qkv_at(P.off_a, x.r, i, 0u, x.h));
            acc_c(dv, p, doi);
        }
    }
}

// JVP, one invocation per (r, h, i): qkv at a, probs at b, R{qkv} at c; R{o} at off_out.
// RS_ij = (Rq_i·k_j + q_i·Rk_j)/√dh, ρ_i = Σ_j P_ij RS_ij, R{o_i} = Σ_j P_ij (RS_ij − ρ_i) v_j +
// P_ij Rv_j.
@compute @workgroup_size(256, 1, 1)
fn attention_jvp(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let id = linear_id(wg, nwg, lid);
    if (id >= P.len) {
        return;
    }
    let t = P.m;
    let x = rhi(id);
    let prow = P.off_b + (x.rh * t + x.i) * t;
    let qi = qkv_at(P.off_a, x.r, x.i, 0u, x.h);
    let rqi = qkv_at(P.off_c, x.r, x.i, 0u, x.h);
    var rho = 0.0;
    for (var j = 0u; j < t; j++) {
        let p = in_b[prow + j];
        if (p != 0.0) {
            let rs = P.scale * (dot_ca(rqi, qkv_at(P.off_a, x.r, j, 1u, x.h))
                + dot_ca(qkv_at(P.off_c, x.r, j, 1u, x.h), qi));
            rho = fma(p, rs, rho);
        }
    }
    let ro = seq_at(P.off_out, x.r, x.i, x.h);
    zero_out(ro);
    for (var j = 0u; j < t; j++) {
        let p = in_b[prow + j];
        if (p != 0.0) {
            let rs = P.scale * (dot_ca(rqi, qkv_at(P.off_a, x.r, j, 1u, x.h))
                + dot_ca(qkv_at(P.off_c, x.r, j, 1u, x.h), qi));
            acc_ac(ro, p * (rs - rho), qkv_at(P.off_a, x.r, j, 2u, x.h), p,
                   qkv_at(P.off_c, x.r, j, 2u, x.h));
        }
    }
}

// The per-(i, j) terms of the R-backward: RS, dP, R{dP} (qkv at a, R{qkv} at c, dout at d,
// R{dout} at e).
struct RTerms {
    rs: f32,
    dp: f32,
    rdp: f32,
}

fn r_terms(r: u32, h: u32, i: u32, j: u32) -> RTerms {
    let qi = qkv_at(P.off_a, r, i, 0u, h);
    let rqi = qkv_at(P.off_c, r, i, 0u, h);
    let kj = qkv_at(P.off_a, r, j, 1u, h);
    let rkj = qkv_at(P.off_c, r, j, 1u, h);
    let vj = qkv_at(P.off_a, r, j, 2u, h);
    let rvj = qkv_at(P.off_c, r, j, 2u, h);
    let doi = seq_at(P.off_d, r, i, h);
    let rdoi = seq_at(P.off_e, r, i, h);
    let rs = P.scale * (dot_ca(rqi, kj) + dot_ca(rkj, qi));
    return RTerms(rs, dot_da(doi, vj), dot_ea(rdoi, vj) + dot_dc(doi, rvj));
}

// R-backward, rows: qkv at a, probs at b, R{qkv} at c, dout at d, R{dout} at e; R{dq} into
// R{dqkv} at off_out and (ρ_i, δ_i, Rδ_i) into the scratch (out2).
// R{dq_i} = Σ_j (R{dS}_ij k_j + dS_ij Rk_j)/√dh.
@compute @workgroup_size(256, 1, 1)
fn attention_rvjp_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let id = linear_id(wg, nwg, lid);
    if (id >= P.len) {
        return;
    }
    let t = P.m;
    let x = rhi(id);
    let prow = P.off_b + (x.rh * t + x.i) * t;
    var rho = 0.0;
    var delta = 0.0;
    for (var j = 0u; j < t; j++) {
        let p = in_b[prow + j];
        if (p != 0.0) {
            let v = r_terms(x.r, x.h, x.i, j);
            rho = fma(p, v.rs, rho);
            delta = fma(p, v.dp, delta);
        }
    }
    var rdelta = 0.0;
    for (var j = 0u; j < t; j++) {
        let p = in_b[prow + j];
        if (p != 0.0) {
            let v = r_terms(x.r, x.h, x.i, j);
            rdelta += p * (v.rs - rho) * v.dp + p * v.rdp;
        }
    }
    out2[id * 3u] = rho;
    out2[id * 3u + 1u] = delta;
    out2[id * 3u + 2u] = rdelta;
    let rdq = qkv_at(P.off_out, x.r, x.i, 0u, x.h);
    zero_out(rdq);
    for (var j = 0u; j < t; j++) {
        let p = in_b[prow + j];
        if (p != 0.0) {
            let v = r_terms(x.r, x.h, x.i, j);
            let rp = p * (v.rs - rho);
            let ds = p * (v.dp - delta);
            let rds = rp * (v.dp - delta) + p * (v.rdp - rdelta);
            acc_ac(rdq, P.scale * rds, qkv_at(P.off_a, x.r, j, 1u, x.h), P.scale * ds,
                   qkv_at(P.off_c, x.r, j, 1u, x.h));
        }
    }
}

// R-backward, cols, one invocation per (r, h, key j): as the rows kernel, the scratch at f;
// R{dk_j} = Σ_i (R{dS}_ij q_i + dS_ij Rq_i)/√dh, R{dv_j} = Σ_i RP_ij do_i + P_ij R{do_i} into
// R{dqkv} at off_out.
@compute @workgroup_size(256, 1, 1)
fn attention_rvjp_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let id = linear_id(wg, nwg, lid);
    if (id >= P.len) {
        return;
    }
    let t = P.m;
    let x = rhi(id);
    let j = x.i;
    let rdk = qkv_at(P.off_out, x.r, j, 1u, x.h);
    let rdv = qkv_at(P.off_out, x.r, j, 2u, x.h);
    zero_out(rdk);
    zero_out(rdv);
    for (var i = 0u; i < t; i++) {
        let p = in_b[P.off_b + (x.rh * t + i) * t + j];
        if (p != 0.0) {
            let s = (x.rh * t + i) * 3u;
            let rho = in_f[s];
            let delta = in_f[s + 1u];
            let rdelta = in_f[s + 2u];
            let v = r_terms(x.r, x.h, i, j);
            let rp = p * (v.rs - rho);
            let ds = p * (v.dp - delta);
            let rds = rp * (v.dp - delta) + p * (v.rdp - rdelta);
            acc_ac(rdk, P.scale * rds, qkv_at(P.off_a, x.r, i, 0u, x.h), P.scale * ds,
                   qkv_at(P.off_c, x.r, i, 0u, x.h));
            acc_de(rdv, rp, seq_at(P.off_d, x.r, i, x.h), p, seq_at(P.off_e, x.r, i, x.h));
        }
    }
}
