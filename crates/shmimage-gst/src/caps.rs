//! Between the engine's pixel formats and GStreamer's video caps.

use std::sync::LazyLock;

use gst_video::VideoFormat;
use shmimage::native::PixelFormat;

/// Every stream format GStreamer has a name for, in the engine's table order.
pub(crate) static NATIVE_FORMATS: LazyLock<Vec<VideoFormat>> =
    LazyLock::new(|| PixelFormat::ALL.iter().filter_map(|&f| video_format(f)).collect());

/// GStreamer's format for a stream format (None for formats GStreamer lacks).
pub(crate) fn video_format(f: PixelFormat) -> Option<VideoFormat> {
    let v = VideoFormat::from_string(f.gst_name()?);
    (v != VideoFormat::Unknown).then_some(v)
}

/// The stream format for a GStreamer format.
pub(crate) fn pixel_format(v: VideoFormat) -> Option<PixelFormat> {
    PixelFormat::from_gst_name(v.to_str())
}

/// `video/x-raw` in `formats`, any size and rate.
pub(crate) fn raw_caps(formats: &[VideoFormat]) -> gst::Caps {
    gst_video::VideoCapsBuilder::new().format_list(formats.iter().copied()).build()
}

/// What a native stream carries.
pub(crate) fn native_caps() -> gst::Caps {
    raw_caps(&NATIVE_FORMATS)
}

/// An element's one always-present pad template, `name` in `direction`,
/// carrying every native format (as `pad_templates` returns them: empty,
/// with the reason logged to `cat`, if GStreamer refuses it).
pub(crate) fn native_template(
    name: &str,
    direction: gst::PadDirection,
    cat: gst::DebugCategory,
) -> Vec<gst::PadTemplate> {
    match gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &native_caps()) {
        Ok(t) => vec![t],
        Err(e) => {
            gst::error!(cat, "no {name} template: {e}");
            Vec::new()
        }
    }
}

/// What a 1.0 (EnSight) stream carries: RGB.
pub(crate) fn ensight_caps() -> gst::Caps {
    raw_caps(&[VideoFormat::Rgb])
}
