//! Two-band frames kept in place (issue 16): a frame that travels in exactly
//! two bands fits the stream's two buffers at once, so instead of copying each
//! band into the client's memory as it comes, the client can leave both where
//! the server wrote them, lock the two buffers together, and copy the frame
//! out once, straight into the caller's memory ([`super::Frame::copy_to`]).
//! For a face that copies every frame anyway (the drop-in `stream_lock` into
//! a Python `bytes`), that is one copy of the frame instead of two.

use crate::layout::Band;
use crate::mapping::Mapping;

/// The two bands of one frame, one in each buffer: (buffer of the first band,
/// first band, second band).
pub(super) fn pair_in_place(bands: &[Option<Band>; 2]) -> Option<(usize, Band, Band)> {
    (0..2).find_map(|i| {
        let (a, b) = (bands[i]?, bands[1 - i]?);
        let continues = starts_two_band_frame(&a)
            && b.frame_number == a.frame_number
            && b.width == a.width
            && b.height == a.height
            && b.first_row == a.rows
            && b.is_last();
        continues.then_some((i, a, b))
    })
}

/// A first band whose frame ends with the next band.
pub(super) fn starts_two_band_frame(b: &Band) -> bool {
    b.first_row == 0 && !b.is_whole_frame() && u64::from(b.height) <= 2 * u64::from(b.rows)
}

/// Copy a two-band frame (first band in buffer `first`, `first_len` bytes)
/// into `dst` (the whole frame's length). A file truncated meanwhile leaves
/// zeros where pages are missing, as reading a frame in place does; the next
/// lock reports it.
pub(super) fn copy_out(map: &Mapping, first: usize, first_len: usize, dst: &mut [u8]) {
    let (a, b) = dst.split_at_mut(first_len.min(dst.len()));
    map.copy_out(first, a);
    map.copy_out(1 - first, b);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn band(first_row: u32, rows: u32) -> Band {
        Band { frame_number: 7, width: 4, height: 10, first_row, rows }
    }

    #[test]
    fn a_pair_is_a_first_band_and_its_last_band_in_either_order() {
        assert_eq!(pair_in_place(&[Some(band(0, 6)), Some(band(6, 4))]).map(|p| p.0), Some(0));
        assert_eq!(pair_in_place(&[Some(band(6, 4)), Some(band(0, 6))]).map(|p| p.0), Some(1));
        // Bands of 4 rows make three (4 + 4 + 2): no pair.
        assert!(pair_in_place(&[Some(band(0, 4)), Some(band(4, 4))]).is_none());
        assert!(pair_in_place(&[Some(band(0, 6)), None]).is_none());
        let mut other = band(6, 4);
        other.frame_number = 8;
        assert!(pair_in_place(&[Some(band(0, 6)), Some(other)]).is_none());
        assert!(!starts_two_band_frame(&band(0, 10)), "a whole frame is no first band");
        assert!(starts_two_band_frame(&band(0, 5)) && !starts_two_band_frame(&band(0, 4)));
    }

    use crate::{Client, ClientOptions, Error, Server, ServerOptions, StreamFile};
    use std::time::Duration;

    const W: u32 = 64;
    const H: u32 = 40;

    /// A stream whose buffers hold 24 rows of a 64x40 frame: two bands.
    fn stream(monitor_thread: bool) -> (StreamFile, Server, Client) {
        let f = StreamFile::with_len(2 * (24 * 64 * 3 + 24)).unwrap();
        let s = Server::create(f.path(), ServerOptions::default()).unwrap();
        let c = Client::connect(f.path(), ClientOptions { monitor_thread, ..Default::default() }).unwrap();
        (f, s, c)
    }

    fn pixels(seed: u8) -> Vec<u8> {
        (0..W * H * 3).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn a_two_band_frame_is_locked_in_place_and_copied_once() {
        for monitor_thread in [false, true] {
            let (_f, s, c) = stream(monitor_thread);
            c.set_two_band_frames_in_place(true);
            s.put_frame(1, W, H, &pixels(1)).unwrap();
            let frame = c.wait_frame(Some(Duration::from_secs(5))).unwrap();
            assert!(!frame.info().in_place);
            let mut out = vec![0u8; frame.len()];
            frame.copy_to(&mut out).unwrap();
            assert!(out == pixels(1), "copy_to");
            assert!(frame.pixels().unwrap() == &pixels(1)[..], "pixels");
            assert_eq!(c.stats().bands_assembled, 0, "no band went through the client's memory");
            // Both buffers are the frame's: the server cannot send another.
            assert!(matches!(s.put_frame(2, W, H, &pixels(2)), Err(Error::NoBufferAvailable)));
            assert!(matches!(c.lock(), Err(Error::Locked)));
            drop(frame);
            s.put_frame(3, W, H, &pixels(3)).unwrap();
            let frame = c.wait_frame(Some(Duration::from_secs(5))).unwrap();
            assert_eq!(frame.number(), 3);
            frame.copy_to(&mut out).unwrap();
            assert!(out == pixels(3));
        }
    }

    #[test]
    fn off_by_default_and_while_another_frame_is_held_bands_are_assembled() {
        let (_f, s, c) = stream(true);
        s.put_frame(1, W, H, &pixels(1)).unwrap();
        let frame = c.wait_frame(Some(Duration::from_secs(5))).unwrap();
        assert!(frame.pixels().unwrap() == &pixels(1)[..]);
        assert_eq!(c.stats().bands_assembled, 2);
        drop(frame);
        // Turned on, but a whole frame is held in one buffer: the two-band
        // frame after it must still come through the other one.
        c.set_two_band_frames_in_place(true);
        s.put_frame(2, 4, 4, &[9u8; 48]).unwrap();
        let small = c.wait_frame(Some(Duration::from_secs(5))).unwrap();
        s.put_frame(3, W, H, &pixels(3)).unwrap();
        let big = c.wait_frame(Some(Duration::from_secs(5))).unwrap();
        assert_eq!((small.number(), big.number()), (2, 3));
        let mut out = vec![0u8; big.len()];
        big.copy_to(&mut out).unwrap();
        assert!(out == pixels(3));
        assert_eq!(c.stats().bands_assembled, 4);
    }
}
