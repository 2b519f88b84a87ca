//! The `shmimagesrc` subclass: properties, caps, the push loop and stats.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;

use super::input::{Input, PullError, Pulled, ReadOptions};
use crate::{caps, clock};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("shmimagesrc", gst::DebugColorFlags::empty(), Some("shmimage stream source"))
});

/// How long one wait for a frame lasts before the loop checks for a flush.
const SLICE: Duration = Duration::from_millis(50);

const DEFAULT_WAIT_FOR_WRITER: bool = false;
const DEFAULT_STATS_INTERVAL_MS: u32 = 1000;
const DEFAULT_LOSSLESS: bool = false;
const DEFAULT_MAX_HELD_SLOTS: u32 = 2;

#[derive(Debug, Clone)]
struct Settings {
    path: Option<PathBuf>,
    wait_for_writer: bool,
    stats_interval_ms: u32,
    lossless: bool,
    max_held_slots: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            path: None,
            wait_for_writer: DEFAULT_WAIT_FOR_WRITER,
            stats_interval_ms: DEFAULT_STATS_INTERVAL_MS,
            lossless: DEFAULT_LOSSLESS,
            max_held_slots: DEFAULT_MAX_HELD_SLOTS,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    frames: u64,
    copied: u64,
    /// Frames the writer published that this source never saw (sequence gaps).
    skipped: u64,
    renegotiations: u64,
    writer_restarts: u64,
    /// Native: slots held by buffers downstream now.
    held_slots: u64,
}

#[derive(Debug)]
struct State {
    input: Option<Input>,
    info: Option<gst_video::VideoInfo>,
    last_sequence: Option<u64>,
    last_pts: Option<gst::ClockTime>,
    /// The writer went away and no frame came since.
    writer_lost: bool,
    stats: Stats,
    last_stats: Instant,
}

/// The element's private part.
#[derive(Debug, Default)]
pub struct ShmImageSrc {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    flushing: AtomicBool,
    /// Downstream reads GstVideoMeta (decided at allocation).
    meta_ok: AtomicBool,
    /// The caps being pushed, apart from `state`: queries from other threads
    /// must not wait for the streaming thread's frame wait.
    current: Mutex<Option<gst_video::VideoInfo>>,
}

impl ShmImageSrc {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current(&self) -> MutexGuard<'_, Option<gst_video::VideoInfo>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open the stream, waiting for it to appear while `wait_for_writer`.
    fn open(&self, path: &std::path::Path, wait: bool, o: ReadOptions) -> Result<Option<Input>, gst::FlowError> {
        loop {
            if self.flushing.load(Ordering::Acquire) {
                return Err(gst::FlowError::Flushing);
            }
            match Input::open(path, o) {
                Ok(i) => {
                    gst::info!(CAT, imp = self, "reading {} ({})", path.display(), i.protocol());
                    return Ok(Some(i));
                }
                Err(e) if wait => {
                    gst::debug!(CAT, imp = self, "waiting for a writer on {}: {e}", path.display());
                    std::thread::sleep(SLICE);
                }
                Err(e) => {
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::OpenRead,
                        ("Cannot read the stream {}", path.display()),
                        ["{e}"]
                    );
                    return Err(gst::FlowError::Error);
                }
            }
        }
    }

    /// Block (in slices, so a flush ends it) until a frame comes.
    fn next_frame(&self) -> Result<Pulled, gst::FlowError> {
        let (path, wait_for_writer, options) = {
            let s = self.settings();
            let o = ReadOptions { lossless: s.lossless, max_held: s.max_held_slots as usize };
            (s.path.clone(), s.wait_for_writer, o)
        };
        let Some(path) = path else {
            gst::element_imp_error!(self, gst::ResourceError::NotFound, ("No stream: set the path property"));
            return Err(gst::FlowError::Error);
        };
        loop {
            if self.flushing.load(Ordering::Acquire) {
                return Err(gst::FlowError::Flushing);
            }
            let mut guard = self.state();
            let Some(state) = guard.as_mut() else { return Err(gst::FlowError::Flushing) };
            let input = match state.input.as_mut() {
                Some(i) => i,
                None => {
                    drop(guard);
                    let opened = self.open(&path, wait_for_writer, options)?;
                    let mut guard = self.state();
                    let Some(state) = guard.as_mut() else { return Err(gst::FlowError::Flushing) };
                    state.input = opened;
                    continue;
                }
            };
            match input.pull(SLICE, self.meta_ok.load(Ordering::Acquire)) {
                Ok(Some(frame)) => {
                    state.writer_lost = false;
                    return Ok(frame);
                }
                Ok(None) => continue,
                Err(PullError::WriterGone(why)) if wait_for_writer => {
                    // Open the path again while waiting: a new writer may
                    // have made a new file there. Say so once per loss.
                    state.input = None;
                    state.last_sequence = None;
                    state.last_pts = None;
                    let first = !std::mem::replace(&mut state.writer_lost, true);
                    if first {
                        state.stats.writer_restarts += 1;
                    }
                    drop(guard);
                    if first {
                        gst::info!(CAT, imp = self, "writer gone ({why}); waiting for a new one");
                        self.post_writer_message("shmimagesrc-writer-gone", &why);
                    }
                    std::thread::sleep(SLICE);
                }
                Err(PullError::WriterGone(why)) => {
                    drop(guard);
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Read,
                        ("The stream's writer has gone: {}", path.display()),
                        ["{why}"]
                    );
                    return Err(gst::FlowError::Error);
                }
                Err(PullError::Failed(why)) => {
                    drop(guard);
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Read,
                        ("Cannot read the stream {}", path.display()),
                        ["{why}"]
                    );
                    return Err(gst::FlowError::Error);
                }
            }
        }
    }

    fn post_writer_message(&self, name: &str, why: &str) {
        let s = gst::Structure::builder(name).field("reason", why).build();
        let _ = self.obj().post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }

    fn post_stats(&self, stats: Stats, info: Option<&gst_video::VideoInfo>) {
        let mut b = gst::Structure::builder("shmimagesrc-stats")
            .field("frames", stats.frames)
            .field("copied", stats.copied)
            .field("skipped", stats.skipped)
            .field("renegotiations", stats.renegotiations)
            .field("writer-restarts", stats.writer_restarts)
            .field("held-slots", stats.held_slots);
        if let Some(info) = info {
            b = b.field("format", info.format().to_str()).field("width", info.width()).field("height", info.height());
        }
        let _ = self.obj().post_message(gst::message::Element::builder(b.build()).src(&*self.obj()).build());
    }
}

