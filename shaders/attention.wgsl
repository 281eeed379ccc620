// Multi-head self-attention (Vaswani et al. 2017) and its derivatives (twins of
// src/backend/cpu's; the math of each is on its Backend method). Invocations are 1-D (2-D grid of
// 256-wide groups, linear_id); no atomics: every output element is written by exactly one
// invocation, sums run in a fixed order.
//
// T = P.seq, dh = P.head_dim, H = P.heads, D = H·dh, P.scale = 1/√dh, P.masked = 1 when padding
// keys (id 0) are masked: qkv is [rows, T, 3D] with [q | k | v] per position and head h in
// columns h·dh..; probs is [rows, H, T, T]. The "rows" kernels run one invocation per (r, h, query
// i), the "cols" kernels one per (r, h, key j); the rows kernels leave per-(r, h, i) scalars
// (ρ_i, δ_i, Rδ_i) in a scratch buffer (aux, stride 3, offset 0) that the cols kernels read.
// Per-head vectors of dh scalars are accumulated in place in the output (each invocation owns its
// rows). P.len = rows·H·T invocations.

struct AttnParams {
    seq: u32,
    head_dim: u32,
    heads: u32,
    masked: u32,
    len: u32,
    off_qkv: u32,
    off_ids: u32,
    off_probs: u32,
    off_rqkv: u32,
    off_dout: u32,
    off_rdout: u32,
    off_out: u32,
    // attention: where its probabilities go in aux.
    off_aux: u32,
    scale: f32,
    pad0: u32,
    pad1: u32,
}

// qkv: the projections; ids: the token ids (padding keys); probs: the probabilities; rqkv: R{qkv};
// dout: the gradient at the output; rdout: R{dout}; out: the output (o, dqkv, R{o}, R{dqkv});
// aux: the probabilities (attention) or the scratch of per-row scalars (the backward kernels).
@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<f32>;
@group(0) @binding(2) var<storage, read> probs: array<f32>;
@group(0) @binding(3) var<storage, read> rqkv: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read> rdout: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> aux: array<f32>;
@group(0) @binding(8) var<uniform> P: AttnParams;

// qkv (and R{qkv}, dqkv, R{dqkv}) index of position (r, t), part 0 q / 1 k / 2 v, head h; seq_at:
// the same in a [rows, T, D] tensor (out, dout, R{dout}).
fn qkv_at(off: u32, r: u32, t: u32, part: u32, h: u32) -> u32 {
    let d = P.heads * P.head_dim;
    return off + (r * P.seq + t) * 3u * d + part * d + h * P.head_dim;
}

fn seq_at(off: u32, r: u32, t: u32, h: u32) -> u32 {
    return off + (r * P.seq + t) * P.heads * P.head_dim + h * P.head_dim;
}

// Invocation id → (r, h, i) with rh = r·H + h.
struct Rhi {
    r: u32,
    h: u32,
    i: u32,
    rh: u32,
}

fn rhi(id: u32) -> Rhi {
    let i = id % P.seq;
    let rh = id / P.seq;
    return Rhi(rh / P.heads, rh % P.heads, i, rh);
}

// Dot products of dh scalars: dot_xy(i, j) = Σ_l x[i + l]·y[j + l] with q = qkv, r = rqkv,
// d = dout, rd = rdout.
fn dot_qq(x: u32, y: u32) -> f32 {
    var s = 0.0;
    for (var l = 0u; l < P.head_dim; l++) {
        s = fma(qkv[x + l], qkv[y + l], s);
    }
    return s;
}

fn dot_rq(x: u32, y: u32) -> f32 {
    var s = 0.0;
    for (var l = 0u; l < P.head_dim; l++) {
        s = fma(rqkv[x + l], qkv[y + l], s);
    }
    return s;
}

fn dot_dq(x: u32, y: u32) -> f32 {
    var s = 0.0;
    for (var l = 0u; l < P.head_dim; l++) {
        s = fma(dout[x + l], qkv[y + l], s);
    }
    return s;
}

fn dot_rdq(x: u32, y: u32) -> f32 {
    var s = 0.0;
    for (var l = 0u; l < P.head_dim; l++) {
        s = fma(rdout[x + l], qkv[y + l], s);
    }
    return s;
}

