//! Streams to other machines on GStreamer's transports: the pipelines behind
//! `shmimage send` and `shmimage receive`, and a runner for them.
//!
//! Video travels as RTP (raw, RFC 4175, for a LAN; or H.264 for slow links)
//! in GDP framing over one TCP connection from the sender to the receiver.
//! GDP carries the caps (size, format, rate, and the RTP parameters the
//! depayloader needs) and each packet's timestamp; TCP makes the raw path
//! lossless and tells the receiver at once when the sender is gone.
//! The stream's pixel format travels as a field of the RTP caps
//! (`x-shmimage-format`, set by `capssetter`), so the receiver converts back
//! to it: a stream in NV12 or GRAY8 arrives in NV12 or GRAY8 whatever the wire
//! carried.
//! Both ends run on the system's real-time clock with base time 0, so a
//! buffer's running time is the frame's capture time on the wall clock and
//! the receiver writes the sender's capture times into its stream.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gst::prelude::*;

/// How frames are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Uncompressed RTP (rtpvrawpay): pixel-exact for RGB, BGR, RGBA, BGRA,
    /// I420 and NV12 (carried as I420); other formats are converted to one of
    /// these.
    Raw,
    /// H.264 (x264enc, zero-latency tuning) over RTP: lossy, for slow links.
    H264,
}

/// What `send` does.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// The stream to read.
    pub stream: PathBuf,
    /// The receiver's address.
    pub host: String,
    /// The receiver's TCP port.
    pub port: u16,
    /// Encoding on the wire.
    pub codec: Codec,
    /// H.264 bit rate in kbit/s.
    pub bitrate_kbps: u32,
    /// Wait for the stream's writer to appear (or come back) instead of failing.
    pub wait_for_writer: bool,
}

/// What `receive` does.
#[derive(Debug, Clone)]
pub struct ReceiveOptions {
    /// The stream to write (created with the sender's frame size if missing).
    pub stream: PathBuf,
    /// Local address to listen on.
    pub bind: String,
    /// TCP port to listen on.
    pub port: u16,
    /// Write an EnSight 1.0 (RGB) stream instead of a native one.
    pub ensight: bool,
}

/// Formats rtpvrawpay carries that the stream also knows.
const RAW_WIRE_FORMATS: &str = "{RGB,BGR,RGBA,BGRA,I420}";

/// Quote a path or host for gst-launch syntax.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn path_arg(p: &Path) -> String {
    quoted(&p.display().to_string())
}

/// The sender's pipeline in gst-launch-1.0 syntax.
pub fn send_pipeline(o: &SendOptions) -> String {
    let src = format!(
        "shmimagesrc name=src path={} wait-for-writer={} ! queue max-size-buffers=2 leaky=downstream",
        path_arg(&o.stream),
        o.wait_for_writer
    );
    let encode = match o.codec {
        Codec::Raw => format!("videoconvert ! video/x-raw,format={RAW_WIRE_FORMATS} ! rtpvrawpay mtu=60000"),
        Codec::H264 => format!(
            "videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast \
             bitrate={} key-int-max=30 ! rtph264pay config-interval=-1 mtu=60000",
            o.bitrate_kbps
        ),
    };
    format!(
        "{src} ! {encode} ! capssetter name=tag join=true caps=application/x-rtp ! gdppay ! \
         tcpclientsink host={} port={} sync=false",
        quoted(&o.host),
        o.port
    )
}

/// The receiver's pipeline in gst-launch-1.0 syntax (decodebin picks the
/// depayloader and decoder from the caps the sender sent).
pub fn receive_pipeline(o: &ReceiveOptions) -> String {
    // A 1.0 stream is RGB whatever the sender's format: no format to restore.
    let restore = if o.ensight { "" } else { "capsfilter name=fmt ! " };
    format!(
        "tcpserversrc host={} port={} ! gdpdepay name=depay ! decodebin ! videoconvert ! {restore}\
         shmimagesink path={} ensight={} remove-on-stop=false sync=false",
        quoted(&o.bind),
        o.port,
        path_arg(&o.stream),
        o.ensight
    )
}

/// How a pipeline run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// End of stream: for a receiver, the sender disconnected.
    Eos,
    /// `stop` returned true.
    Stopped,
}

