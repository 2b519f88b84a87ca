//! `shmimagesink`: writes a pipeline's raw video into a shmimage stream
//! (native, or EnSight 1.0 RGB with `ensight=true`).

use gst::glib;
use gst::prelude::*;

mod imp;
mod native_output;
mod output;

glib::wrapper! {
    /// The `shmimagesink` element.
    pub struct ShmImageSink(ObjectSubclass<imp::ShmImageSink>) @extends gst_base::BaseSink, gst::Element, gst::Object;
}

/// Register `shmimagesink` with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "shmimagesink", gst::Rank::NONE, ShmImageSink::static_type())
}

mod pool;

glib::wrapper! {
    /// The buffer pool `shmimagesink` offers upstream: its buffers are the
    /// stream's slots.
    pub struct SlotPoolObj(ObjectSubclass<pool::SlotPool>) @extends gst::BufferPool, gst::Object;
}