fn dot_dr(x: u32, y: u32) -> f32 {
    var s = 0.0;
    for (var l = 0u; l < P.head_dim; l++) {
        s = fma(dout[x + l], rqkv[y + l], s);
    }
    return s;
}

// out[dst..dst+dh] = 0.
fn zero_out(dst: u32) {
    for (var l = 0u; l < P.head_dim; l++) {
        out[dst + l] = 0.0;
    }
}

// out[dst + l] += α·qkv[x + l] (acc_q), α·dout[x + l] (acc_d); + β·rqkv[y + l] (acc_qr),
// α·dout[x + l] + β·rdout[y + l] (acc_drd).
fn acc_q(dst: u32, al: f32, x: u32) {
    for (var l = 0u; l < P.head_dim; l++) {
        out[dst + l] = fma(al, qkv[x + l], out[dst + l]);
    }
}

fn acc_d(dst: u32, al: f32, x: u32) {
    for (var l = 0u; l < P.head_dim; l++) {
        out[dst + l] = fma(al, dout[x + l], out[dst + l]);
    }
}

fn acc_qr(dst: u32, al: f32, x: u32, be: f32, y: u32) {
    for (var l = 0u; l < P.head_dim; l++) {
        out[dst + l] = out[dst + l] + al * qkv[x + l] + be * rqkv[y + l];
    }
}

fn acc_drd(dst: u32, al: f32, x: u32, be: f32, y: u32) {
    for (var l = 0u; l < P.head_dim; l++) {
        out[dst + l] = out[dst + l] + al * dout[x + l] + be * rdout[y + l];
    }
}

// Forward, one invocation per (r, h, i): out, and the probabilities in aux at off_aux (its row i
// holds the scores, then exp, then P while this runs).
@compute @workgroup_size(256, 1, 1)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let id = linear_id(wg, nwg, lid);
    if (id >= P.len) {
        return;
    }
    let t = P.seq;
    let x = rhi(id);
    let prow = P.off_aux + (x.rh * t + x.i) * t;
    let qi = qkv_at(P.off_qkv, x.r, x.i, 0u, x.h);
    let o = seq_at(P.off_out, x.r, x.i, x.h);
    zero_out(o);
    var mx = 0.0;
    var found = false;
    for (var j = 0u; j < t; j++) {
        if (P.masked == 0u || ids[P.off_ids + x.r * t + j] != 0.0) {
            let s = P.scale * dot_qq(qi, qkv_at(P.off_qkv, x.r, j, 1u, x.h));
            aux[prow + j] = s;
            if (!found || s > mx) {
                mx = s;
            }
            found = true;
        } else {
            aux[prow + j] = 0.0;
        }
    }
    if (!found) {
        return; // every key masked: P and o stay 0
    }
    var z = 0.0;
    for (var j = 0u; j < t; j++) {
        if (P.masked == 0u || ids[P.off_ids + x.r * t + j] != 0.0) {
            let e = exp(aux[prow + j] - mx);
            aux[prow + j] = e;
            z += e;
        }
    }
    for (var j = 0u; j < t; j++) {
        let p = aux[prow + j] / z;
        aux[prow + j] = p;
        if (p != 0.0) {
            acc_q(o, p, qkv_at(P.off_qkv, x.r, j, 2u, x.h));
        }
    }
}

// VJP, rows: dq into dqkv (out), δ_i into the scratch (aux, slot 1).
// dq_i = Σ_j P_ij (dP_ij − δ_i) k_j / √dh with dP_ij = do_i·v_j.
@compute @workgroup_size(256, 1, 1)
fn attention_vjp_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let id = linear_id(wg, nwg, lid);
    if (id >= P.len) {
        return;
    }
    let t = P.seq;
    let x = rhi(id);
    let prow = P.off_probs + (x.rh * t + x.i) * t;
    let doi = seq_at(P.off_dout, x.r, x.i, x.h);
    var delta = 0.0;
    for (var j = 0u; j < t; j++) {
        let p = probs[prow + j];
        if (p != 0.0) {
            delta = fma(p, dot_dq(doi, qkv_at(P.off_qkv, x.r, j, 2u, x.h)), delta);
        }
    }
    aux[id * 3u + 1u] = delta;
    let dq = qkv_at(P.off_out, x.r, x.i, 0u, x.h);
    zero_out(dq);
    for (var j = 0u; j < t; j++) {
        let p = probs[prow + j];
        if (p != 0.0) {
            let ds = p * (dot_dq(doi, qkv_at(P.off_qkv, x.r, j, 2u, x.h)) - delta);
            acc_q(dq, P.scale * ds, qkv_at(P.off_qkv, x.r, j, 1u, x.h));
        }
    }
}

