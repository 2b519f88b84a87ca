//! The per-frame metadata these elements write and read: UTF-8 text, one
//! `key=value` per line (other lines and keys are kept by nobody and ignored).
//! `framerate=N/D` is the pipeline's frame rate.

/// The metadata for a frame of a stream running at `fps` (empty for a
/// variable rate).
pub(crate) fn for_framerate(fps: gst::Fraction) -> Vec<u8> {
    if fps.numer() > 0 && fps.denom() > 0 {
        format!("framerate={}/{}\n", fps.numer(), fps.denom()).into_bytes()
    } else {
        Vec::new()
    }
}

/// The frame rate in a frame's metadata, if it has a valid one.
pub(crate) fn framerate(meta: &[u8]) -> Option<gst::Fraction> {
    let text = std::str::from_utf8(meta).ok()?;
    let value = text.lines().find_map(|l| l.strip_prefix("framerate="))?;
    let (n, d) = value.trim().split_once('/')?;
    let (n, d) = (n.parse::<i32>().ok()?, d.parse::<i32>().ok()?);
    (n > 0 && d > 0).then(|| gst::Fraction::new(n, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framerate_round_trips_and_garbage_is_ignored() {
        gst::init().ok();
        let f = gst::Fraction::new(30000, 1001);
        assert_eq!(framerate(&for_framerate(f)), Some(f));
        assert!(for_framerate(gst::Fraction::new(0, 1)).is_empty());
        for bad in [&b"framerate=0/1"[..], b"framerate=x/1", b"framerate=30", b"\xff\xfe", b"", b"framerate=-1/1"] {
            assert_eq!(framerate(bad), None, "{bad:?}");
        }
        assert_eq!(framerate(b"title=x\nframerate=25/1\n"), Some(gst::Fraction::new(25, 1)));
    }
}
