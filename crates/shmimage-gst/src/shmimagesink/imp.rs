//! The `shmimagesink` subclass: properties, caps, rendering and stats.

use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::output::{Output, Written};
use crate::{caps, clock};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("shmimagesink", gst::DebugColorFlags::empty(), Some("shmimage stream sink"))
});

const DEFAULT_ENSIGHT: bool = false;
const DEFAULT_REMOVE_ON_STOP: bool = true;
const DEFAULT_STATS_INTERVAL_MS: u32 = 1000;
const DEFAULT_SLOTS: u32 = 4;

#[derive(Debug, Clone)]
struct Settings {
    path: Option<PathBuf>,
    ensight: bool,
    remove_on_stop: bool,
    stats_interval_ms: u32,
    slots: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            path: None,
            ensight: DEFAULT_ENSIGHT,
            remove_on_stop: DEFAULT_REMOVE_ON_STOP,
            stats_interval_ms: DEFAULT_STATS_INTERVAL_MS,
            slots: DEFAULT_SLOTS,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    frames: u64,
    copied: u64,
    in_place: u64,
    dropped: u64,
}

#[derive(Debug)]
struct State {
    output: Option<Output>,
    info: Option<gst_video::VideoInfo>,
    stats: Stats,
    last_stats: Instant,
}

/// The element's private part.
#[derive(Debug, Default)]
pub struct ShmImageSink {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

impl ShmImageSink {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long ago the buffer's PTS was, in the pipeline's running time.
    fn age(&self, buffer: &gst::BufferRef) -> Option<Duration> {
        let obj = self.obj();
        let pts = buffer.pts()?;
        let segment = obj.segment();
        let segment = segment.downcast_ref::<gst::ClockTime>()?;
        let rt = segment.to_running_time(pts)?;
        clock::age_of_running_time(&*obj, rt)
    }

    /// The open output, opened (or created) for `info` if needed.
    fn ensure_output<'a>(
        &self,
        state: &'a mut State,
        info: &gst_video::VideoInfo,
    ) -> Result<&'a mut Output, gst::FlowError> {
        if state.output.is_none() {
            let (path, ensight, slots) = {
                let s = self.settings();
                (s.path.clone(), s.ensight, s.slots)
            };
            let path = path.ok_or(gst::FlowError::Error)?;
            match Output::open(&path, info, ensight, slots) {
                Ok(o) => state.output = Some(o),
                Err(e) => {
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::OpenWrite,
                        ("Cannot write the stream {}", path.display()),
                        ["{e}"]
                    );
                    return Err(gst::FlowError::Error);
                }
            }
        }
        state.output.as_mut().ok_or(gst::FlowError::Error)
    }

    fn post_stats(&self, stats: Stats) {
        let s = gst::Structure::builder("shmimagesink-stats")
            .field("frames", stats.frames)
            .field("copied", stats.copied)
            .field("in-place", stats.in_place)
            .field("dropped", stats.dropped)
            .build();
        let _ = self.obj().post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }
}

