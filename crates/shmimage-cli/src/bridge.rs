//! `shmimage bridge`: be the one client of an EnSight 1.0 stream (EnSight's
//! own, for example) and republish its frames on a native stream, which any
//! number of readers can join.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use shmimage::native::{FrameDesc, PixelFormat};
use shmimage::Protocol;

use crate::endpoints::{protocol_of, Ended, Input, Output, Put};
use crate::output::{install_stop_handler, parse_secs, parse_wxh, stopped, Flow, Out, OutputArgs, Result};

#[derive(Debug, Args)]
#[command(after_help = "\
The native stream is created when missing, with slots sized for --max (or,
without it, for the first frame that arrives); an existing native file is
taken over as its writer. Frames keep their 1.0 numbers' order; readers see
them as RGB8. Ends on Ctrl-C, after --count frames, when the 1.0 server exits
(after at least one frame), or with an error after --timeout without frames.

Examples:
  shmimage bridge /dev/shm/ensight.shm /dev/shm/native.shm
  shmimage bridge /dev/shm/ensight.shm /dev/shm/native.shm --max 3840x2160 --slots 8")]
pub struct BridgeArgs {
    /// The EnSight 1.0 stream to read (as its one client).
    pub from: PathBuf,
    /// The native stream to write (created if missing).
    pub to: PathBuf,
    /// Size the new native stream's slots for frames up to WxH.
    #[arg(long, value_parser = parse_wxh, value_name = "WxH")]
    pub max: Option<(u32, u32)>,
    /// Slots of a new native stream (2..64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=64))]
    pub slots: u32,
    /// Stop after N frames.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Fail when no frame arrives for this many seconds [default: wait forever].
    #[arg(long, value_parser = parse_secs, value_name = "SECS")]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(a: BridgeArgs) -> Result<()> {
    install_stop_handler();
    let out = Out::new(&a.output);
    if protocol_of(&a.from) == Some(Protocol::Native) {
        return Err(
            format!("{} is already a native stream; bridge reads an EnSight 1.0 stream", a.from.display()).into()
        );
    }
    let existing = protocol_of(&a.to);
    if existing == Some(Protocol::Ensight1) {
        return Err(format!(
            "{} is an EnSight 1.0 stream; bridge writes a native one (choose a new file)",
            a.to.display()
        )
        .into());
    }
    let input = Input::open(&a.from, false)?;
    let slot_for = |w: u32, h: u32| FrameDesc::packed(PixelFormat::Rgb8, w, h).map(|d| d.len());
    let mut output = match (existing, a.max) {
        (Some(_), _) => Some(Output::open(&a.to, false)?),
        (None, Some((w, h))) => {
            Some(Output::create_native(&a.to, a.slots, slot_for(w, h).map_err(|e| e.to_string())?, false)?)
        }
        // Sized by the first frame.
        (None, None) => None,
    };
    let (from, to) = (a.from.display().to_string(), a.to.display().to_string());
    out.line(format!("bridging {from} (ensight-1.0) to {to} (native)"));
    let mut status = out.status(a.count);
    let mut flow = Flow::new();
    let mut skipped = 0u64;
    let mut dropped = 0u64;
    let mut last: Option<u64> = None;
    let mut packed = Vec::new();
    let outcome: Result<()> = loop {
        if stopped() || a.count.is_some_and(|c| flow.frames() >= c) {
            break Ok(());
        }
        let frame = match input.read(&a.from, a.timeout) {
            Ok(f) => f,
            Err(Ended::Stopped) => break Ok(()),
            Err(Ended::PeerGone) if flow.frames() > 0 => {
                status.event("server_left", format!("the server of {from} exited"), json!({}));
                break Ok(());
            }
            Err(Ended::PeerGone) => break Err(format!("the server of {from} exited before any frame").into()),
            Err(Ended::Timeout) => break Err(format!("no frame arrived on {from} within --timeout").into()),
            Err(Ended::Failed(e)) => break Err(e),
        };
        skipped += frame.skipped_since(last);
        last = Some(frame.number());
        let (w, h) = (frame.width(), frame.height());
        if let Err(e) = frame.packed_into(&mut packed) {
            break Err(e.into());
        }
        drop(frame);
        let stream = match &output {
            Some(s) => s,
            None => match slot_for(w, h)
                .map_err(|e| e.to_string())
                .and_then(|slot| Output::create_native(&a.to, a.slots, slot, false).map_err(|e| e.to_string()))
            {
                Ok(s) => {
                    status.event("created", format!("created {to} (native) for {w}x{h} frames"), json!({"path": to}));
                    output.insert(s)
                }
                Err(e) => break Err(e.into()),
            },
        };
        if let Err(why) = stream.check_fits(w, h, PixelFormat::Rgb8) {
            break Err(
                format!("{w}x{h} frames do not fit {to}: {why}; bridge into a new file with --max {w}x{h}").into()
            );
        }
        let desc = match FrameDesc::packed(PixelFormat::Rgb8, w, h) {
            Ok(d) => d,
            Err(e) => break Err(e.to_string().into()),
        };
        match stream.put(&a.to, 0, &desc, &packed) {
            Ok(Put::Sent(_)) => flow.tick(),
            Ok(_) => dropped += 1,
            // Ctrl-C closes the stream under a put in flight: a stop, not a failure.
            Err(_) if stopped() => break Ok(()),
            Err(e) => break Err(e),
        }
        status.update(flow.frames(), || {
            format!("{} frame(s) bridged, {:.1} frames/s, {skipped} skipped", flow.frames(), flow.live_fps())
        });
    };
    status.finish();
    input.close();
    let mut v = flow.json();
    v["from"] = json!(from);
    v["to"] = json!(to);
    v["skipped"] = json!(skipped);
    v["dropped"] = json!(dropped);
    out.done(format!("bridged {}, {skipped} skipped, {dropped} dropped", flow.describe()), v, &outcome);
    outcome
}
