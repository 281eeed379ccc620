// Losses on rows×cols outputs (cols ≤ 64) against targets; P.kind: 0 MSE, 1 CE.

struct LossParams {
    rows: u32,
    cols: u32,
    // 0 MSE, 1 CE.
    kind: u32,
    off_y: u32,
    off_w: u32,
    off_grad: u32,
    scale: f32,
    pad0: u32,
}

// y: the network's outputs; w: the targets (loss_grad) or the direction R{y} (loss_hess_mul);
// grad: ∂ℓ/∂y or R{∂ℓ/∂y}; stats: (Σ ℓ, #correct), accumulated (loss_grad).
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<uniform> P: LossParams;

var<workgroup> s_loss: array<f32, 256>;
var<workgroup> s_hit: array<f32, 256>;

// grad = scale · ∂ℓ/∂y for every row; stats (2 entries) += (Σ ℓ, #correct).
// One workgroup loops over the rows (a chunk's outputs are tiny), each invocation keeping its own
// sums, then a tree reduction: no atomics needed.
@compute @workgroup_size(256, 1, 1)
fn loss_grad(@builtin(local_invocation_index) lid: u32) {
    var loss = 0.0;
    var hits = 0.0;
    let n = P.cols;
    for (var r = lid; r < P.rows; r += 256u) {
        let o = P.off_y + r * n;
        let t = P.off_w + r * n;
        let g = P.off_grad + r * n;
        var best_o = 0u;
        var best_t = 0u;
        var mx = y[o];
        for (var j = 1u; j < n; j++) {
            if (y[o + j] > y[o + best_o]) {
                best_o = j;
            }
            if (w[t + j] > w[t + best_t]) {
                best_t = j;
            }
            mx = max(mx, y[o + j]);
        }
        hits += select(0.0, 1.0, best_o == best_t);
        if (P.kind == 0u) {
            for (var j = 0u; j < n; j++) {
                let d = y[o + j] - w[t + j];
                loss += 0.5 * d * d;
                grad[g + j] = P.scale * d;
            }
        } else {
            var se = 0.0;
            var tsum = 0.0;
            for (var j = 0u; j < n; j++) {
                se += exp(y[o + j] - mx);
                tsum += w[t + j];
            }
            let lse = mx + log(se);
            for (var j = 0u; j < n; j++) {
                let p = exp(y[o + j] - lse);
                loss -= w[t + j] * (y[o + j] - lse);
                grad[g + j] = P.scale * (tsum * p - w[t + j]);
            }
        }
    }
    s_loss[lid] = loss;
    s_hit[lid] = hits;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if (lid < w) {
            s_loss[lid] += s_loss[lid + w];
            s_hit[lid] += s_hit[lid + w];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        stats[0] += s_loss[0];
        stats[1] += s_hit[0];
    }
}

// rgrad = scale · ∇²ℓ(out) · rout per row: MSE scale · rout; CE scale · p ⊙ (r − p·r).
@compute @workgroup_size(256, 1, 1)
fn loss_hess_mul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let r = linear_id(wg, nwg, lid);
    if (r >= P.rows) {
        return;
    }
    let n = P.cols;
    let o = P.off_y + r * n;
    let ro = P.off_w + r * n;
    let g = P.off_grad + r * n;
    if (P.kind == 0u) {
        for (var j = 0u; j < n; j++) {
            grad[g + j] = P.scale * w[ro + j];
        }
        return;
    }
    var mx = y[o];
    for (var j = 1u; j < n; j++) {
        mx = max(mx, y[o + j]);
    }
    var se = 0.0;
    for (var j = 0u; j < n; j++) {
        se += exp(y[o + j] - mx);
    }
    var pr = 0.0;
    for (var j = 0u; j < n; j++) {
        pr += exp(y[o + j] - mx) / se * w[ro + j];
    }
    for (var j = 0u; j < n; j++) {
        let p = exp(y[o + j] - mx) / se;
        grad[g + j] = P.scale * p * (w[ro + j] - pr);
    }
}