#[glib::object_subclass]
impl ObjectSubclass for ShmImageSink {
    const NAME: &'static str = "GstShmImageSink";
    type Type = super::ShmImageSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for ShmImageSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("path")
                    .nick("Stream file")
                    .blurb(
                        "Path of the shmimage stream file to write; created with the pipeline's frame size if missing",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("ensight")
                    .nick("EnSight 1.0")
                    .blurb(
                        "Write an EnSight protocol 1.0 stream (RGB only, for EnSight clients) instead of a native one",
                    )
                    .default_value(DEFAULT_ENSIGHT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("remove-on-stop")
                    .nick("Remove on stop")
                    .blurb("Remove the stream file when the element stops, if this element created it")
                    .default_value(DEFAULT_REMOVE_ON_STOP)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("stats-interval")
                    .nick("Stats interval")
                    .blurb("Milliseconds between shmimagesink-stats element messages on the bus (0: none)")
                    .default_value(DEFAULT_STATS_INTERVAL_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("slots")
                    .nick("Slots")
                    .blurb("Native streams this element creates: frame slots in the file (readers hold some, the writer fills another)")
                    .minimum(2)
                    .maximum(64)
                    .default_value(DEFAULT_SLOTS)
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
            "ensight" => s.ensight = value.get().unwrap_or(DEFAULT_ENSIGHT),
            "remove-on-stop" => s.remove_on_stop = value.get().unwrap_or(DEFAULT_REMOVE_ON_STOP),
            "stats-interval" => s.stats_interval_ms = value.get().unwrap_or(DEFAULT_STATS_INTERVAL_MS),
            "slots" => s.slots = value.get().unwrap_or(DEFAULT_SLOTS),
            other => gst::warning!(CAT, imp = self, "no property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        // A lent slot is published when its buffer is released: keeping the
        // last sample would hold every frame back by one.
        self.obj().set_enable_last_sample(false);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings();
        match pspec.name() {
            "path" => s.path.as_ref().map(|p| p.display().to_string()).to_value(),
            "ensight" => s.ensight.to_value(),
            "remove-on-stop" => s.remove_on_stop.to_value(),
            "stats-interval" => s.stats_interval_ms.to_value(),
            "slots" => s.slots.to_value(),
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }
}

impl GstObjectImpl for ShmImageSink {}

impl ElementImpl for ShmImageSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "shmimage stream sink",
                "Sink/Video",
                "Writes raw video into a shmimage shared-memory stream (native, or EnSight 1.0 RGB)",
                "shmimage authors",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> =
            LazyLock::new(|| caps::native_template("sink", gst::PadDirection::Sink, *CAT));
        TEMPLATES.as_ref()
    }
}

impl BaseSinkImpl for ShmImageSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        if self.settings().path.is_none() {
            return Err(gst::error_msg!(gst::ResourceError::NotFound, ("No stream: set the path property")));
        }
        *self.state() = Some(State { output: None, info: None, stats: Stats::default(), last_stats: Instant::now() });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let remove = self.settings().remove_on_stop;
        let state = self.state().take();
        if let Some(output) = state.and_then(|s| s.output) {
            let created = output.created().map(|p| p.to_owned());
            drop(output);
            if let (true, Some(p)) = (remove, created) {
                if let Err(e) = std::fs::remove_file(&p) {
                    gst::warning!(CAT, imp = self, "cannot remove {}: {e}", p.display());
                }
            }
        }
        Ok(())
    }

    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let caps = if self.settings().ensight { caps::ensight_caps() } else { caps::native_caps() };
        Some(match filter {
            Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|_| gst::loggable_error!(CAT, "caps {caps} are not raw video"))?;
        gst::info!(CAT, imp = self, "caps {caps}");
        let mut guard = self.state();
        let state = guard.as_mut().ok_or_else(|| gst::loggable_error!(CAT, "caps before start"))?;
        if state.output.as_ref().is_some_and(|o| !o.accepts(&info)) {
            // A stream this element made is made again, larger; readers
            // waiting for a writer find the new file by its path.
            if let Some(old) = state.output.take() {
                let created = old.created().map(|p| p.to_owned());
                drop(old);
                if let Some(p) = created {
                    gst::info!(CAT, imp = self, "{caps} does not fit {}: creating it again", p.display());
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        state.info = Some(info);
        Ok(())
    }

    /// The final tallies go out at end of stream, whatever the interval.
    fn event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            let stats = self.state().as_ref().map(|s| s.stats);
            if let Some(stats) = stats {
                self.post_stats(stats);
            }
        }
        self.parent_event(event)
    }

    fn propose_allocation(&self, query: &mut gst::query::Allocation) -> Result<(), gst::LoggableError> {
        // Frames are read through GstVideoFrame, which honours the meta's
        // strides and offsets, so upstream may pad its rows.
        query.add_allocation_meta::<gst_video::VideoMeta>(None);
        let (caps, need_pool) = query.get_owned();
        let ensight = self.settings().ensight;
        if let (Some(caps), true, false) = (caps, need_pool, ensight) {
            if let Ok(info) = gst_video::VideoInfo::from_caps(&caps) {
                let mut guard = self.state();
                let lender = guard
                    .as_mut()
                    .and_then(|state| self.ensure_output(state, &info).ok())
                    .filter(|o| o.accepts(&info))
                    .and_then(|o| o.native().map(|n| n.lender()));
                drop(guard);
                if let Some((writer, loans)) = lender {
                    let pool = glib::Object::new::<super::SlotPoolObj>();
                    pool.imp().set_target(writer, loans);
                    let mut config = pool.config();
                    config.set_params(Some(&caps), info.size() as u32, 0, 0);
                    config.add_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META.as_str());
                    if pool.set_config(config).is_ok() {
                        gst::debug!(CAT, imp = self, "offering the stream's slots to draw into");
                        query.add_allocation_pool(Some(&pool), info.size() as u32, 0, 0);
                    }
                }
            }
        }
        self.parent_propose_allocation(query)
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let interval = self.settings().stats_interval_ms;
        let age = self.age(buffer);
        let mut post = None;
        {
            let mut guard = self.state();
            let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
            let info = state.info.clone().ok_or(gst::FlowError::NotNegotiated)?;
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info).map_err(|_| {
                gst::element_imp_error!(self, gst::CoreError::Failed, ("Cannot map a buffer as {:?}", info.format()));
                gst::FlowError::Error
            })?;
            let output = self.ensure_output(state, &info)?;
            let in_place = output.native().is_some_and(|n| n.publish_lent(buffer, age, info.fps()));
            let written = if in_place { Ok(Written::InPlace) } else { output.write(&frame, age, info.fps()) };
            match written {
                Ok(w) => {
                    state.stats.frames += 1;
                    match w {
                        Written::Copied => state.stats.copied += 1,
                        Written::InPlace => state.stats.in_place += 1,
                        Written::Dropped => state.stats.dropped += 1,
                    }
                }
                Err(e) => {
                    gst::element_imp_error!(self, gst::ResourceError::Write, ("Cannot write a frame"), ["{e}"]);
                    return Err(gst::FlowError::Error);
                }
            }
            if interval > 0 && state.last_stats.elapsed() >= Duration::from_millis(u64::from(interval)) {
                state.last_stats = Instant::now();
                post = Some(state.stats);
            }
        }
        if let Some(stats) = post {
            self.post_stats(stats);
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
