// Losses on rows×cols outputs (m = rows, n = cols ≤ 64) against targets; flags: 0 MSE, 1 CE.

var<workgroup> s_loss: array<f32, 256>;
var<workgroup> s_hit: array<f32, 256>;

// grad = scale · ∂ℓ/∂out (slot out) for every row; stats (slot out2, 2 entries) += (Σ ℓ, #correct).
// One workgroup loops over the rows (a chunk's outputs are tiny), each invocation keeping its own
// sums, then a tree reduction: no atomics needed.
@compute @workgroup_size(256, 1, 1)
fn loss_grad(@builtin(local_invocation_index) lid: u32) {
    var loss = 0.0;
    var hits = 0.0;
    let n = P.n;
    for (var r = lid; r < P.m; r += 256u) {
        let o = P.off_a + r * n;
        let t = P.off_b + r * n;
        let g = P.off_out + r * n;
        var best_o = 0u;
        var best_t = 0u;
        var mx = in_a[o];
        for (var j = 1u; j < n; j++) {
            if (in_a[o + j] > in_a[o + best_o]) {
                best_o = j;
            }
            if (in_b[t + j] > in_b[t + best_t]) {
                best_t = j;
            }
            mx = max(mx, in_a[o + j]);
        }
        hits += select(0.0, 1.0, best_o == best_t);
        if (P.flags == 0u) {
            for (var j = 0u; j < n; j++) {
                let d = in_a[o + j] - in_b[t + j];
                loss += 0.5 * d * d;
                out[g + j] = P.scale * d;
            }
        } else {
            var se = 0.0;
            var tsum = 0.0;
            for (var j = 0u; j < n; j++) {
                se += exp(in_a[o + j] - mx);
                tsum += in_b[t + j];
            }
            let lse = mx + log(se);
            for (var j = 0u; j < n; j++) {
                let p = exp(in_a[o + j] - lse);
                loss -= in_b[t + j] * (in_a[o + j] - lse);
                out[g + j] = P.scale * (tsum * p - in_b[t + j]);
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
        out2[0] += s_loss[0];
        out2[1] += s_hit[0];
    }
}

// rgrad = scale · ∇²ℓ(out) · rout per row: MSE scale · rout; CE scale · p ⊙ (r − p·r).
@compute @workgroup_size(256, 1, 1)
fn loss_hess_mul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let r = linear_id(wg, nwg, lid);
    if (r >= P.m) {
        return;
    }
    let n = P.n;
    let o = P.off_a + r * n;
    let ro = P.off_b + r * n;
    let g = P.off_out + r * n;
    if (P.flags == 0u) {
        for (var j = 0u; j < n; j++) {
            out[g + j] = P.scale * in_b[ro + j];
        }
        return;
    }
    var mx = in_a[o];
    for (var j = 1u; j < n; j++) {
        mx = max(mx, in_a[o + j]);
    }
    var se = 0.0;
    for (var j = 0u; j < n; j++) {
        se += exp(in_a[o + j] - mx);
    }
    var pr = 0.0;
    for (var j = 0u; j < n; j++) {
        pr += exp(in_a[o + j] - mx) / se * in_b[ro + j];
    }
    for (var j = 0u; j < n; j++) {
        let p = exp(in_a[o + j] - mx) / se;
        out[g + j] = P.scale * p * (in_b[ro + j] - pr);
    }
}
