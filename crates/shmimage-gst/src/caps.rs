//! The video caps each element accepts or produces.

use gst_video::VideoFormat;

/// Formats a native stream carries (GStreamer names), the packed ones first.
pub(crate) const NATIVE_FORMATS: &[VideoFormat] = &[
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Gray8,
    VideoFormat::Gray16Le,
    VideoFormat::I420,
    VideoFormat::Nv12,
];

/// `video/x-raw` in `formats`, any size and rate.
pub(crate) fn raw_caps(formats: &[VideoFormat]) -> gst::Caps {
    gst_video::VideoCapsBuilder::new().format_list(formats.iter().copied()).build()
}

/// What a 1.0 (EnSight) stream carries: RGB.
pub(crate) fn ensight_caps() -> gst::Caps {
    raw_caps(&[VideoFormat::Rgb])
}
