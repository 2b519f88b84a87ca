//! `shmimagesrc`: a live source reading a shmimage stream (native or
//! EnSight 1.0) into a pipeline.

use gst::glib;
use gst::prelude::*;

mod imp;
mod input;
mod native_input;

glib::wrapper! {
    /// The `shmimagesrc` element.
    pub struct ShmImageSrc(ObjectSubclass<imp::ShmImageSrc>) @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object;
}

/// Register `shmimagesrc` with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "shmimagesrc", gst::Rank::NONE, ShmImageSrc::static_type())
}
