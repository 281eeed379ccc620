// Kernels of the convolution (im2col and its adjoint); one invocation per output element (2-D
// grid of 256-wide groups). Images are NHWC: P.samples × P.h × P.w × P.c (of the op's input);
// P.len = elements written. The geometry is a value: a P.kernel × P.kernel window, P.stride
// apart, P.padding zeros on each side, giving P.oh × P.ow output pixels (the general entry
// points `im2col` and `col2im`); `im2col3x3` and `col2im3x3` are the same maps for 3×3, stride 1,
// padding 1 with the geometry as constants (the CNN's convolutions, kept at their speed: the
// divisions by 9 and 3 compile to multiplications, the 3×3 loop unrolls).

struct ConvParams {
    len: u32,
    h: u32,
    w: u32,
    c: u32,
    samples: u32,
    off_src: u32,
    off_dst: u32,
    beta: f32,
    kernel: u32,
    stride: u32,
    padding: u32,
    oh: u32,
    ow: u32,
    spare0: u32,
    spare1: u32,
    spare2: u32,
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

// col (n·oh·ow × k²c, dst at off_dst) from x (src at off_src): row (s, oy, ox), column
// ci·k² + ky·k + kx reads x[s, oy·stride + ky − padding, ox·stride + kx − padding, ci] (0 outside).
@compute @workgroup_size(256, 1, 1)
fn im2col(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let taps = P.kernel * P.kernel;
    let kc = taps * P.c;
    let row = i / kc;
    let j = i % kc;
    let ci = j / taps;
    let t = j % taps;
    let ky = t / P.kernel;
    let kx = t % P.kernel;
    let s = row / (P.oh * P.ow);
    let p = row % (P.oh * P.ow);
    let y = i32((p / P.ow) * P.stride + ky) - i32(P.padding);
    let x = i32((p % P.ow) * P.stride + kx) - i32(P.padding);
    var v = 0.0;
    if (y >= 0 && y < i32(P.h) && x >= 0 && x < i32(P.w)) {
        v = src[P.off_src + ((s * P.h + u32(y)) * P.w + u32(x)) * P.c + ci];
    }
    dst[P.off_dst + i] = v;
}

// dx (NHWC, dst at off_dst) = beta·dx + Σ of the col entries (src at off_src) that read the pixel,
// taps in the order (ky, kx) as the CPU sums them: input row y is read at tap ky by output row
// oy = (y + padding − ky)/stride when that division is exact and oy < oh (likewise x).
@compute @workgroup_size(256, 1, 1)
fn col2im(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wg, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let taps = P.kernel * P.kernel;
    let kc = taps * P.c;
    let ci = i % P.c;
    let pix = i / P.c;
    let s = pix / (P.h * P.w);
    let p = pix % (P.h * P.w);
    let y = i32(p / P.w) + i32(P.padding);
    let x = i32(p % P.w) + i32(P.padding);
    let k = i32(P.kernel);
    let st = i32(P.stride);
    var acc = 0.0;
    for (var ky = 0; ky < k; ky++) {
        let ay = y - ky;
        if (ay < 0 || ay % st != 0 || ay / st >= i32(P.oh)) {
            continue;
        }
        let oy = u32(ay / st);
        for (var kx = 0; kx < k; kx++) {
            let ax = x - kx;
            if (ax < 0 || ax % st != 0 || ax / st >= i32(P.ow)) {
                continue;
            }
            let row = (s * P.oh + oy) * P.ow + u32(ax / st);
            acc += src[P.off_src + row * kc + ci * taps + u32(ky * k + kx)];
        }
    }
    var prev = 0.0;
    if (P.beta != 0.0) {
        prev = P.beta * dst[P.off_dst + i];
    }
    dst[P.off_dst + i] = prev + acc;
}
