//! Zero-copy writing: a buffer pool whose buffers are the stream's loaned
//! slots. Upstream draws into a slot; at render the sink marks the slot's
//! loan to be published, which happens when the buffer is released (right
//! after render: the sink keeps no last sample). A buffer never rendered
//! gives its slot back unpublished.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};
use std::time::Duration;

use gst::glib;
use gst::subclass::prelude::*;
use shmimage::native::{FrameDesc, WriteLoan, Writer};

use crate::caps;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("shmimagepool", gst::DebugColorFlags::empty(), Some("shmimage slot buffer pool"))
});

/// How long upstream waits for a free slot before it gets plain memory
/// (and the frame is copied, or dropped, at render).
const SLOT_WAIT: Duration = Duration::from_millis(100);

/// What render decided for a lent slot: publish it with these.
#[derive(Debug, Default)]
struct Publish {
    capture: Option<(u64, u64)>,
    metadata: Vec<u8>,
}

/// One lent slot, shared by its buffer memory and the registry.
#[derive(Debug, Default)]
struct Lent {
    publish: Mutex<Option<Publish>>,
}

/// Lent slots by address, so render recognises a buffer of this pool.
#[derive(Debug, Default)]
pub(crate) struct Loans {
    by_addr: Mutex<HashMap<usize, Arc<Lent>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Loans {
    /// If `buffer` is exactly one lent slot, have it published with this
    /// capture time and metadata when it is released; true if so.
    pub(crate) fn publish(&self, buffer: &gst::BufferRef, capture: Option<(u64, u64)>, metadata: Vec<u8>) -> bool {
        if buffer.n_memory() != 1 {
            return false;
        }
        let Ok(map) = buffer.map_readable() else { return false };
        let addr = map.as_ptr() as usize;
        let Some(lent) = lock(&self.by_addr).get(&addr).cloned() else { return false };
        *lock(&lent.publish) = Some(Publish { capture, metadata });
        true
    }
}

/// A slot as GStreamer memory: the loan itself, published or given back
/// when the memory is freed.
struct SlotMemory {
    loan: Option<WriteLoan>,
    lent: Arc<Lent>,
    addr: usize,
    loans: Weak<Loans>,
}

impl AsMut<[u8]> for SlotMemory {
    fn as_mut(&mut self) -> &mut [u8] {
        match self.loan.as_mut() {
            Some(l) => l.pixels_mut(),
            None => &mut [],
        }
    }
}

impl Drop for SlotMemory {
    fn drop(&mut self) {
        if let Some(loans) = self.loans.upgrade() {
            lock(&loans.by_addr).remove(&self.addr);
        }
        let Some(mut loan) = self.loan.take() else { return };
        let Some(p) = lock(&self.lent.publish).take() else { return }; // dropped loan: given back
        if let Some((mono, real)) = p.capture {
            loan.set_capture_time(mono, real);
        }
        if !p.metadata.is_empty() {
            if let Err(e) = loan.set_metadata(&p.metadata) {
                gst::warning!(CAT, "metadata not stored: {e}");
            }
        }
        if let Err(e) = loan.commit() {
            gst::warning!(CAT, "a frame drawn into a slot was not published: {e}");
        }
    }
}

/// What the pool lends.
#[derive(Debug)]
struct Config {
    desc: FrameDesc,
    info: gst_video::VideoInfo,
    /// Upstream reads GstVideoMeta; needed when the stream's layout is not
    /// GStreamer's default.
    meta: bool,
}

/// The pool's private part.
#[derive(Debug, Default)]
pub struct SlotPool {
    target: Mutex<Option<(Arc<Writer>, Arc<Loans>)>>,
    config: Mutex<Option<Config>>,
}

#[glib::object_subclass]
impl ObjectSubclass for SlotPool {
    const NAME: &'static str = "GstShmImageSlotPool";
    type Type = super::SlotPoolObj;
    type ParentType = gst::BufferPool;
}

impl ObjectImpl for SlotPool {}
impl GstObjectImpl for SlotPool {}

impl SlotPool {
    pub(crate) fn set_target(&self, writer: Arc<Writer>, loans: Arc<Loans>) {
        *lock(&self.target) = Some((writer, loans));
    }

