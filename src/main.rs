//! `subspace-lab`: natively the command line (no command opens the desktop app); compiled to
//! wasm32, the web page and its compute worker (see `web/README.md`).

#[cfg(not(target_arch = "wasm32"))]
mod cli;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> anyhow::Result<()> {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {
    subspace_lab::app::platform::web::main();
}