#[glib::object_subclass]
impl ObjectSubclass for ShmImageSrc {
    const NAME: &'static str = "GstShmImageSrc";
    type Type = super::ShmImageSrc;
    type ParentType = gst_base::PushSrc;
}

impl ObjectImpl for ShmImageSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("path")
                    .nick("Stream file")
                    .blurb("Path of the shmimage stream file to read (native or EnSight 1.0, detected)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("wait-for-writer")
                    .nick("Wait for writer")
                    .blurb(
                        "When the stream is missing or its writer goes away, wait for a (new) writer instead of \
                         posting an error",
                    )
                    .default_value(DEFAULT_WAIT_FOR_WRITER)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("stats-interval")
                    .nick("Stats interval")
                    .blurb("Milliseconds between shmimagesrc-stats element messages on the bus (0: none)")
                    .default_value(DEFAULT_STATS_INTERVAL_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("lossless")
                    .nick("Lossless")
                    .blurb(
                        "Native streams: take every frame in order (the writer waits for this reader, up to its \
                         lossless wait) instead of the newest one",
                    )
                    .default_value(DEFAULT_LOSSLESS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-held-slots")
                    .nick("Max held slots")
                    .blurb(
                        "Native streams: how many frames downstream may hold in the stream's own memory (zero copy) \
                         at once; further frames are copied, so the writer never runs out of slots",
                    )
                    .minimum(0)
                    .maximum(64)
                    .default_value(DEFAULT_MAX_HELD_SLOTS)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings();
        match pspec.name() {
            "path" => s.path = value.get::<Option<String>>().ok().flatten().map(PathBuf::from),
            "wait-for-writer" => s.wait_for_writer = value.get().unwrap_or(DEFAULT_WAIT_FOR_WRITER),
            "stats-interval" => s.stats_interval_ms = value.get().unwrap_or(DEFAULT_STATS_INTERVAL_MS),
            "lossless" => s.lossless = value.get().unwrap_or(DEFAULT_LOSSLESS),
            "max-held-slots" => s.max_held_slots = value.get().unwrap_or(DEFAULT_MAX_HELD_SLOTS),
            other => gst::warning!(CAT, imp = self, "no property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings();
        match pspec.name() {
            "path" => s.path.as_ref().map(|p| p.display().to_string()).to_value(),
            "wait-for-writer" => s.wait_for_writer.to_value(),
            "stats-interval" => s.stats_interval_ms.to_value(),
            "lossless" => s.lossless.to_value(),
            "max-held-slots" => s.max_held_slots.to_value(),
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_live(true);
        obj.set_format(gst::Format::Time);
        obj.set_do_timestamp(false);
        obj.set_automatic_eos(false);
    }
}

impl GstObjectImpl for ShmImageSrc {}

impl ElementImpl for ShmImageSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "shmimage stream source",
                "Source/Video",
                "Reads frames from a shmimage shared-memory stream (native or EnSight 1.0) without copying \
                 native frames",
                "shmimage authors",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> =
            LazyLock::new(|| caps::native_template("src", gst::PadDirection::Src, *CAT));
        TEMPLATES.as_ref()
    }
}

impl BaseSrcImpl for ShmImageSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        if self.settings().path.is_none() {
            return Err(gst::error_msg!(gst::ResourceError::NotFound, ("No stream: set the path property")));
        }
        self.flushing.store(false, Ordering::Release);
        *self.state() = Some(State {
            input: None,
            info: None,
            last_sequence: None,
            last_pts: None,
            writer_lost: false,
            stats: Stats::default(),
            last_stats: Instant::now(),
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // Dropping the input gives the stream its reader slot back; buffers
        // still downstream keep their own references to the frames they wrap.
        *self.state() = None;
        *self.current() = None;
        Ok(())
    }

    /// Live latency: a frame reaches downstream up to one frame period after
    /// its capture (33 ms while the rate is unknown), so sinks that sync to
    /// the clock wait that long instead of dropping frames as late.
    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let fps = self.current().as_ref().map(|i| i.fps());
            let period = fps
                .filter(|f| f.numer() > 0)
                .and_then(|f| gst::ClockTime::SECOND.mul_div_floor(f.denom() as u64, f.numer() as u64))
                .unwrap_or(gst::ClockTime::from_mseconds(33));
            q.set(true, period, gst::ClockTime::NONE);
            return true;
        }
        BaseSrcImplExt::parent_query(self, query)
    }

    fn is_seekable(&self) -> bool {
        false
    }

    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let current = self.current().as_ref().and_then(|i| i.to_caps().ok());
        let caps = current.unwrap_or_else(caps::native_caps);
        Some(match filter {
            Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    /// Caps come from the frames: they are set when the first frame (or one
    /// in a new format or size) arrives, not negotiated up front.
    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        Ok(())
    }

    fn decide_allocation(&self, query: &mut gst::query::Allocation) -> Result<(), gst::LoggableError> {
        let ok = query.find_allocation_meta::<gst_video::VideoMeta>().is_some();
        gst::debug!(CAT, imp = self, "downstream reads video meta: {ok}");
        self.meta_ok.store(ok, Ordering::Release);
        self.parent_decide_allocation(query)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(true, Ordering::Release);
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(false, Ordering::Release);
        Ok(())
    }
}

impl PushSrcImpl for ShmImageSrc {
    fn create(&self, _buffer: Option<&mut gst::BufferRef>) -> Result<CreateSuccess, gst::FlowError> {
        let mut frame = self.next_frame()?;
        let obj = self.obj();
        let renegotiate = {
            let guard = self.state();
            guard.as_ref().map_or(true, |s| s.info.as_ref() != Some(&frame.info))
        };
        if renegotiate {
            let caps = frame.info.to_caps().map_err(|_| gst::FlowError::NotNegotiated)?;
            gst::info!(CAT, imp = self, "caps {caps}");
            if let Err(e) = obj.set_caps(&caps) {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("Downstream refused {}: {}", caps, e));
                return Err(gst::FlowError::NotNegotiated);
            }
        }
        let pts =
            frame.age.and_then(|age| clock::running_time_of_age(&*obj, age)).or_else(|| clock::running_time_now(&*obj));
        // The frame rate's period; for a stream without one, the interval
        // since the previous frame (muxers drop a last frame without duration).
        let fps = frame.info.fps();
        let duration = if fps.numer() > 0 {
            gst::ClockTime::SECOND.mul_div_floor(fps.denom() as u64, fps.numer() as u64)
        } else {
            let last = self.state().as_ref().and_then(|s| s.last_pts);
            pts.zip(last).and_then(|(p, l)| p.checked_sub(l))
        };
        {
            let b = frame.buffer.make_mut();
            b.set_pts(pts);
            b.set_duration(duration);
            b.set_offset(frame.sequence);
        }
        let mut post = None;
        {
            let mut guard = self.state();
            let Some(state) = guard.as_mut() else { return Err(gst::FlowError::Flushing) };
            if renegotiate {
                if state.info.is_some() {
                    state.stats.renegotiations += 1;
                }
                state.info = Some(frame.info.clone());
                *self.current() = Some(frame.info.clone());
            }
            if let Some(last) = state.last_sequence {
                state.stats.skipped += frame.sequence.saturating_sub(last).saturating_sub(1);
            }
            state.last_sequence = Some(frame.sequence);
            state.last_pts = pts.or(state.last_pts);
            state.stats.frames += 1;
            state.stats.copied += u64::from(frame.copied);
            if let Some((_, held)) = state.input.as_ref().and_then(|i| i.native_stats()) {
                state.stats.held_slots = held as u64;
            }
            let interval = u64::from(self.settings().stats_interval_ms);
            if interval > 0 && state.last_stats.elapsed() >= Duration::from_millis(interval) {
                state.last_stats = Instant::now();
                post = Some((state.stats, state.info.clone()));
            }
        }
        if let Some((stats, info)) = post {
            self.post_stats(stats, info.as_ref());
        }
        Ok(CreateSuccess::NewBuffer(frame.buffer))
    }
}
