// Adam (Kingma & Ba 2015, Algorithm 1) in two kernels: the moments, then the update from them.
// One invocation per parameter (2-D grid of 256-wide groups); every buffer from offset 0.

struct AdamParams {
    len: u32,
    beta1: f32,
    beta2: f32,
    lr: f32,
    // The bias corrections 1 − β₁ᵗ and 1 − β₂ᵗ.
    c1: f32,
    c2: f32,
    eps: f32,
    pad0: u32,
}

// g: the gradient; m, v: the moments; d: the update.
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> m: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> d: array<f32>;
@group(0) @binding(4) var<uniform> P: AdamParams;

// Adam's moments:
// m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g².
@compute @workgroup_size(256, 1, 1)
fn adam_moments(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let gi = g[i];
    m[i] = P.beta1 * m[i] + (1.0 - P.beta1) * gi;
    v[i] = P.beta2 * v[i] + (1.0 - P.beta2) * gi * gi;
}

// Adam's update (η = lr, c₁, c₂ the bias corrections):
// d = η·(m/c₁)/(√(v/c₂) + ε).
@compute @workgroup_size(256, 1, 1)
fn adam_update(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    d[i] = P.lr * (m[i] / P.c1) / (sqrt(v[i] / P.c2) + P.eps);
}