// VJP, cols, one invocation per (r, h, key j), δ_i from the scratch (aux): dk_j = Σ_i dS_ij q_i /
// √dh and dv_j = Σ_i P_ij do_i into dqkv (out).
@compute @workgroup_size(256, 1, 1)
fn attention_vjp_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let id = linear_id(wg, nwg, lid);
    if (id >= P.len) {
        return;
    }
    let t = P.seq;
    let x = rhi(id);
    let j = x.i;
    let vj = qkv_at(P.off_qkv, x.r, j, 2u, x.h);
    let dk = qkv_at(P.off_out, x.r, j, 1u, x.h);
    let dv = qkv_at(P.off_out, x.r, j, 2u, x.h);
    zero_out(dk);
    zero_out(dv);
    for (var i = 0u; i < t; i++) {
        let p = probs[P.off_probs + (x.rh * t + i) * t + j];
        if (p != 0.0) {
            let doi = seq_at(P.off_dout, x.r, i, x.h);
            let delta = aux[(x.rh * t + i) * 3u + 1u];
            let ds = p * (dot_dq(doi, vj) - delta);
            acc_q(dk, P.scale * ds, qkv_at(P.off_qkv, x.r, i, 0u, x.h));
            acc_d(dv, p, doi);
        }
    }
}

// JVP, one invocation per (r, h, i): R{o} (out).
// RS_ij = (Rq_i·k_j + q_i·Rk_j)/√dh, ρ_i = Σ_j P_ij RS_ij, R{o_i} = Σ_j P_ij (RS_ij − ρ_i) v_j +
// P_ij Rv_j.
@compute @workgroup_size(256, 1, 1)
fn attention_jvp(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let id = linear_id(wg, nwg, lid);
    if (id >= P.len) {
        return;
    }
    let t = P.seq;
    let x = rhi(id);
    let prow = P.off_probs + (x.rh * t + x.i) * t;
    let qi = qkv_at(P.off_qkv, x.r, x.i, 0u, x.h);
    let rqi = qkv_at(P.off_rqkv, x.r, x.i, 0u, x.h);
    var rho = 0.0;
    for (var j = 0u; j < t; j++) {
        let p = probs[prow + j];
        if (p != 0.0) {
            let rs = P.scale * (dot_rq(rqi, qkv_at(P.off_qkv, x.r, j, 1u, x.h))
                + dot_rq(qkv_at(P.off_rqkv, x.r, j, 1u, x.h), qi));
            rho = fma(p, rs, rho);
        }
    }
    let ro = seq_at(P.off_out, x.r, x.i, x.h);
    zero_out(ro);
    for (var j = 0u; j < t; j++) {
        let p = probs[prow + j];
        if (p != 0.0) {
            let rs = P.scale * (dot_rq(rqi, qkv_at(P.off_qkv, x.r, j, 1u, x.h))
                + dot_rq(qkv_at(P.off_rqkv, x.r, j, 1u, x.h), qi));
            acc_qr(ro, p * (rs - rho), qkv_at(P.off_qkv, x.r, j, 2u, x.h), p,
                   qkv_at(P.off_rqkv, x.r, j, 2u, x.h));
        }
    }
}

// The per-(i, j) terms of the R-backward: RS, dP, R{dP}.
struct RTerms {
    rs: f32,
    dp: f32,
    rdp: f32,
}

