//! `shmimage record`: be the client of a stream and write its frames to a
//! folder as PNG (or raw RGB) files named by frame number, or to standard
//! output as YUV4MPEG2 (or raw RGB) for ffmpeg and other tools.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use shmimage::native::PixelFormat;

use crate::endpoints::{Ended, Input};
use crate::output::{install_stop_handler, parse_fps, parse_secs, stopped, Flow, Out};
use crate::output::{OutputArgs, Result};
use crate::y4m::Y4mWriter;

#[derive(Debug, Args)]
#[command(after_help = "\
Files are named by the server's frame number: frame-000123.png (or .rgb with
--raw: WIDTH*HEIGHT*3 bytes, rows top-down; the size is printed with --json).
Existing files of the same name are overwritten.

With --out - the frames go to standard output instead, one after another:
YUV4MPEG2 4:4:4 (BT.601, limited range), or raw RGB with --raw; reports then
go to standard error. A pipe carries one frame size: a size change ends the
recording with an error.

Ends with exit status 0 when --count frames are written, on Ctrl-C, or (without
--count) when the server exits after sending at least one frame. Ends with 1
when no frame arrives for --timeout seconds, or the server exits before --count.

Examples:
  shmimage record /dev/shm/stream.shm --out frames --count 100
  shmimage record /dev/shm/stream.shm --out frames --every 30 --timeout 60
  shmimage record /dev/shm/stream.shm --out raw --raw --count 10 --json
  shmimage record /dev/shm/stream.shm --out - --count 300 | ffmpeg -i - out.mp4
  shmimage record /dev/shm/stream.shm --out - --raw | ffplay -f rawvideo -pixel_format rgb24 -video_size 1280x720 -")]
pub struct RecordArgs {
    /// The stream file (made by `shmimage create` or the stream's creator).
    pub file: PathBuf,
    /// The folder to write frames into (created if missing), or - for
    /// standard output (YUV4MPEG2, or raw RGB with --raw).
    #[arg(long, short, value_name = "DIR|-")]
    pub out: PathBuf,
    /// Write raw RGB (.rgb files, or bytes on stdout) instead of PNG / y4m.
    #[arg(long)]
    pub raw: bool,
    /// Ask for every frame (native streams: the writer waits, within bounds,
    /// for this reader; 1.0 streams need `serve --lossless` instead).
    #[arg(long)]
    pub lossless: bool,
    /// The frame rate written into the y4m header with --out - (the stream
    /// itself has none).
    #[arg(long, default_value = "30", value_parser = parse_fps, value_name = "N")]
    pub fps: f64,
    /// Stop after writing N frames.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Write one frame of every K received (the first, then every K-th).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..), value_name = "K")]
    pub every: u64,
    /// Fail when no frame arrives for this many seconds.
    #[arg(long, default_value = "10", value_parser = parse_secs, value_name = "SECS")]
    pub timeout: Duration,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn write_png(path: &Path, w: u32, h: u32, format: PixelFormat, packed: &[u8]) -> std::result::Result<(), String> {
    let (color, depth, rows) = crate::pixels::for_png(format, packed)?;
    let f = File::create(path).map_err(|e| e.to_string())?;
    let mut enc = png::Encoder::new(BufWriter::new(f), w, h);
    enc.set_color(color);
    enc.set_depth(depth);
    // Recording keeps up with a live stream; file size matters less.
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(&rows).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}

fn write_raw(path: &Path, rgb: &[u8]) -> std::result::Result<(), String> {
    let mut f = BufWriter::new(File::create(path).map_err(|e| e.to_string())?);
    f.write_all(rgb).and_then(|()| f.flush()).map_err(|e| e.to_string())
}

/// A frame handed to the writer thread.
struct Job {
    path: PathBuf,
    number: u64,
    format: PixelFormat,
    width: u32,
    height: u32,
    /// Packed rows (no padding), plane after plane.
    pixels: Vec<u8>,
}

/// A frame written (its pixels went back for reuse).
struct Written {
    path: PathBuf,
    number: u64,
    width: u32,
    height: u32,
}

/// What the main loop knows of finished writes.
#[derive(Default)]
struct Tally {
    saved: u64,
    first_file: Option<PathBuf>,
    last_file: Option<PathBuf>,
}

impl Tally {
    fn take(&mut self, out: &Out, r: std::result::Result<Written, String>) -> Result<()> {
        let w = r?;
        self.saved += 1;
        out.record(&json!({
            "event": "frame",
            "number": w.number,
            "width": w.width,
            "height": w.height,
            "path": w.path.display().to_string(),
        }));
        self.first_file.get_or_insert_with(|| w.path.clone());
        self.last_file = Some(w.path);
        Ok(())
    }
}

/// Where the frames go.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sink {
    PngFiles,
    RawFiles,
    /// Standard output, raw RGB or y4m.
    Stdout {
        y4m: bool,
        fps: f64,
    },
}

