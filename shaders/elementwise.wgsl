// Elementwise kernels, one invocation per element (2-D grid of 256-wide groups). The activation
// kind is in flags (act_value, d1, d2 in common.wgsl).

// x (rows×cols at off_out, cols = n, len = rows·cols) ← σ(x + bias[col]) with bias at off_a.
@compute @workgroup_size(256, 1, 1)
fn bias_act(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let v = out[P.off_out + i] + in_a[P.off_a + i % P.n];
    var r = v;
    if (P.flags != 0u) {
        r = act_value(v);
    }
    out[P.off_out + i] = r;
}

// out = g ⊙ σ'(z): a at off_a, g at off_b.
@compute @workgroup_size(256, 1, 1)
fn act_d1_mul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    out[P.off_out + i] = in_b[P.off_b + i] * d1(in_a[P.off_a + i]);
}

// out = rg ⊙ σ'(z) + g ⊙ σ''(z) ⊙ rz: a, rg, g, rz in slots a, b, c, d.
@compute @workgroup_size(256, 1, 1)
fn act_d2_r(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let a = in_a[P.off_a + i];
    out[P.off_out + i] = in_b[P.off_b + i] * d1(a) + in_c[P.off_c + i] * d2(a) * in_d[P.off_d + i];
}

// y += alpha · x.
@compute @workgroup_size(256, 1, 1)
fn axpy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    out[P.off_out + i] = fma(P.alpha, in_a[P.off_a + i], out[P.off_out + i]);
}

// x = alpha · x.
@compute @workgroup_size(256, 1, 1)
fn scale(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    out[P.off_out + i] = P.alpha * out[P.off_out + i];
}

// x = 1/√x; 0 where x = 0 or is subnormal (whose 1/√ overflows f32; some GPUs flush it to 0
// anyway); NaN where x < 0 or x is not finite (tested by its bits: WGSL may assume there are no
// NaNs in float comparisons). Twin: `rsqrt` in src/backend/cpu.rs.
@compute @workgroup_size(256, 1, 1)
fn rsqrt(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let x = out[P.off_out + i];
    let bits = bitcast<u32>(x);
    let finite = (bits & 0x7f800000u) != 0x7f800000u;
    let negative = (bits & 0x80000000u) != 0u && (bits & 0x7fffffffu) != 0u;
    if ((bits & 0x7f800000u) == 0u) {
        out[P.off_out + i] = 0.0;
    } else if (finite && !negative) {
        out[P.off_out + i] = 1.0 / sqrt(x);
    } else {
        // A NaN made from the input's bits: a constant NaN is a shader-creation error in WGSL
        // (Chrome's compiler refuses the module; naga accepts it).
        out[P.off_out + i] = bitcast<f32>(bits | 0x7fc00000u);
    }
}

// Adam's moments (out = m, out2 = v, in_a = g; beta = β₁, scale = β₂):
// m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g².
@compute @workgroup_size(256, 1, 1)
fn adam_moments(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let g = in_a[i];
    out[i] = P.beta * out[i] + (1.0 - P.beta) * g;
    out2[i] = P.scale * out2[i] + (1.0 - P.scale) * g * g;
}

// Adam's update (in_a = m, in_b = v, out = d; alpha = η, beta = c₁, scale = c₂, pad = ε):
// d = η·(m/c₁)/(√(v/c₂) + ε).
@compute @workgroup_size(256, 1, 1)
fn adam_update(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    out[i] = P.alpha * (in_a[i] / P.beta) / (sqrt(in_b[i] / P.scale) + P.pad);
}

// x = alpha.
@compute @workgroup_size(256, 1, 1)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    out[P.off_out + i] = P.alpha;
}

// dst[j] = beta · dst[j] + alpha · Σ_r src[r, j] (rows = m, cols = n): one invocation per column,
// a compensated sum down the rows (neighbouring invocations read neighbouring addresses).
@compute @workgroup_size(256, 1, 1)
fn col_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let j = linear_id(wg, nwg, lid);
    if (j >= P.n) {
        return;
    }
    var s = 0.0;
    var c = 0.0;
    for (var r = 0u; r < P.m; r++) {
        let y = in_a[P.off_a + r * P.n + j] - c;
        let t = s + y;
        c = (t - s) - y;
        s = t;
    }
    var v = P.alpha * s;
    if (P.beta != 0.0) {
        v += P.beta * out[P.off_out + j];
    }
    out[P.off_out + j] = v;
}