/// Build `desc` on the real-time clock with base time 0 (see the module
/// docs), play it until EOS, an error or `stop()`, and stop it. Element
/// messages (stats) go to `on_element`.
pub fn run(
    desc: &str,
    stop: &dyn Fn() -> bool,
    on_element: &mut dyn FnMut(&gst::StructureRef),
) -> Result<Ended, String> {
    let pipeline = gst::parse::launch(desc)
        .map_err(|e| format!("pipeline {desc}: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    // A clock of our own: the process-wide system clock stays monotonic for
    // any other pipeline.
    let clock =
        gst::glib::Object::builder::<gst::SystemClock>().property("clock-type", gst::ClockType::Realtime).build();
    pipeline.use_clock(Some(&clock));
    pipeline.set_start_time(gst::ClockTime::NONE);
    pipeline.set_base_time(gst::ClockTime::ZERO);
    tag_formats(&pipeline);
    let result = play(&pipeline, stop, on_element);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// The caps field naming the stream's pixel format on the wire.
const FORMAT_FIELD: &str = "x-shmimage-format";

/// Sender (elements `src` and `tag`): put the stream's format into the RTP
/// caps. Receiver (`depay` and `fmt`): convert decoded frames back to it.
/// Pipelines without those elements are left alone.
fn tag_formats(pipeline: &gst::Pipeline) {
    let on_caps = |pad: &gst::Pad, f: Box<dyn Fn(&gst::CapsRef) + Send + Sync>| {
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(ev)) = &info.data {
                if let gst::EventView::Caps(c) = ev.view() {
                    f(c.caps());
                }
            }
            gst::PadProbeReturn::Ok
        });
    };
    if let (Some(src), Some(tag)) = (pipeline.by_name("src"), pipeline.by_name("tag")) {
        if let Some(pad) = src.static_pad("src") {
            on_caps(
                &pad,
                Box::new(move |caps| {
                    let format = caps.structure(0).and_then(|s| s.get::<String>("format").ok());
                    if let Some(format) = format {
                        let tagged = gst::Caps::builder("application/x-rtp").field(FORMAT_FIELD, format).build();
                        tag.set_property("caps", &tagged);
                    }
                }),
            );
        }
    }
    if let (Some(depay), Some(fmt)) = (pipeline.by_name("depay"), pipeline.by_name("fmt")) {
        if let Some(pad) = depay.static_pad("src") {
            on_caps(
                &pad,
                Box::new(move |caps| {
                    let format = caps.structure(0).and_then(|s| s.get::<String>(FORMAT_FIELD).ok());
                    let known = format.filter(|f| crate::caps::NATIVE_FORMATS.iter().any(|v| v.to_str() == f.as_str()));
                    let wanted = match known {
                        Some(f) => gst::Caps::builder("video/x-raw").field("format", f).build(),
                        None => gst::Caps::new_any(),
                    };
                    fmt.set_property("caps", &wanted);
                }),
            );
        }
    }
}

fn play(
    pipeline: &gst::Pipeline,
    stop: &dyn Fn() -> bool,
    on_element: &mut dyn FnMut(&gst::StructureRef),
) -> Result<Ended, String> {
    let bus = pipeline.bus().ok_or("pipeline without a bus")?;
    pipeline.set_state(gst::State::Playing).map_err(|_| first_error(&bus).unwrap_or_else(|| "cannot start".into()))?;
    loop {
        if stop() {
            return Ok(Ended::Stopped);
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else { continue };
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(Ended::Eos),
            gst::MessageView::Error(e) => return Err(describe(e)),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure() {
                    on_element(s);
                }
            }
            _ => {}
        }
    }
}

fn describe(e: &gst::message::Error) -> String {
    let from = e.src().map(|s| s.name().to_string()).unwrap_or_default();
    match e.debug() {
        Some(d) => format!("{from}: {} ({d})", e.error()),
        None => format!("{from}: {}", e.error()),
    }
}

fn first_error(bus: &gst::Bus) -> Option<String> {
    let msg = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(500), &[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(describe(e)),
        _ => None,
    }
}

/// How long a receiver waits before listening again after a failure.
pub const RELISTEN: Duration = Duration::from_millis(200);
