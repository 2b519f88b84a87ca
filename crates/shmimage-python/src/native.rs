//! The native stream (shmimage/2) as seen from Python: formats by name,
//! numpy geometry of a frame's planes, and the format of an array to write.
//! The format table itself is the engine's (`PixelFormat`); nothing here
//! knows the wire layout.

use pyo3::prelude::*;
use shmimage::native::{FrameDesc, PixelFormat};

use crate::errors::typed;
use crate::views::Geometry;

/// A format from its name (engine names, GStreamer names; any case).
pub(crate) fn parse_format(py: Python<'_>, name: &str) -> PyResult<PixelFormat> {
    PixelFormat::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = PixelFormat::ALL.iter().map(|f| f.name()).collect();
        typed(py, "BadArgsError", format!("unknown pixel format {name:?}; known: {}", known.join(", ")))
    })
}

/// numpy's view of each plane of a frame laid out as `desc` says.
pub(crate) fn geometries(desc: &FrameDesc) -> Vec<Geometry> {
    let f = desc.format();
    let item = f.bytes_per_sample() as isize;
    let typestr = f.numpy_dtype();
    desc.planes()
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let shape = f.numpy_shape(i, desc.width(), desc.height())?;
            let strides = match shape.len() {
                3 => vec![p.stride as isize, shape[2] as isize * item, item],
                _ => vec![p.stride as isize, item],
            };
            Some(Geometry { offset: usize::try_from(p.offset).ok()?, shape, strides, typestr })
        })
        .collect()
}

/// The packed format of an array to write, from its shape and item type:
/// (h, w, 3) u1 RGB8, (h, w, 4) u1 RGBA8, (h, w) or (h, w, 1) u1 GRAY8,
/// u2 GRAY16_LE, f4 GRAY32F. `layout` ("bgr", "bgra", "rgbx", "bgrx")
/// picks the other orders of the same shapes.
pub(crate) fn infer_format(dims: &[usize], item: &str, layout: Option<&str>) -> Option<PixelFormat> {
    let gray = matches!(dims, [_, _] | [_, _, 1]);
    match (item, dims.get(2).copied().unwrap_or(1), gray, layout) {
        ("u1", 3, false, None | Some("rgb")) => Some(PixelFormat::Rgb8),
        ("u1", 3, false, Some("bgr")) => Some(PixelFormat::Bgr8),
        ("u1", 4, false, None | Some("rgba")) => Some(PixelFormat::Rgba8),
        ("u1", 4, false, Some("bgra")) => Some(PixelFormat::Bgra8),
        ("u1", 4, false, Some("rgbx")) => Some(PixelFormat::Rgbx8),
        ("u1", 4, false, Some("bgrx")) => Some(PixelFormat::Bgrx8),
        ("u1", 1, true, None | Some("gray")) => Some(PixelFormat::Gray8),
        ("u2", 1, true, None | Some("gray")) => Some(PixelFormat::Gray16Le),
        ("f4", 1, true, None | Some("gray")) => Some(PixelFormat::Gray32F),
        _ => None,
    }
}
