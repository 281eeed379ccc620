//! The small enums a run is configured with: the scalar [`Precision`], the hidden layers'
//! [`Activation`] (with its derivatives in f64, the reference every kernel follows), the
//! [`LossKind`], and which backend to compute on ([`BackendChoice`]).

use crate::error::Result;

/// Floating-point precision of a backend's buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F64,
}

impl Precision {
    /// Unit round-off of the precision.
    pub fn eps(self) -> f64 {
        match self {
            Precision::F32 => f32::EPSILON as f64,
            Precision::F64 => f64::EPSILON,
        }
    }
    /// Bytes of one scalar.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "f64" => Ok(Precision::F64),
            other => Err(format!("unknown precision '{other}' (expected f32 or f64)")),
        }
    }
}

/// Elementwise activation of the hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Tanh,
    Relu,
    /// z·sigmoid(z) (Damian et al.'s Transformer MLP block).
    Silu,
    /// GELU in its tanh approximation ½z(1 + tanh(√(2/π)(z + 0.044715z³))) (Flax's default).
    Gelu,
}

/// √(2/π) and the cubic coefficient of the GELU tanh approximation.
const GELU_C: f64 = 0.797_884_560_802_865_4;
const GELU_A: f64 = 0.044_715;

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::Silu => "silu",
            Activation::Gelu => "gelu",
        }
    }
    /// True if σ' and σ'' are functions of the output a = σ(z) (tanh: 1 − a², ReLU: 1[a > 0]):
    /// the op then overwrites its input. SiLU and GELU need z: their op keeps it.
    pub fn from_output(self) -> bool {
        matches!(self, Activation::Tanh | Activation::Relu)
    }
    /// (σ', σ'') from the value the backward passes keep: a = σ(z) when [`Self::from_output`],
    /// else z.
    #[inline]
    pub fn derivs_cached(self, c: f64) -> (f64, f64) {
        match self {
            Activation::Tanh => {
                let d1 = 1.0 - c * c;
                (d1, -2.0 * c * d1)
            }
            Activation::Relu => (if c > 0.0 { 1.0 } else { 0.0 }, 0.0),
            _ => {
                let (_, d1, d2) = self.eval(c);
                (d1, d2)
            }
        }
    }
    /// σ'(z) and σ''(z) as functions of the output a = σ(z) (tanh and ReLU only).
    #[inline]
    pub fn derivs_from_output(self, a: f64) -> (f64, f64) {
        self.derivs_cached(a)
    }

    /// σ(z), σ'(z), σ''(z) in f64: the reference the backends' kernels follow.
    #[inline]
    pub fn eval(self, z: f64) -> (f64, f64, f64) {
        match self {
            Activation::Tanh => {
                let t = z.tanh();
                let d1 = 1.0 - t * t;
                (t, d1, -2.0 * t * d1)
            }
            // ReLU'' is 0 almost everywhere; ReLU'(0) is taken as 0 as PyTorch does.
            Activation::Relu => {
                if z > 0.0 {
                    (z, 1.0, 0.0)
                } else {
                    (0.0, 0.0, 0.0)
                }
            }
            Activation::Silu => {
                let s = 1.0 / (1.0 + (-z).exp());
                (
                    z * s,
                    s * (1.0 + z * (1.0 - s)),
                    s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s)),
                )
            }
            Activation::Gelu => {
                let u = GELU_C * (z + GELU_A * z * z * z);
                let du = GELU_C * (1.0 + 3.0 * GELU_A * z * z);
                let ddu = GELU_C * 6.0 * GELU_A * z;
                let t = u.tanh();
                let s = 1.0 - t * t;
                (
                    0.5 * z * (1.0 + t),
                    0.5 * (1.0 + t) + 0.5 * z * s * du,
                    s * du + 0.5 * z * (-2.0 * t * s * du * du + s * ddu),
                )
            }
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tanh" => Ok(Activation::Tanh),
            "relu" => Ok(Activation::Relu),
            "silu" => Ok(Activation::Silu),
            "gelu" => Ok(Activation::Gelu),
            other => Err(format!(
                "unknown activation '{other}' (expected tanh, relu, silu or gelu)"
            )),
        }
    }
}

/// Loss on the network's outputs against one-hot (or soft) targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// ½‖f − y‖² per sample (Cohen et al.'s convention).
    Mse,
    /// Softmax cross-entropy per sample.
    Ce,
}

impl LossKind {
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Mse => "mse",
            LossKind::Ce => "ce",
        }
    }
}

impl std::str::FromStr for LossKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mse" => Ok(LossKind::Mse),
            "ce" => Ok(LossKind::Ce),
            other => Err(format!("unknown loss '{other}' (expected mse or ce)")),
        }
    }
}

/// Which backend a command computes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// A real GPU adapter if there is one (f32), otherwise the CPU backend.
    Auto,
    /// The wgpu backend on whatever adapter exists, software ones included.
    Gpu,
    Cpu,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "gpu" => Ok(BackendChoice::Gpu),
            "cpu" => Ok(BackendChoice::Cpu),
            o => Err(format!("unknown backend '{o}' (auto, gpu or cpu)")),
        }
    }
}