fn r_terms(r: u32, h: u32, i: u32, j: u32) -> RTerms {
    let qi = qkv_at(P.off_qkv, r, i, 0u, h);
    let rqi = qkv_at(P.off_rqkv, r, i, 0u, h);
    let kj = qkv_at(P.off_qkv, r, j, 1u, h);
    let rkj = qkv_at(P.off_rqkv, r, j, 1u, h);
    let vj = qkv_at(P.off_qkv, r, j, 2u, h);
    let rvj = qkv_at(P.off_rqkv, r, j, 2u, h);
    let doi = seq_at(P.off_dout, r, i, h);
    let rdoi = seq_at(P.off_rdout, r, i, h);
    let rs = P.scale * (dot_rq(rqi, kj) + dot_rq(rkj, qi));
    return RTerms(rs, dot_dq(doi, vj), dot_rdq(rdoi, vj) + dot_dr(doi, rvj));
}

// R-backward, rows: R{dq} into R{dqkv} (out) and (ρ_i, δ_i, Rδ_i) into the scratch (aux).
// R{dq_i} = Σ_j (R{dS}_ij k_j + dS_ij Rk_j)/√dh.
@compute @workgroup_size(256, 1, 1)
fn attention_rvjp_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let id = linear_id(wg, nwg, lid);
    if (id >= P.len) {
        return;
    }
    let t = P.seq;
    let x = rhi(id);
    let prow = P.off_probs + (x.rh * t + x.i) * t;
    var rho = 0.0;
    var delta = 0.0;
    for (var j = 0u; j < t; j++) {
        let p = probs[prow + j];
        if (p != 0.0) {
            let v = r_terms(x.r, x.h, x.i, j);
            rho = fma(p, v.rs, rho);
            delta = fma(p, v.dp, delta);
        }
    }
    var rdelta = 0.0;
    for (var j = 0u; j < t; j++) {
        let p = probs[prow + j];
        if (p != 0.0) {
            let v = r_terms(x.r, x.h, x.i, j);
            rdelta += p * (v.rs - rho) * v.dp + p * v.rdp;
        }
    }
    aux[id * 3u] = rho;
    aux[id * 3u + 1u] = delta;
    aux[id * 3u + 2u] = rdelta;
    let rdq = qkv_at(P.off_out, x.r, x.i, 0u, x.h);
    zero_out(rdq);
    for (var j = 0u; j < t; j++) {
        let p = probs[prow + j];
        if (p != 0.0) {
            let v = r_terms(x.r, x.h, x.i, j);
            let rp = p * (v.rs - rho);
            let ds = p * (v.dp - delta);
            let rds = rp * (v.dp - delta) + p * (v.rdp - rdelta);
            acc_qr(rdq, P.scale * rds, qkv_at(P.off_qkv, x.r, j, 1u, x.h), P.scale * ds,
                   qkv_at(P.off_rqkv, x.r, j, 1u, x.h));
        }
    }
}

// R-backward, cols, one invocation per (r, h, key j), the scalars from the scratch (aux):
// R{dk_j} = Σ_i (R{dS}_ij q_i + dS_ij Rq_i)/√dh, R{dv_j} = Σ_i RP_ij do_i + P_ij R{do_i} into
// R{dqkv} (out).
@compute @workgroup_size(256, 1, 1)
fn attention_rvjp_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let id = linear_id(wg, nwg, lid);
    if (id >= P.len) {
        return;
    }
    let t = P.seq;
    let x = rhi(id);
    let j = x.i;
    let rdk = qkv_at(P.off_out, x.r, j, 1u, x.h);
    let rdv = qkv_at(P.off_out, x.r, j, 2u, x.h);
    zero_out(rdk);
    zero_out(rdv);
    for (var i = 0u; i < t; i++) {
        let p = probs[P.off_probs + (x.rh * t + i) * t + j];
        if (p != 0.0) {
            let s = (x.rh * t + i) * 3u;
            let rho = aux[s];
            let delta = aux[s + 1u];
            let rdelta = aux[s + 2u];
            let v = r_terms(x.r, x.h, i, j);
            let rp = p * (v.rs - rho);
            let ds = p * (v.dp - delta);
            let rds = rp * (v.dp - delta) + p * (v.rdp - rdelta);
            acc_qr(rdk, P.scale * rds, qkv_at(P.off_qkv, x.r, i, 0u, x.h), P.scale * ds,
                   qkv_at(P.off_rqkv, x.r, i, 0u, x.h));
            acc_drd(rdv, rp, seq_at(P.off_dout, x.r, i, x.h), p, seq_at(P.off_rdout, x.r, i, x.h));
        }
    }
}
