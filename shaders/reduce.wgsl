// Reductions to scalars in two passes, without atomics. Pass 1: each of up to 256 workgroups
// sums a grid-strided slice with Kahan compensation per invocation, then a tree in workgroup
// memory, and writes one partial. Pass 2: one workgroup sums the partials the same way into
// out[off_out]. A dot product over 199,210 f32 terms thus has error ≈ a few ulp of the sum of
// |terms| instead of growing with the length. flags: 0 dot(x, y), 1 count of non-finite x.

struct ReduceParams {
    len: u32,
    flags: u32,
    off_x: u32,
    off_y: u32,
    off_out: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

// x, y: the vectors (pass 2 reads the partials from x, from 0); out: the partials (pass 1, from 0)
// or the result (pass 2, at off_out).
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> P: ReduceParams;

var<workgroup> part: array<f32, 256>;

fn term(i: u32) -> f32 {
    let v = x[P.off_x + i];
    if (P.flags == 1u) {
        // NaN or ±Inf: all exponent bits set (robust where x != x is optimised away).
        return select(0.0, 1.0, (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u);
    }
    return v * y[P.off_y + i];
}

fn tree(lid: u32, v: f32) -> f32 {
    part[lid] = v;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if (lid < w) {
            part[lid] += part[lid + w];
        }
        workgroupBarrier();
    }
    return part[0];
}

@compute @workgroup_size(256, 1, 1)
fn reduce_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let stride = nwg.x * 256u;
    var s = 0.0;
    var c = 0.0;
    for (var i = wg.x * 256u + lid; i < P.len; i += stride) {
        let d = term(i) - c;
        let t = s + d;
        c = (t - s) - d;
        s = t;
    }
    let total = tree(lid, s);
    if (lid == 0u) {
        out[wg.x] = total;
    }
}

// Sums x[0..len) (the partials) into out[off_out].
@compute @workgroup_size(256, 1, 1)
fn reduce_final(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < P.len; i += 256u) {
        s += x[i];
    }
    let total = tree(lid, s);
    if (lid == 0u) {
        out[P.off_out] = total;
    }
}
