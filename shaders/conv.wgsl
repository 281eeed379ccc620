// Kernels of the convolution, pooling, flatten and activation ops; one invocation per output
// element (2-D grid of 256-wide groups). Images are NHWC: P.aux = samples, P.m = height,
// P.n = width, P.k = channels (of the op's input). P.len = elements written.

// x (at off_out) ← σ(x) (act_value in common.wgsl).
@compute @workgroup_size(256, 1, 1)
fn act_inplace(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    out[P.off_out + i] = act_value(out[P.off_out + i]);
}

// col (n·h·w × 9c at off_out) from x (at off_a): row (s, y, x), column ci·9 + ky·3 + kx.
@compute @workgroup_size(256, 1, 1)
fn im2col3x3(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let h = P.m;
    let w = P.n;
    let c = P.k;
    let k9 = 9u * c;
    let row = i / k9;
    let j = i % k9;
    let ci = j / 9u;
    let t = j % 9u;
    let ky = t / 3u;
    let kx = t % 3u;
    let s = row / (h * w);
    let p = row % (h * w);
    let y = i32(p / w) + i32(ky) - 1;
    let x = i32(p % w) + i32(kx) - 1;
    var v = 0.0;
    if (y >= 0 && y < i32(h) && x >= 0 && x < i32(w)) {
        v = in_a[P.off_a + ((s * h + u32(y)) * w + u32(x)) * c + ci];
    }
    out[P.off_out + i] = v;
}

// dx (NHWC at off_out) = beta·dx + Σ of the col entries (at off_a) that read the pixel.
@compute @workgroup_size(256, 1, 1)
fn col2im3x3(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let h = P.m;
    let w = P.n;
    let c = P.k;
    let k9 = 9u * c;
    let ci = i % c;
    let pix = i / c;
    let s = pix / (h * w);
    let p = pix % (h * w);
    let y = i32(p / w);
    let x = i32(p % w);
    var acc = 0.0;
    for (var ky = 0; ky < 3; ky++) {
        let yo = y - ky + 1;
        if (yo < 0 || yo >= i32(h)) {
            continue;
        }
        for (var kx = 0; kx < 3; kx++) {
            let xo = x - kx + 1;
            if (xo < 0 || xo >= i32(w)) {
                continue;
            }
            let row = (s * h + u32(yo)) * w + u32(xo);
            acc += in_a[P.off_a + row * k9 + ci * 9u + u32(ky * 3 + kx)];
        }
    }
    var prev = 0.0;
    if (P.beta != 0.0) {
        prev = P.beta * out[P.off_out + i];
    }
    out[P.off_out + i] = prev + acc;
}

// Input offset of window position pos of pooled element o.
fn pool_src(o: u32, pos: u32) -> u32 {
    let h = P.m;
    let w = P.n;
    let c = P.k;
    let hq = h / 2u;
    let wq = w / 2u;
    let k = o % c;
    let pix = o / c;
    let s = pix / (hq * wq);
    let p = pix % (hq * wq);
    let yq = p / wq;
    let xq = p % wq;
    return ((s * h + 2u * yq + pos / 2u) * w + 2u * xq + pos % 2u) * c + k;
}

// out (off_out) = 2×2 max of x (off_a); out2 (off_d) = window position of the first maximum.
@compute @workgroup_size(256, 1, 1)
fn maxpool2(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let o = linear_id(wg, nwg, lid);
    if (o >= P.len) {
        return;
    }
    var best = in_a[P.off_a + pool_src(o, 0u)];
    var at = 0u;
    for (var pos = 1u; pos < 4u; pos++) {
        let v = in_a[P.off_a + pool_src(o, pos)];
        if (v > best) {
            best = v;
            at = pos;
        }
    }
    out[P.off_out + o] = best;
    out2[P.off_d + o] = f32(at);
}

// out (off_out) = src (off_b) at the arg-max held in idx (off_a).
@compute @workgroup_size(256, 1, 1)
fn pool2_gather(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let o = linear_id(wg, nwg, lid);
    if (o >= P.len) {
        return;
    }
    let pos = u32(in_a[P.off_a + o]);
    out[P.off_out + o] = in_b[P.off_b + pool_src(o, pos)];
}

// dx (off_out, input geometry) = gy (off_b) at the arg-max in idx (off_a), zero elsewhere.
@compute @workgroup_size(256, 1, 1)
fn pool2_scatter(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let h = P.m;
    let w = P.n;
    let c = P.k;
    let k = i % c;
    let pix = i / c;
    let s = pix / (h * w);
    let p = pix % (h * w);
    let y = p / w;
    let x = p % w;
    let o = ((s * (h / 2u) + y / 2u) * (w / 2u) + x / 2u) * c + k;
    let pos = (y % 2u) * 2u + x % 2u;
    var v = 0.0;
    if (u32(in_a[P.off_a + o]) == pos) {
        v = in_b[P.off_b + o];
    }
    out[P.off_out + i] = v;
}

// dst[b, j, i] = src[b, i, j] for P.aux matrices of P.m rows × P.n cols.
@compute @workgroup_size(256, 1, 1)
fn transpose_batch(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let d = linear_id(wg, nwg, lid);
    if (d >= P.len) {
        return;
    }
    let rows = P.m;
    let cols = P.n;
    let mn = rows * cols;
    let b = d / mn;
    let r = d % mn;
    let j = r / rows;
    let i = r % rows;
    out[P.off_out + d] = in_a[P.off_a + b * mn + i * cols + j];
}
