// Reductions to scalars in two passes, without atomics. Pass 1: each of up to 256 workgroups
// sums a grid-strided slice with Kahan compensation per invocation, then a tree in workgroup
// memory, and writes one partial. Pass 2: one workgroup sums the partials the same way into
// out[off_out]. A dot product over 199,210 f32 terms thus has error ≈ a few ulp of the sum of
// |terms| instead of growing with the length. flags: 0 dot(a, b), 1 count of non-finite a.

var<workgroup> part: array<f32, 256>;

fn term(i: u32) -> f32 {
    let x = in_a[P.off_a + i];
    if (P.flags == 1u) {
        // NaN or ±Inf: all exponent bits set (robust where x != x is optimised away).
        return select(0.0, 1.0, (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u);
    }
    return x * in_b[P.off_b + i];
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
        let y = term(i) - c;
        let t = s + y;
        c = (t - s) - y;
        s = t;
    }
    let total = tree(lid, s);
    if (lid == 0u) {
        out[wg.x] = total;
    }
}

// Sums in_a[0..len) (the partials) into out[off_out].
@compute @workgroup_size(256, 1, 1)
fn reduce_final(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < P.len; i += 256u) {
        s += in_a[i];
    }
    let total = tree(lid, s);
    if (lid == 0u) {
        out[P.off_out] = total;
    }
}