/// Frames one after another on standard output, all of one size.
struct StdoutFrames {
    out: BufWriter<std::io::Stdout>,
    y4m: Option<Y4mWriter<BufWriter<std::io::Stdout>>>,
    want_y4m: bool,
    fps: f64,
    size: Option<(u32, u32)>,
}

impl StdoutFrames {
    fn write(&mut self, w: u32, h: u32, format: PixelFormat, packed: &[u8]) -> std::result::Result<(), String> {
        match self.size {
            Some(s) if s != (w, h) => {
                return Err(format!(
                    "the stream changed its frame size from {}x{} to {w}x{h}, and a pipe carries one size; \
                     record into a folder (--out DIR) to keep every size",
                    s.0, s.1
                ))
            }
            Some(_) => {}
            None => {
                self.size = Some((w, h));
                if self.want_y4m {
                    let out = BufWriter::with_capacity(1 << 20, std::io::stdout());
                    self.y4m = Some(Y4mWriter::new(out, w, h, self.fps).map_err(|e| e.to_string())?);
                }
            }
        }
        let r = match &mut self.y4m {
            Some(y) => y.write(&crate::pixels::to_rgb8(format, packed)?).map_err(|e| e.to_string()),
            None => self.out.write_all(packed).map_err(|e| e.to_string()),
        };
        r.map_err(|e| format!("writing to standard output: {e}"))
    }

    fn flush(&mut self) -> std::result::Result<(), String> {
        // y4m's encoder writes straight through its BufWriter; flush both.
        let r = match &mut self.y4m {
            Some(_) => std::io::stdout().flush(),
            None => self.out.flush(),
        };
        r.map_err(|e| format!("writing to standard output: {e}"))
    }
}

/// Encode and write frames on their own thread, so PNG compression overlaps
/// with taking the next frame instead of making the client skip it.
/// The writer thread's ends: jobs in, results out, pixel buffers back.
struct Writer {
    jobs: SyncSender<Job>,
    done: Receiver<std::result::Result<Written, String>>,
    spare: Receiver<Vec<u8>>,
    handle: JoinHandle<()>,
}

fn spawn_writer(sink: Sink) -> Writer {
    // Two frames in flight: enough to absorb jitter, little memory.
    let (job_tx, job_rx) = sync_channel::<Job>(2);
    let (done_tx, done_rx) = channel();
    let (spare_tx, spare_rx) = channel();
    let handle = std::thread::spawn(move || {
        let mut stdout = match sink {
            Sink::Stdout { y4m, fps } => Some(StdoutFrames {
                out: BufWriter::with_capacity(1 << 20, std::io::stdout()),
                y4m: None,
                want_y4m: y4m,
                fps,
                size: None,
            }),
            _ => None,
        };
        for job in job_rx {
            let r = match (&mut stdout, sink) {
                (Some(s), _) => s.write(job.width, job.height, job.format, &job.pixels).and_then(|()| s.flush()),
                (None, Sink::RawFiles) => {
                    write_raw(&job.path, &job.pixels).map_err(|e| format!("cannot write {}: {e}", job.path.display()))
                }
                (None, _) => write_png(&job.path, job.width, job.height, job.format, &job.pixels)
                    .map_err(|e| format!("cannot write {}: {e}", job.path.display())),
            };
            let failed = r.is_err();
            let r = r.map(|()| Written {
                path: job.path.clone(),
                number: job.number,
                width: job.width,
                height: job.height,
            });
            let _ = spare_tx.send(job.pixels);
            if done_tx.send(r).is_err() || failed {
                return;
            }
        }
    });
    Writer { jobs: job_tx, done: done_rx, spare: spare_rx, handle }
}

