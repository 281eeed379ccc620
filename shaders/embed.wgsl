// The embedding and the mean pooling over positions (twins of their kernels in src/backend/cpu);
// the math of each is on its Backend method. A batch is [rows, T, D] row-major; token ids are f32
// scalars, a position is padding when its id is 0 (P.masked = 1 excludes them from the mean).
// One invocation per output element (2-D grid of 256-wide groups, linear_id); no atomics.

struct EmbedParams {
    len: u32,
    // T, D.
    seq: u32,
    width: u32,
    masked: u32,
    off_ids: u32,
    off_src: u32,
    // embed: the position rows in src.
    off_pos: u32,
    off_out: u32,
}

// ids: token ids (embed_grad: the first position of each token in order, from 0); order: the
// positions sorted by token (embed_grad, from 0); src: the table (embed), the gradient at the
// outputs (embed_grad, seq_mean_adjoint), the sequences (seq_mean); out: the result.
@group(0) @binding(0) var<storage, read> ids: array<f32>;
@group(0) @binding(1) var<storage, read> order: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> P: EmbedParams;

// out[r, t, j] = table[tok + id·D + j] + table[pos + t·D + j]: the table in src (token rows at
// off_src, positions at off_pos); P.len = rows·T·D.
@compute @workgroup_size(256, 1, 1)
fn embed(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wg, nwg, lid);
    if (e >= P.len) {
        return;
    }
    let d = P.width;
    let p = e / d;
    let j = e % d;
    let t = p % P.seq;
    let id = u32(ids[P.off_ids + p]);
    out[P.off_out + e] = src[P.off_src + id * d + j] + src[P.off_pos + t * d + j];
}

// out[tok + v·D + j] += Σ_{p ∈ start[v]..start[v+1]} gy[order[p]·D + j]: start in ids, order in
// order (both from 0), gy in src at off_src, out at off_out; P.len = vocab·D. A compensated sum
// in the order of `order` (a padding id can gather thousands of positions).
@compute @workgroup_size(256, 1, 1)
fn embed_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wg, nwg, lid);
    if (e >= P.len) {
        return;
    }
    let d = P.width;
    let v = e / d;
    let j = e % d;
    let a = u32(ids[v]);
    let b = u32(ids[v + 1u]);
    if (a >= b) {
        return;
    }
    var s = 0.0;
    var c = 0.0;
    for (var p = a; p < b; p++) {
        let y = src[P.off_src + u32(order[p]) * d + j] - c;
        let t = s + y;
        c = (t - s) - y;
        s = t;
    }
    out[P.off_out + e] = out[P.off_out + e] + s;
}

// Kept positions of sequence r: the pooling weight's denominator, T unmasked.
fn pool_count(r: u32) -> u32 {
    let t = P.seq;
    if (P.masked == 0u) {
        return t;
    }
    var n = 0u;
    for (var p = 0u; p < t; p++) {
        if (ids[P.off_ids + r * t + p] != 0.0) {
            n++;
        }
    }
    return n;
}

fn pool_keep(r: u32, p: u32) -> bool {
    return P.masked == 0u || ids[P.off_ids + r * P.seq + p] != 0.0;
}

// out[r, j] = Σ_t w_rt x[r, t, j] (w_rt = 1/#kept at kept positions, 0 elsewhere; 0 for a
// sequence of padding only): x in src; P.len = rows·D.
@compute @workgroup_size(256, 1, 1)
fn seq_mean(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wg, nwg, lid);
    if (e >= P.len) {
        return;
    }
    let d = P.width;
    let t = P.seq;
    let r = e / d;
    let j = e % d;
    let n = pool_count(r);
    var s = 0.0;
    if (n > 0u) {
        let w = 1.0 / f32(n);
        for (var p = 0u; p < t; p++) {
            if (pool_keep(r, p)) {
                s = fma(w, src[P.off_src + (r * t + p) * d + j], s);
            }
        }
    }
    out[P.off_out + e] = s;
}

// dx[r, t, j] = w_rt dy[r, j] (overwritten): dy in src; P.len = rows·T·D.
@compute @workgroup_size(256, 1, 1)
fn seq_mean_adjoint(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wg, nwg, lid);
    if (e >= P.len) {
        return;
    }
    let d = P.width;
    let t = P.seq;
    let j = e % d;
    let rp = e / d;
    let r = rp / t;
    let p = rp % t;
    var v = 0.0;
    if (pool_keep(r, p)) {
        v = (1.0 / f32(pool_count(r))) * src[P.off_src + r * d + j];
    }
    out[P.off_out + e] = v;
}
