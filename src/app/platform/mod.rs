//! Where the app runs: natively in a window (`native`: the window, saved settings, the test
//! hook's report) or on a web page (`web`: the page, its URL hash and published state). This is
//! the one place that implements eframe's `App` for [`SandboxApp`], handing the platform's part of
//! a frame to [`SandboxApp::frame_ui`] as [`crate::app::ui::Hooks`], so the app's state and
//! panels never name a platform.

use crate::app::ui::SandboxApp;

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(target_arch = "wasm32")]
pub mod web;

impl eframe::App for SandboxApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        #[cfg(not(target_arch = "wasm32"))]
        self.frame_ui(ui, &native::HOOKS);
        #[cfg(target_arch = "wasm32")]
        self.frame_ui(ui, &web::HOOKS);
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        // A headless run (the test hook, `--exit-after-steps`) leaves the user's settings alone.
        if self.auto_exit().is_none() {
            storage.set_string(native::SAVED_KEY, self.settings.to_hash());
        }
    }

    #[cfg(target_arch = "wasm32")]
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(&mut *self)
    }
}
