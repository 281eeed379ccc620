//! The paper (Song, Ahn, Yun 2024) as one registry: its models with their data and settings
//! ([`models`]), its claims as thresholds and rules ([`claims`]), the verdicts that measure them on
//! a run ([`judges`]), and its figures and tables as presets ([`presets`]). `reproduce`, `verdict`,
//! the CLI and the app read these; nothing here runs a network.

pub mod claims;
pub mod judges;
pub mod models;
pub mod presets;
