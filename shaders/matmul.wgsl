// C (m×n at off_c) = alpha · op(A) · op(B) + beta · C, row-major; flags bit 0: A transposed
// (stored k×m), bit 1: B transposed (stored n×k). Batched (flags bit 3): workgroup z computes
// product z, its A at off_a + z·stride_a, B at off_b + z·stride_b, C at off_c + z·stride_c (a
// stride 0 shares an operand) — the b directions of a block HVP in one dispatch.
//
// Register-blocked tiling: a 16×16 workgroup computes a 64×64 tile of C, each invocation a 4×4
// block held in four vec4 registers; the K dimension advances in slices of 16, staged through
// workgroup memory (2 × 16×64 floats = 8 KiB). Per staged k, an invocation reads one vec4 of A and
// one of B and does 4 vec4 FMAs (16 multiply-adds): vector operations, not indexed private arrays,
// which software rasterisers (llvmpipe) and GPUs alike keep in registers.
//
// Bindings: a, b (read), c (read-write); the matrix–vector kernels read x from b and write y to
// c, gemm_reduce reads the split-K partials from a.

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    off_a: u32,
    off_b: u32,
    off_c: u32,
    // Split-K: the K slice of one workgroup z (a multiple of 16), and the slices gemm_reduce sums.
    slice: u32,
    slices: u32,
    // Batched: the step between consecutive products' A, B and C.
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    alpha: f32,
    beta: f32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> P: MatmulParams;

const TILE: u32 = 64u;
const KT: u32 = 16u;

// Staged slices, four consecutive rows (of A) or columns (of B) per vec4 so the inner product
// reads vectors: As[kk * 16 + r4][i] is A[row0 + 4·r4 + i, k0 + kk].
var<workgroup> As: array<vec4<f32>, 256>;
var<workgroup> Bs: array<vec4<f32>, 256>;

fn load_a(off: u32, row: u32, kk: u32) -> f32 {
    if (row >= P.m || kk >= P.k) {
        return 0.0;
    }
    if ((P.flags & 1u) != 0u) {
        return a[off + kk * P.m + row];
    }
    return a[off + row * P.k + kk];
}

fn load_b(off: u32, kk: u32, col: u32) -> f32 {
    if (kk >= P.k || col >= P.n) {
        return 0.0;
    }
    if ((P.flags & 2u) != 0u) {
        return b[off + col * P.k + kk];
    }
    return b[off + kk * P.n + col];
}

fn store(off: u32, row: u32, col: u32, v: f32) {
    if (row < P.m && col < P.n) {
        let idx = off + row * P.n + col;
        var r = P.alpha * v;
        if (P.beta != 0.0) {
            r += P.beta * c[idx];
        }
        c[idx] = r;
    }
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
    // The 4×4 block of C in registers: row i of the block in c_i.
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    // Split-K (flags bit 2; the host splits any K over 16,384, because a software rasteriser —
    // lavapipe — cuts a shader loop after a few thousand iterations, and a long K over few
    // output tiles, for parallelism): workgroup z multiplies the K slice [z·len, (z+1)·len) (len
    // a multiple of 16) and writes α·(its partial product) to slot z of the scratch bound as
    // `c`; gemm_reduce sums the slots into C.
    let split = (P.flags & 4u) != 0u;
    var oa = P.off_a;
    var ob = P.off_b;
    var oo = P.off_c;
    if ((P.flags & 8u) != 0u) {
        oa += wg.z * P.stride_a;
        ob += wg.z * P.stride_b;
        oo += wg.z * P.stride_c;
    }
    var kb = 0u;
    var ke = P.k;
    if (split) {
        kb = wg.z * P.slice;
        ke = min(P.k, kb + P.slice);
    }
    for (var k0 = kb; k0 < ke; k0 += KT) {
        // 256 invocations stage 1024 elements of each operand, 4 each; consecutive invocations
        // read consecutive addresses in both the plain and the transposed layout.
        for (var r = 0u; r < 4u; r++) {
            let e = r * 256u + t;
            var ar: u32;
            var ak: u32;
            if (a_t) {
                ar = e % TILE;
                ak = e / TILE;
            } else {
                ak = e % KT;
                ar = e / KT;
            }
            As[ak * 16u + ar / 4u][ar % 4u] = load_a(oa, row0 + ar, k0 + ak);
            var bc: u32;
            var bk: u32;
            if (b_t) {
                bk = e % KT;
                bc = e / KT;
            } else {
                bc = e % TILE;
                bk = e / TILE;
            }
            Bs[bk * 16u + bc / 4u][bc % 4u] = load_b(ob, k0 + bk, col0 + bc);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            let av = As[kk * 16u + ty];
            let bv = Bs[kk * 16u + tx];
            c0 = fma(vec4<f32>(av.x), bv, c0);
            c1 = fma(vec4<f32>(av.y), bv, c1);
            c2 = fma(vec4<f32>(av.z), bv, c2);
            c3 = fma(vec4<f32>(av.w), bv, c3);
        }
        workgroupBarrier();
    }
    let r = row0 + ty * 4u;
    let col = col0 + tx * 4u;
    if (split) {
        let base = P.off_c + wg.z * P.m * P.n;
        for (var j = 0u; j < 4u; j++) {
            let cj = col + j;
            if (cj < P.n) {
                let v = vec4<f32>(c0[j], c1[j], c2[j], c3[j]);
                for (var i = 0u; i < 4u; i++) {
                    if (r + i < P.m) {
                        c[base + (r + i) * P.n + cj] = P.alpha * v[i];
                    }
                }
            }
        }
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        store(oo, r, col + j, c0[j]);
        store(oo, r + 1u, col + j, c1[j]);
        store(oo, r + 2u, col + j, c2[j]);
        store(oo, r + 3u, col + j, c3[j]);
    }
}

// y (m at off_c in c) = alpha · A (m×k at off_a) · x (k at off_b in b) + beta · y: one workgroup per row,
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
    var comp = 0.0;
    for (var l = lid; l < P.k; l += 256u) {
        let y = a[P.off_a + row * P.k + l] * b[P.off_b + l] - comp;
        let t = s + y;
        comp = (t - s) - y;
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
            v += P.beta * c[P.off_c + row];
        }
        c[P.off_c + row] = v;
    }
}

// y (m at off_c) = alpha · Aᵀ · x + beta · y with A stored k×m: one invocation per output,
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
        s = fma(a[P.off_a + l * P.m + j], b[P.off_b + l], s);
    }
    var v = P.alpha * s;
    if (P.beta != 0.0) {
        v += P.beta * c[P.off_c + j];
    }
    c[P.off_c + j] = v;
}

// C (m×n at off_c) = Σ_z slot z of the split-K partials (a, `slices` slots of m·n at off_a)
// + beta · C: the second pass of the parallel split-K matmul.
@compute @workgroup_size(256, 1, 1)
fn gemm_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    let mn = P.m * P.n;
    if (i >= mn) {
        return;
    }
    var s = 0.0;
    for (var z = 0u; z < P.slices; z++) {
        s += a[P.off_a + z * mn + i];
    }
    let idx = P.off_c + i;
    if (P.beta != 0.0) {
        s += P.beta * c[idx];
    }
    c[idx] = s;
}
