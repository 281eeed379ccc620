// C (m×n at off_out) = alpha · op(A) · op(B) + beta · C, row-major; flags bit 0: A transposed
// (stored k×m), bit 1: B transposed (stored n×k).
//
// Register-blocked tiling: a 16×16 workgroup computes a 64×64 tile of C, each invocation a 4×4
// block held in registers; the K dimension advances in slices of 16, staged through workgroup
// memory (2 × 16×64 floats = 8 KiB). Each staged element is reused 4× from registers per FMA
// row, and the loads of A and B are arranged so neighbouring invocations read neighbouring
// addresses in both the plain and the transposed layouts.

const TILE: u32 = 64u;
const KT: u32 = 16u;

var<workgroup> As: array<f32, 1024>; // [KT][TILE]: As[kk * 64 + row]
var<workgroup> Bs: array<f32, 1024>; // [KT][TILE]: Bs[kk * 64 + col]

fn load_a(row: u32, kk: u32) -> f32 {
    if (row >= P.m || kk >= P.k) {
        return 0.0;
    }
    if ((P.flags & 1u) != 0u) {
        return in_a[P.off_a + kk * P.m + row];
    }
    return in_a[P.off_a + row * P.k + kk];
}

fn load_b(kk: u32, col: u32) -> f32 {
    if (kk >= P.k || col >= P.n) {
        return 0.0;
    }
    if ((P.flags & 2u) != 0u) {
        return in_b[P.off_b + col * P.k + kk];
    }
    return in_b[P.off_b + kk * P.n + col];
}

@compute @workgroup_size(16, 16, 1)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    let a_t = (P.flags & 1u) != 0u;
    let b_t = (P.flags & 2u) != 0u;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    var k0 = 0u;
    loop {
        if (k0 >= P.k) {
            break;
        }
        // 256 invocations stage 1024 elements of each operand, 4 each.
        for (var r = 0u; r < 4u; r++) {
            let e = r * 256u + t;
            // Plain A: walk k fastest (contiguous in memory); transposed A: walk rows fastest.
            var ar: u32;
            var ak: u32;
            if (a_t) {
                ar = e % TILE;
                ak = e / TILE;
            } else {
                ak = e % KT;
                ar = e / KT;
            }
            As[ak * TILE + ar] = load_a(row0 + ar, k0 + ak);
            var bc: u32;
            var bk: u32;
            if (b_t) {
                bk = e % KT;
                bc = e / KT;
            } else {
                bc = e % TILE;
                bk = e / TILE;
            }
            Bs[bk * TILE + bc] = load_b(k0 + bk, col0 + bc);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = As[kk * TILE + ty * 4u + i];
                b[i] = Bs[kk * TILE + tx * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(a[i], b[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
        k0 += KT;
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + ty * 4u + i;
        if (row >= P.m) {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + tx * 4u + j;
            if (col >= P.n) {
                continue;
            }
            let idx = P.off_out + row * P.n + col;
            var v = P.alpha * acc[i * 4u + j];
            if (P.beta != 0.0) {
                v += P.beta * out[idx];
            }
            out[idx] = v;
        }
    }
}

// y (m at off_out) = alpha · A (m×k at off_a) · x (k at off_b) + beta · y: one workgroup per row,
// each invocation a compensated (Kahan) partial sum over a strided slice, then a tree in
// workgroup memory. For the reorthogonalisation against the Lanczos basis (k = 199,210).
var<workgroup> red: array<f32, 256>;
var<workgroup> red_c: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn gemv_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= P.m) {
        return; // uniform across the workgroup
    }
    var s = 0.0;
    var c = 0.0;
    for (var l = lid; l < P.k; l += 256u) {
        let y = in_a[P.off_a + row * P.k + l] * in_b[P.off_b + l] - c;
        let t = s + y;
        c = (t - s) - y;
        s = t;
    }
    red[lid] = s;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if (lid < w) {
            red[lid] += red[lid + w];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        var v = P.alpha * red[0];
        if (P.beta != 0.0) {
            v += P.beta * out[P.off_out + row];
        }
        out[P.off_out + row] = v;
    }
}

// y (m at off_out) = alpha · Aᵀ · x + beta · y with A stored k×m: one invocation per output,
// reading rows of A in order (coalesced), k small (the basis size).
@compute @workgroup_size(256, 1, 1)
fn gemv_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let j = linear_id(wg, nwg, lid);
    if (j >= P.m) {
        return;
    }
    var s = 0.0;
    for (var l = 0u; l < P.k; l++) {
        s = fma(in_a[P.off_a + l * P.m + j], in_b[P.off_b + l], s);
    }
    var v = P.alpha * s;
    if (P.beta != 0.0) {
        v += P.beta * out[P.off_out + j];
    }
    out[P.off_out + j] = v;
}