pub fn run(a: RecordArgs) -> Result<()> {
    install_stop_handler();
    let to_stdout = a.out.as_os_str() == "-";
    // With frames on stdout, reports go to stderr.
    let out = if to_stdout { Out::on_stderr(&a.output) } else { Out::new(&a.output) };
    if !to_stdout {
        std::fs::create_dir_all(&a.out)
            .map_err(|e| format!("cannot create the output folder {}: {e}", a.out.display()))?;
    }
    let input = Input::open(&a.file, a.lossless)?;
    let name = a.file.display().to_string();
    let (sink, what) = match (to_stdout, a.raw) {
        (true, true) => (Sink::Stdout { y4m: false, fps: a.fps }, "standard output (raw RGB)".to_owned()),
        (true, false) => (Sink::Stdout { y4m: true, fps: a.fps }, "standard output (y4m)".to_owned()),
        (false, true) => (Sink::RawFiles, format!("{} (rgb)", a.out.display())),
        (false, false) => (Sink::PngFiles, format!("{} (png)", a.out.display())),
    };
    let ext = if a.raw { "rgb" } else { "png" };
    out.line(format!("recording {name} into {what}"));
    let mut status = out.status(a.count);
    let Writer { jobs: job_tx, done: done_rx, spare: spare_rx, handle: writer } = spawn_writer(sink);

    let (mut queued, mut missed) = (0u64, 0u64);
    let mut flow = Flow::new();
    let mut tally = Tally::default();
    let mut last_number: Option<u64> = None;
    let mut last_frame_at = Instant::now();

    let mut outcome: Result<()> = loop {
        if let Err(e) = done_rx.try_iter().try_for_each(|r| tally.take(&out, r)) {
            break Err(e);
        }
        if stopped() || a.count.is_some_and(|c| queued >= c) {
            break Ok(());
        }
        // The engine's wait, up to the --timeout deadline; Ctrl-C cancels it.
        let left = a.timeout.saturating_sub(last_frame_at.elapsed());
        let job = match input.read(&a.file, Some(left)) {
            Ok(frame) => {
                flow.tick();
                // Frames the writer published that this reader never took
                // (a 1.0 client gets the newest frame only).
                missed += frame.skipped_since(last_number);
                let number = frame.number();
                last_number = Some(number);
                // Copy out and release at once; the writer thread encodes.
                if (flow.frames() - 1) % a.every == 0 {
                    let mut pixels = spare_rx.try_recv().unwrap_or_default();
                    if let Err(e) = frame.packed_into(&mut pixels) {
                        break Err(format!("{name}: frame {number}: {e}").into());
                    }
                    let path =
                        if to_stdout { PathBuf::from("-") } else { a.out.join(format!("frame-{number:06}.{ext}")) };
                    let (format, width, height) = (frame.format(), frame.width(), frame.height());
                    Some(Job { path, number, format, width, height, pixels })
                } else {
                    None
                }
            }
            Err(Ended::Stopped) => break Ok(()),
            Err(Ended::Timeout) => {
                let quiet_for = last_frame_at.elapsed();
                let what = if flow.frames() == 0 { "no frame arrived" } else { "no new frame arrived" };
                break Err(format!(
                    "{what} on {name} for {:.1} s (--timeout); is a server running? \
                     `shmimage inspect {name}` shows the stream's state",
                    quiet_for.as_secs_f64()
                )
                .into());
            }
            // No writer yet (a new native file, or its writer restarts):
            // wait for one, within --timeout, as a 1.0 client waits for its server.
            Err(Ended::PeerGone) if flow.frames() == 0 => {
                if last_frame_at.elapsed() >= a.timeout {
                    break Err(format!(
                        "no frame arrived on {name} for {:.1} s (--timeout): no writer is running",
                        a.timeout.as_secs_f64()
                    )
                    .into());
                }
                status.update(0, || format!("waiting for a writer on {name}"));
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(Ended::PeerGone) => {
                if a.count.is_none() && queued > 0 {
                    status.event("server_left", format!("the server of {name} exited; stream ended"), json!({}));
                    break Ok(());
                }
                let expected = a.count.map_or(String::new(), |c| format!(" of the {c} asked for (--count)"));
                break Err(
                    format!("the server of {name} exited after {queued} frame(s) were recorded{expected}").into()
                );
            }
            Err(Ended::Failed(e)) => break Err(e),
        };
        last_frame_at = Instant::now();
        let Some(job) = job else { continue };
        let number = job.number;
        let (w, h) = (job.width, job.height);
        if job_tx.send(job).is_err() {
            // The writer stopped on an error; it is waiting in done_rx.
            continue;
        }
        queued += 1;
        status.update(tally.saved, || {
            format!(
                "frame {number} ({w}x{h}): {} written, {:.1} frames/s received, {missed} skipped",
                tally.saved,
                flow.live_fps()
            )
        });
    };
    // Let the writer finish what it has, then collect its results.
    drop(job_tx);
    for r in done_rx.iter() {
        if let Err(e) = tally.take(&out, r) {
            outcome = outcome.and(Err(e));
        }
    }
    if writer.join().is_err() {
        outcome = outcome.and(Err("the writer thread panicked".into()));
    }
    status.finish();
    input.close();
    let saved = tally.saved;
    let file_name = |p: &PathBuf| p.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let range = match (&tally.first_file, &tally.last_file) {
        _ if to_stdout => String::new(),
        (Some(f), Some(l)) if f != l => format!(" ({} .. {})", file_name(f), file_name(l)),
        (Some(f), _) => format!(" ({})", file_name(f)),
        _ => String::new(),
    };
    let into = if to_stdout { "standard output".to_owned() } else { a.out.display().to_string() };
    let mut v = flow.json();
    v["path"] = json!(name);
    v["out"] = json!(a.out.display().to_string());
    v["saved"] = json!(saved);
    v["received"] = json!(flow.frames());
    v["skipped"] = json!(missed);
    v["protocol"] = json!(input.protocol().name());
    out.done(
        format!("recorded {saved} frame(s) into {into}{range}: received {}, {missed} skipped", flow.describe()),
        v,
        &outcome,
    );
    outcome
}
