// Kernels of the 3×3 convolution (im2col and its adjoint); one invocation per output element (2-D
// grid of 256-wide groups). Images are NHWC: P.samples × P.h × P.w × P.c (of the op's input);
// P.len = elements written.

struct ConvParams {
    len: u32,
    h: u32,
    w: u32,
    c: u32,
    samples: u32,
    off_src: u32,
    off_dst: u32,
    beta: f32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> P: ConvParams;

// col (n·h·w × 9c, dst at off_dst) from x (src at off_src): row (s, y, x), column ci·9 + ky·3 + kx.
@compute @workgroup_size(256, 1, 1)
fn im2col3x3(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let h = P.h;
    let w = P.w;
    let c = P.c;
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
        v = src[P.off_src + ((s * h + u32(y)) * w + u32(x)) * c + ci];
    }
    dst[P.off_dst + i] = v;
}

// dx (NHWC, dst at off_dst) = beta·dx + Σ of the col entries (src at off_src) that read the pixel.
@compute @workgroup_size(256, 1, 1)
fn col2im3x3(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let h = P.h;
    let w = P.w;
    let c = P.c;
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
            acc += src[P.off_src + row * k9 + ci * 9u + u32(ky * 3 + kx)];
        }
    }
    var prev = 0.0;
    if (P.beta != 0.0) {
        prev = P.beta * dst[P.off_dst + i];
    }
    dst[P.off_dst + i] = prev + acc;
}