    fn lend(&self) -> Option<gst::Buffer> {
        let (writer, loans) = lock(&self.target).clone()?;
        let cfg = lock(&self.config);
        let cfg = cfg.as_ref()?;
        let mut loan = match writer.loan(&cfg.desc, Some(SLOT_WAIT)) {
            Ok(l) => l,
            Err(e) => {
                gst::debug!(CAT, imp = self, "no slot to lend ({e}): plain memory");
                return None;
            }
        };
        let addr = loan.pixels_mut().as_ptr() as usize;
        let lent = Arc::new(Lent::default());
        lock(&loans.by_addr).insert(addr, Arc::clone(&lent));
        let mem = SlotMemory { loan: Some(loan), lent, addr, loans: Arc::downgrade(&loans) };
        let mut buffer = gst::Buffer::new();
        {
            let b = buffer.get_mut()?;
            b.append_memory(gst::Memory::from_mut_slice(mem));
            if cfg.meta {
                let planes = cfg.desc.planes();
                let offsets: Vec<usize> = planes.iter().map(|p| p.offset as usize).collect();
                let strides: Vec<i32> = planes.iter().map(|p| p.stride as i32).collect();
                gst_video::VideoMeta::add_full(
                    b,
                    gst_video::VideoFrameFlags::empty(),
                    cfg.info.format(),
                    cfg.info.width(),
                    cfg.info.height(),
                    &offsets,
                    &strides,
                )
                .ok()?;
            }
        }
        Some(buffer)
    }

    fn plain(&self) -> Result<gst::Buffer, gst::FlowError> {
        let size = lock(&self.config).as_ref().map(|c| c.info.size()).ok_or(gst::FlowError::NotNegotiated)?;
        gst::Buffer::with_size(size).map_err(|_| gst::FlowError::Error)
    }
}

impl BufferPoolImpl for SlotPool {
    fn options() -> &'static [&'static str] {
        static OPTIONS: LazyLock<[&'static str; 1]> =
            LazyLock::new(|| [gst_video::BUFFER_POOL_OPTION_VIDEO_META.as_str()]);
        &*OPTIONS
    }

    fn set_config(&self, config: &mut gst::BufferPoolConfigRef) -> bool {
        let Some((Some(caps), _, _, _)) = config.params() else { return false };
        let Ok(info) = gst_video::VideoInfo::from_caps(&caps) else { return false };
        let Some(format) = caps::pixel_format(info.format()) else { return false };
        let meta = config.has_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META.as_str());
        let planes = info.n_planes() as usize;
        let strides: Vec<u32> = info.stride()[..planes].iter().map(|&s| s as u32).collect();
        // GStreamer's own layout when the stream can take it (upstream then
        // needs no meta); else the stream's, described by GstVideoMeta.
        // (A slot ends with the last row's pixels, without its padding; a
        // frame mapped without meta needs GStreamer's whole size.)
        let default = FrameDesc::with_strides(format, info.width(), info.height(), &strides)
            .ok()
            .filter(|d| d.planes().iter().zip(info.offset()).all(|(p, &o)| p.offset as usize == o))
            .filter(|d| d.len() >= info.size() as u64);
        let (desc, meta) = match default {
            Some(d) => (d, false),
            None if meta => match FrameDesc::new(format, info.width(), info.height()) {
                Ok(d) => (d, true),
                Err(_) => return false,
            },
            None => return false,
        };
        gst::debug!(CAT, imp = self, "lending {:?} {}x{} slots (meta: {meta})", format, info.width(), info.height());
        *lock(&self.config) = Some(Config { desc, info, meta });
        // Buffers are made on demand (one loan each), none in advance.
        let (caps, size) = (caps.clone(), config.params().map(|p| p.1).unwrap_or(0));
        config.set_params(Some(&caps), size, 0, 0);
        self.parent_set_config(config)
    }

    fn acquire_buffer(&self, _params: Option<&gst::BufferPoolAcquireParams>) -> Result<gst::Buffer, gst::FlowError> {
        match self.lend() {
            Some(b) => Ok(b),
            None => self.plain(),
        }
    }

    fn alloc_buffer(&self, _params: Option<&gst::BufferPoolAcquireParams>) -> Result<gst::Buffer, gst::FlowError> {
        self.plain()
    }

    /// A loan is used once: a released buffer is freed (publishing or
    /// giving back its slot), never queued for reuse.
    fn release_buffer(&self, buffer: gst::Buffer) {
        drop(buffer);
    }
}
