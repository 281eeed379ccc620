//! No stray error lines on a successful headless command. Probing for a GPU (`--backend auto`,
//! the default) loads the Vulkan driver; Mesa's implicit layer `VK_LAYER_MESA_device_select`
//! then connects to the Wayland and X servers to order the devices by the display's, and without
//! a session (ssh, CI, a container) libwayland prints "error: XDG_RUNTIME_DIR is invalid or not
//! set in the environment." — twice — although nothing failed. The layer only reorders the
//! adapters, and `GpuBackend` chooses among all of them itself, so the command line turns it off
//! through the switch the layer's manifest offers (`NODEVICE_SELECT=1`). The desktop app keeps
//! it: a window has a display to match. A real driver error still prints.

/// The manifest's switch (`/usr/share/vulkan/implicit_layer.d/VkLayer_MESA_device_select.json`,
/// `disable_environment`).
pub(super) const NO_DEVICE_SELECT: &str = "NODEVICE_SELECT";

/// Turn the device-select layer off for a command that opens no window (every command but `app`
/// and none), unless the user set the variable. Call first in `main`, before any thread starts.
pub(super) fn silence_probes() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let opens_window = match args.iter().find(|a| !a.to_string_lossy().starts_with('-')) {
        None => !args.iter().any(|a| {
            let a = a.to_string_lossy();
            a == "-h" || a == "--help" || a == "-V" || a == "--version"
        }),
        Some(cmd) => cmd == "app",
    };
    if !opens_window && std::env::var_os(NO_DEVICE_SELECT).is_none() {
        // SAFETY: called at the start of `main`, before any other thread exists, so nothing
        // reads the environment concurrently.
        unsafe { std::env::set_var(NO_DEVICE_SELECT, "1") };
    }
}
