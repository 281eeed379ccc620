// The activation's kernels, one invocation per element (2-D grid of 256-wide groups). The kind is
// P.act (act_value, d1, d2 in common.wgsl: 0 none, 1 tanh, 2 relu, 3 silu, 4 gelu).

struct ActParams {
    len: u32,
    // bias_act: the row width (the bias's length).
    cols: u32,
    act: u32,
    off_a: u32,
    off_g: u32,
    off_rg: u32,
    off_rz: u32,
    off_bias: u32,
    off_out: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

// a: the activation's cache (σ(z) for tanh and relu, z for silu and gelu: common.wgsl); g: the
// gradient arriving; rg: its R-derivative; rz: R{z}; bias: bias_act's bias; out: the result (in
// place for bias_act and act_inplace).
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> rg: array<f32>;
@group(0) @binding(3) var<storage, read> rz: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> P: ActParams;

// x (rows×cols at off_out, len = rows·cols) ← σ(x + bias[col]) with bias at off_bias.
@compute @workgroup_size(256, 1, 1)
fn bias_act(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let v = out[P.off_out + i] + bias[P.off_bias + i % P.cols];
    var r = v;
    if (P.act != 0u) {
        r = act_value(P.act, v);
    }
    out[P.off_out + i] = r;
}

// out = g ⊙ σ'(z).
@compute @workgroup_size(256, 1, 1)
fn act_d1_mul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    out[P.off_out + i] = g[P.off_g + i] * d1(P.act, a[P.off_a + i]);
}

// out = rg ⊙ σ'(z) + g ⊙ σ''(z) ⊙ rz.
@compute @workgroup_size(256, 1, 1)
fn act_d2_r(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let av = a[P.off_a + i];
    out[P.off_out + i] = rg[P.off_rg + i] * d1(P.act, av) + g[P.off_g + i] * d2(P.act, av) * rz[P.off_rz + i];
}

// x (at off_out) ← σ(x) (act_value in common.wgsl).
@compute @workgroup_size(256, 1, 1)
fn act_inplace(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    out[P.off_out + i] = act_value(P.act, out[P.off_out + i]);
}
