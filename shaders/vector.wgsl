// Vector kernels, one invocation per element (2-D grid of 256-wide groups), or per column for
// col_sum.

struct VectorParams {
    len: u32,
    rows: u32,
    cols: u32,
    off_x: u32,
    off_y: u32,
    alpha: f32,
    beta: f32,
    pad0: u32,
}

// x: the source (axpy, col_sum); y: the destination, updated in place.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> P: VectorParams;

// y += alpha · x.
@compute @workgroup_size(256, 1, 1)
fn axpy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    y[P.off_y + i] = fma(P.alpha, x[P.off_x + i], y[P.off_y + i]);
}

// y = alpha · y.
@compute @workgroup_size(256, 1, 1)
fn scale(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    y[P.off_y + i] = P.alpha * y[P.off_y + i];
}

// y = 1/√y; 0 where y = 0 or is subnormal (whose 1/√ overflows f32; some GPUs flush it to 0
// anyway); NaN where x < 0 or x is not finite (tested by its bits: WGSL may assume there are no
// NaNs in float comparisons). Twin: `rsqrt` in src/backend/cpu.rs.
@compute @workgroup_size(256, 1, 1)
fn rsqrt(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let v = y[P.off_y + i];
    let bits = bitcast<u32>(v);
    let finite = (bits & 0x7f800000u) != 0x7f800000u;
    let negative = (bits & 0x80000000u) != 0u && (bits & 0x7fffffffu) != 0u;
    if ((bits & 0x7f800000u) == 0u) {
        y[P.off_y + i] = 0.0;
    } else if (finite && !negative) {
        y[P.off_y + i] = 1.0 / sqrt(v);
    } else {
        // A NaN made from the input's bits: a constant NaN is a shader-creation error in WGSL
        // (Chrome's compiler refuses the module; naga accepts it).
        y[P.off_y + i] = bitcast<f32>(bits | 0x7fc00000u);
    }
}

// y = alpha.
@compute @workgroup_size(256, 1, 1)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    y[P.off_y + i] = P.alpha;
}

// y[j] = beta · y[j] + alpha · Σ_r x[r, j]: one invocation per column,
// a compensated sum down the rows (neighbouring invocations read neighbouring addresses).
@compute @workgroup_size(256, 1, 1)
fn col_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let j = linear_id(wg, nwg, lid);
    if (j >= P.cols) {
        return;
    }
    var s = 0.0;
    var c = 0.0;
    for (var r = 0u; r < P.rows; r++) {
        let d = x[P.off_x + r * P.cols + j] - c;
        let t = s + d;
        c = (t - s) - d;
        s = t;
    }
    var v = P.alpha * s;
    if (P.beta != 0.0) {
        v += P.beta * y[P.off_y + j];
    }
    y[P.off_y + j] = v;
}

// y[b, j, i] = x[b, i, j] for matrices of P.rows × P.cols (P.len = their elements).
@compute @workgroup_size(256, 1, 1)
fn transpose_batch(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let d = linear_id(wg, nwg, lid);
    if (d >= P.len) {
        return;
    }
    let rows = P.rows;
    let cols = P.cols;
    let mn = rows * cols;
    let b = d / mn;
    let r = d % mn;
    let j = r / rows;
    let i = r % rows;
    y[P.off_y + d] = x[P.off_x + b * mn + i * cols + j];
}
