//! What writers accept as a frame: an (h, w, 3) uint8 C-contiguous array or
//! any bytes-like object with its size (sent as is), or any other image
//! (BGR/RGBA/gray/non-contiguous arrays, PIL images), converted with one copy
//! by `shmimage._convert.as_rgb`.

use pyo3::prelude::*;

use crate::args::dims;
use crate::buffer::Bytes;
use crate::errors::typed;

/// The RGB bytes of one frame and its size.
pub(crate) struct RgbFrame<'py> {
    pub bytes: Bytes<'py>,
    pub width: u32,
    pub height: u32,
}

/// `pixels` as RGB bytes; `width`/`height` are required for plain buffers and
/// otherwise come from the shape; `layout` names an array's channel order.
pub(crate) fn rgb_frame<'py>(
    pixels: &Bound<'py, PyAny>,
    width: Option<i64>,
    height: Option<i64>,
    layout: Option<&str>,
) -> PyResult<RgbFrame<'py>> {
    let py = pixels.py();
    match (width, height) {
        (Some(w), Some(h)) => {
            if layout.is_some_and(|l| l != "rgb") {
                return Err(typed(
                    py,
                    "BadArgsError",
                    "layout= applies to arrays, not to width=/height= buffers".into(),
                ));
            }
            let (width, height) = dims(py, w, h)?;
            let bytes = Bytes::get_shaped(pixels).map_err(|e| {
                typed(py, "BadArgsError", format!("pixels must be a C-contiguous bytes-like object: {e}"))
            })?;
            Ok(RgbFrame { bytes, width, height })
        }
        (None, None) => {
            if layout.is_none_or(|l| l == "rgb") {
                if let Some(f) = Bytes::get_shaped(pixels).ok().and_then(as_rgb24) {
                    return Ok(f);
                }
            }
            let converted = py.import("shmimage._convert")?.getattr("as_rgb")?.call1((pixels, layout))?;
            let bytes = Bytes::get_shaped(&converted)?;
            as_rgb24(bytes)
                .ok_or_else(|| typed(py, "BadArgsError", "the converted image is not (h, w, 3) uint8".into()))
        }
        _ => Err(typed(py, "BadArgsError", "give both width and height, or neither".to_owned())),
    }
}

/// The export as a frame when it is an (h, w, 3) array of bytes.
fn as_rgb24(bytes: Bytes<'_>) -> Option<RgbFrame<'_>> {
    let s = bytes.shape();
    let byte_format = matches!(s.format.trim_start_matches(['@', '=', '<', '>', '!']), "B");
    match s.dims.as_slice() {
        [h, w, 3] if byte_format && s.itemsize == 1 && *w > 0 && *h > 0 => {
            let (width, height) = (u32::try_from(*w).ok()?, u32::try_from(*h).ok()?);
            Some(RgbFrame { bytes, width, height })
        }
        _ => None,
    }
}
