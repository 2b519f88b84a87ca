//! The native decoder against arbitrary control-block bytes: shared by the
//! stable proptest (tests/native_proptest.rs) and the fuzz target
//! (fuzz/fuzz_targets/native.rs). The bytes overlay a valid stream file from
//! offset 0 (magic and layout included); then inspect, a reader (both modes)
//! and a writer take it. Any answer is fine except a panic, a hang, or a
//! frame that reaches past its slot.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shmimage::native::layout::Layout;
use shmimage::native::{inspect, FrameDesc, FrameInfo, PixelFormat, Reader, ReaderOptions, Writer, WriterOptions};

const SLOTS: u32 = 3;
const SLOT_BYTES: u64 = 8192;
const META: u32 = 256;

fn unique_path() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    base.join(format!("shmimage-decode-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)))
}

/// Removes the file however the check ends.
struct Cleanup(PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Run the decoder over `data`; Err describes a violated property.
pub fn check_bytes(data: &[u8]) -> Result<(), String> {
    let path = unique_path();
    let _c = Cleanup(path.clone());
    let zero = Some(Duration::ZERO);
    let o = WriterOptions {
        slots: SLOTS,
        slot_bytes: SLOT_BYTES,
        metadata_bytes: META,
        lossless_wait: zero,
        slot_wait: zero,
    };
    let control = Layout::new(SLOTS, SLOT_BYTES, META).map_err(|e| e.0)?.control_len() as usize;
    {
        let w = Writer::create(&path, &o).map_err(|e| e.to_string())?;
        let desc = FrameDesc::new(PixelFormat::I420, 40, 20).map_err(|e| e.to_string())?;
        for v in 0..4u8 {
            let info = FrameInfo { metadata: vec![v; 16], ..Default::default() };
            w.put(&desc, &vec![v; desc.len() as usize], &info).map_err(|e| e.to_string())?;
        }
    }
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| e.to_string())?;
        f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        f.write_all(&data[..data.len().min(control)]).map_err(|e| e.to_string())?;
    }
    let _ = inspect(&path);
    for lossless in [false, true] {
        if let Ok(r) = Reader::open(&path, &ReaderOptions { lossless }) {
            for _ in 0..3 {
                for f in [r.read(zero), r.latest()].into_iter().flatten() {
                    if f.desc().len() > r.slot_capacity() || f.pixels().len() as u64 != f.desc().len() {
                        return Err(format!("frame of {} bytes in a {}-byte slot", f.desc().len(), r.slot_capacity()));
                    }
                    let _ = f.pixels().iter().fold(0u8, |a, &b| a ^ b);
                    let _ = f.metadata().len();
                    for i in 0..f.planes().len() {
                        if f.plane(i).is_none() {
                            return Err(format!("plane {i} outside its frame"));
                        }
                    }
                }
            }
        }
    }
    if let Ok(w) = Writer::open(&path, &o) {
        let desc = FrameDesc::packed(PixelFormat::Gray8, 8, 8).map_err(|e| e.to_string())?;
        let _ = w.put(&desc, &[1; 64], &FrameInfo::default());
    }
    Ok(())
}
