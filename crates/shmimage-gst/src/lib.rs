//! GStreamer elements for shmimage streams: `shmimagesink` writes a pipeline's
//! video into a stream, `shmimagesrc` reads a stream into a pipeline.
//!
//! Built as `libgstshmimage.so` (put its directory on `GST_PLUGIN_PATH`), or
//! linked as a Rust library and registered in-process with [`register_static`].
//! The elements translate between GStreamer and the engine crate; all stream
//! knowledge stays in `shmimage`.
#![deny(unsafe_op_in_unsafe_fn)]

use gst::glib;

mod caps;
mod clock;
mod metadata;
pub mod net;
pub mod shmimagesink;
pub mod shmimagesrc;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    shmimagesink::register(plugin)?;
    shmimagesrc::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    shmimage,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-shmimage"),
    // GStreamer's name for the MIT licence.
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY")
);

/// Register both elements in this process without loading the shared library
/// (for programs that link this crate, and for tests). Calls `gst::init`.
pub fn register_static() -> Result<(), glib::BoolError> {
    gst::init().map_err(|e| glib::bool_error!("GStreamer does not start: {e}"))?;
    plugin_register_static()
}
