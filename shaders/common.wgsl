// Shared by every kernel of the wgpu backend (prepended to each shader file): helpers and the
// activation functions, no bindings. Each module (`matmul.wgsl`, `attention.wgsl`, …) declares its
// own bind group 0 — named storage buffers at bindings 0.., read-only first, then the read-write
// ones, and its own parameter block `P` (a struct `<Module>Params`) as the uniform after them,
// bound with a dynamic offset (one 256-byte slot per dispatch, written once per submit). The Rust
// twin of each layout (binding names, access, Params) is in `src/backend/gpu/kernels/layouts.rs`;
// a test checks the two agree. At most 8 storage buffers per module: WebGPU's default per-stage
// limit. Offsets are in elements. Portable WebGPU: f32 only, no atomics, no subgroups, ≤ 256
// invocations.

// Linear index of an invocation in a 1-D problem dispatched as a 2-D grid of 256-wide groups
// (a dimension holds at most 65,535 groups).
fn linear_id(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid;
}

// tanh with the argument clamped: some drivers evaluate tanh through exp and return NaN for
// large |x|; tanh(±15) is ±1 in f32 anyway.
fn tanh_safe(x: f32) -> f32 {
    return tanh(clamp(x, -15.0, 15.0));
}

// Activations by kind: 1 tanh, 2 relu, 3 silu, 4 gelu (tanh approximation). The backward
// kernels read a cached value c: the output a = σ(z) for tanh and relu (tanh' = 1 − a²,
// tanh'' = −2a(1 − a²), relu' = [a > 0], relu'' = 0), the input z for silu and gelu.
const GELU_C: f32 = 0.7978845608;
const GELU_A: f32 = 0.044715;

fn sigmoid_safe(z: f32) -> f32 {
    return 1.0 / (1.0 + exp(-clamp(z, -30.0, 30.0)));
}

fn act_value(act: u32, z: f32) -> f32 {
    if (act == 1u) {
        return tanh_safe(z);
    } else if (act == 2u) {
        return max(z, 0.0);
    } else if (act == 3u) {
        return z * sigmoid_safe(z);
    }
    return 0.5 * z * (1.0 + tanh_safe(GELU_C * (z + GELU_A * z * z * z)));
}

fn d1(act: u32, c: f32) -> f32 {
    if (act == 1u) {
        return 1.0 - c * c;
    } else if (act == 2u) {
        return select(0.0, 1.0, c > 0.0);
    } else if (act == 3u) {
        let s = sigmoid_safe(c);
        return s * (1.0 + c * (1.0 - s));
    }
    let t = tanh_safe(GELU_C * (c + GELU_A * c * c * c));
    let du = GELU_C * (1.0 + 3.0 * GELU_A * c * c);
    return 0.5 * (1.0 + t) + 0.5 * c * (1.0 - t * t) * du;
}

fn d2(act: u32, c: f32) -> f32 {
    if (act == 1u) {
        return -2.0 * c * (1.0 - c * c);
    } else if (act == 2u) {
        return 0.0;
    } else if (act == 3u) {
        let s = sigmoid_safe(c);
        return s * (1.0 - s) * (2.0 + c * (1.0 - 2.0 * s));
    }
    let t = tanh_safe(GELU_C * (c + GELU_A * c * c * c));
    let s = 1.0 - t * t;
    let du = GELU_C * (1.0 + 3.0 * GELU_A * c * c);
    let ddu = GELU_C * 6.0 * GELU_A * c;
    return s * du + 0.5 * c * (-2.0 * t * s * du * du + s * ddu);
}
