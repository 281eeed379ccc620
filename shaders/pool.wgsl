// The 2×2 max pooling's kernels (stride 2); one invocation per output element (2-D grid of
// 256-wide groups). Images are NHWC: P.h × P.w × P.c per sample (of the pooling's input);
// P.len = elements written.

struct PoolParams {
    len: u32,
    h: u32,
    w: u32,
    c: u32,
    off_idx: u32,
    off_src: u32,
    off_out: u32,
    off_idx_out: u32,
}

// idx: the window position of each pooled element's maximum (0..4, as f32); src: the input
// (maxpool2, pool2_gather) or the gradient at the pooled outputs (pool2_scatter); out: the result;
// idx_out: maxpool2's idx.
@group(0) @binding(0) var<storage, read> idx: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> idx_out: array<f32>;
@group(0) @binding(4) var<uniform> P: PoolParams;

// Input offset of window position pos of pooled element o.
fn pool_src(o: u32, pos: u32) -> u32 {
    let h = P.h;
    let w = P.w;
    let c = P.c;
    let hq = h / 2u;
    let wq = w / 2u;
    let k = o % c;
    let pix = o / c;
    let s = pix / (hq * wq);
    let p = pix % (hq * wq);
    let yq = p / wq;
    let xq = p % wq;
    return ((s * h + 2u * yq + pos / 2u) * w + 2u * xq + pos % 2u) * c + k;
}

// out = 2×2 max of src; idx_out = window position of the first maximum.
@compute @workgroup_size(256, 1, 1)
fn maxpool2(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let o = linear_id(wg, nwg, lid);
    if (o >= P.len) {
        return;
    }
    var best = src[P.off_src + pool_src(o, 0u)];
    var at = 0u;
    for (var pos = 1u; pos < 4u; pos++) {
        let v = src[P.off_src + pool_src(o, pos)];
        if (v > best) {
            best = v;
            at = pos;
        }
    }
    out[P.off_out + o] = best;
    idx_out[P.off_idx_out + o] = f32(at);
}

// out = src at the arg-max held in idx.
@compute @workgroup_size(256, 1, 1)
fn pool2_gather(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let o = linear_id(wg, nwg, lid);
    if (o >= P.len) {
        return;
    }
    let pos = u32(idx[P.off_idx + o]);
    out[P.off_out + o] = src[P.off_src + pool_src(o, pos)];
}

// dx (out, input geometry) = gy (src) at the arg-max in idx, zero elsewhere.
@compute @workgroup_size(256, 1, 1)
fn pool2_scatter(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let h = P.h;
    let w = P.w;
    let c = P.c;
    let k = i % c;
    let pix = i / c;
    let s = pix / (h * w);
    let p = pix % (h * w);
    let y = p / w;
    let x = p % w;
    let o = ((s * (h / 2u) + y / 2u) * (w / 2u) + x / 2u) * c + k;
    let pos = (y % 2u) * 2u + x % 2u;
    var v = 0.0;
    if (u32(idx[P.off_idx + o]) == pos) {
        v = src[P.off_src + o];
    }
    out[P.off_out + i] = v;
}
