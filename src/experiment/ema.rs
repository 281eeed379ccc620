//! The χ-EMA of the `chi-ema` switch rule and where it starts (issue 34).

/// Where the χ-EMA of the `chi-ema` switch starts. The paper says only "the EMA (factor 0.9)
/// of χ_k exceeds 0.95", after training with SGD "up until we observe Phenomenon 1"; where the
/// recursion m_t = 0.9 m_{t−1} + 0.1 χ_t starts decides where a run can fork (issue 34):
/// - `first` (the default, and what every run before this field used): m_1 = χ_1, so a network
///   whose χ_k is above the threshold at θ₀ forks after zero steps;
/// - `zero`: m_0 = 0, so the EMA needs ⌈log 0.05 / log 0.9⌉ = 29 observations of χ = 1 before
///   it can pass 0.95;
/// - `debiased`: m_t / (1 − 0.9^t) (Adam's bias correction), which weighs the observations as
///   `zero` does but can fire at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmaStart {
    #[default]
    First,
    Zero,
    Debiased,
}

impl EmaStart {
    /// The rule's factor: m_t = FACTOR · m_{t−1} + NEW · χ_t.
    pub const FACTOR: f64 = 0.9;
    /// The weight of a new observation, 0.1 (written out: 1 − 0.9 is not 0.1 in f64).
    pub const NEW: f64 = 0.1;

    /// One observation χ of the EMA whose state is (m, w): m the running sum, w the sum of its
    /// weights (1 for `first`; 1 − 0.9^t for `zero` and `debiased`). `m` NaN: no observation yet.
    /// Returns the new (m, w). `first` computes exactly `0.9 m + 0.1 χ` (bit for bit the rule of
    /// runs before this choice existed).
    pub fn update(self, m: f64, w: f64, chi: f64) -> (f64, f64) {
        let (b, a) = (Self::FACTOR, Self::NEW);
        match self {
            EmaStart::First if m.is_nan() => (chi, 1.0),
            EmaStart::First => (b * m + a * chi, 1.0),
            EmaStart::Zero | EmaStart::Debiased => {
                let (m, w) = if m.is_nan() { (0.0, 0.0) } else { (m, w) };
                (b * m + a * chi, b * w + a)
            }
        }
    }

    /// The EMA's value compared with the threshold and recorded as `chi_ema`: m, or m / w when
    /// `debiased` (NaN before the first observation).
    pub fn value(self, m: f64, w: f64) -> f64 {
        match self {
            EmaStart::Debiased => m / w,
            _ => m,
        }
    }

    /// Its name in specs and messages.
    pub fn name(self) -> &'static str {
        match self {
            EmaStart::First => "first",
            EmaStart::Zero => "zero",
            EmaStart::Debiased => "debiased",
        }
    }
}
