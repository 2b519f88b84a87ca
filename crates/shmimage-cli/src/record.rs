//! `shmimage record`: be the client of a stream and write its frames to a
//! folder as PNG (or raw RGB) files named by frame number.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use shmimage::{Client, ClientOptions, Error as StreamError};

use crate::output::{explain, install_stop_handler, parse_secs, rate, stopped, Out, OutputArgs, Result};

#[derive(Debug, Args)]
#[command(after_help = "\
Files are named by the server's frame number: frame-000123.png (or .rgb with
--raw: WIDTH*HEIGHT*3 bytes, rows top-down; the size is printed with --json).
Existing files of the same name are overwritten.

Ends with exit status 0 when --count frames are written, on Ctrl-C, or (without
--count) when the server exits after sending at least one frame. Ends with 1
when no frame arrives for --timeout seconds, or the server exits before --count.

Examples:
  shmimage record /dev/shm/stream.shm --out frames --count 100
  shmimage record /dev/shm/stream.shm --out frames --every 30 --timeout 60
  shmimage record /dev/shm/stream.shm --out raw --raw --count 10 --json")]
pub struct RecordArgs {
    /// The stream file (made by `shmimage create` or the stream's creator).
    pub file: PathBuf,
    /// The folder to write frames into (created if missing).
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Write raw RGB (.rgb) instead of PNG.
    #[arg(long)]
    pub raw: bool,
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

fn write_png(path: &Path, w: u32, h: u32, rgb: &[u8]) -> std::result::Result<(), String> {
    let f = File::create(path).map_err(|e| e.to_string())?;
    let mut enc = png::Encoder::new(BufWriter::new(f), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    // Recording keeps up with a live stream; file size matters less.
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}

fn write_raw(path: &Path, rgb: &[u8]) -> std::result::Result<(), String> {
    let mut f = BufWriter::new(File::create(path).map_err(|e| e.to_string())?);
    f.write_all(rgb).and_then(|()| f.flush()).map_err(|e| e.to_string())
}

/// A frame handed to the writer thread.
struct Job {
    path: PathBuf,
    number: u32,
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

/// A frame written (its pixels went back for reuse).
struct Written {
    path: PathBuf,
    number: u32,
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

/// Encode and write frames on their own thread, so PNG compression overlaps
/// with taking the next frame instead of making the client skip it.
/// The writer thread's ends: jobs in, results out, pixel buffers back.
struct Writer {
    jobs: SyncSender<Job>,
    done: Receiver<std::result::Result<Written, String>>,
    spare: Receiver<Vec<u8>>,
    handle: JoinHandle<()>,
}

fn spawn_writer(raw: bool) -> Writer {
    // Two frames in flight: enough to absorb jitter, little memory.
    let (job_tx, job_rx) = sync_channel::<Job>(2);
    let (done_tx, done_rx) = channel();
    let (spare_tx, spare_rx) = channel();
    let handle = std::thread::spawn(move || {
        for job in job_rx {
            let r = if raw {
                write_raw(&job.path, &job.pixels)
            } else {
                write_png(&job.path, job.width, job.height, &job.pixels)
            };
            let failed = r.is_err();
            let r = r
                .map(|()| Written { path: job.path.clone(), number: job.number, width: job.width, height: job.height })
                .map_err(|e| format!("cannot write {}: {e}", job.path.display()));
            let _ = spare_tx.send(job.pixels);
            if done_tx.send(r).is_err() || failed {
                return;
            }
        }
    });
    Writer { jobs: job_tx, done: done_rx, spare: spare_rx, handle }
}

pub fn run(a: RecordArgs) -> Result<()> {
    let out = Out::new(&a.output);
    std::fs::create_dir_all(&a.out).map_err(|e| format!("cannot create the output folder {}: {e}", a.out.display()))?;
    let mut client = Client::connect(&a.file, ClientOptions::default()).map_err(|e| explain(e, &a.file))?;
    install_stop_handler();
    let name = a.file.display().to_string();
    let ext = if a.raw { "rgb" } else { "png" };
    out.line(format!("recording {name} into {} ({ext})", a.out.display()));
    let mut status = out.status(a.count, Duration::from_secs(1));
    let Writer { jobs: job_tx, done: done_rx, spare: spare_rx, handle: writer } = spawn_writer(a.raw);

    let (mut received, mut queued, mut missed) = (0u64, 0u64, 0u64);
    let mut tally = Tally::default();
    let mut last_number: Option<u32> = None;
    let mut last_frame_at = Instant::now();
    let mut first_at: Option<Instant> = None;

    let mut outcome: Result<()> = loop {
        if let Err(e) = done_rx.try_iter().try_for_each(|r| tally.take(&out, r)) {
            break Err(e);
        }
        if stopped() || a.count.is_some_and(|c| queued >= c) {
            break Ok(());
        }
        let job = match client.wait_frame(Duration::from_millis(100)) {
            Ok(frame) => {
                received += 1;
                let info = frame.info();
                if let Some(prev) = last_number {
                    // Frames the server published that this client never
                    // locked (the protocol hands out the newest frame only).
                    missed += u64::from(info.number.wrapping_sub(prev).wrapping_sub(1).min(1 << 20));
                }
                last_number = Some(info.number);
                // Copy out and unlock at once; the writer thread encodes.
                ((received - 1) % a.every == 0).then(|| {
                    let mut pixels = spare_rx.try_recv().unwrap_or_default();
                    pixels.clear();
                    pixels.extend_from_slice(frame.pixels());
                    Job {
                        path: a.out.join(format!("frame-{:06}.{ext}", info.number)),
                        number: info.number,
                        width: info.width,
                        height: info.height,
                        pixels,
                    }
                })
            }
            Err(StreamError::NoFrameAvailable) => {
                let quiet_for = last_frame_at.elapsed();
                if quiet_for >= a.timeout {
                    let what = if received == 0 { "no frame arrived" } else { "no new frame arrived" };
                    break Err(format!(
                        "{what} on {name} for {:.1} s (--timeout); is a server running? \
                         `shmimage inspect {name}` shows the stream's state",
                        quiet_for.as_secs_f64()
                    )
                    .into());
                }
                status.update(tally.saved, || format!("waiting for frames on {name}"));
                continue;
            }
            Err(StreamError::Unconnected { .. }) => {
                if a.count.is_none() && queued > 0 {
                    status.event(format!("the server of {name} exited; stream ended"));
                    break Ok(());
                }
                let expected = a.count.map_or(String::new(), |c| format!(" of the {c} asked for (--count)"));
                break Err(
                    format!("the server of {name} exited after {queued} frame(s) were recorded{expected}").into()
                );
            }
            Err(e) => break Err(explain(e, &a.file)),
        };
        last_frame_at = Instant::now();
        first_at.get_or_insert(last_frame_at);
        let Some(job) = job else { continue };
        let number = job.number;
        let (w, h) = (job.width, job.height);
        if job_tx.send(job).is_err() {
            // The writer stopped on an error; it is waiting in done_rx.
            continue;
        }
        queued += 1;
        let elapsed = first_at.map_or(Duration::ZERO, |t| t.elapsed());
        status.update(tally.saved, || {
            format!(
                "frame {number} ({w}x{h}): {} written, {:.1} frames/s received, {missed} skipped",
                tally.saved,
                rate(received.saturating_sub(1), elapsed)
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
    client.close();
    let saved = tally.saved;
    // The rate covers first to last frame received, not the wait after.
    let elapsed = first_at.map_or(Duration::ZERO, |t| last_frame_at.saturating_duration_since(t));
    let file_name = |p: &PathBuf| p.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let range = match (&tally.first_file, &tally.last_file) {
        (Some(f), Some(l)) if f != l => format!(" ({} .. {})", file_name(f), file_name(l)),
        (Some(f), _) => format!(" ({})", file_name(f)),
        _ => String::new(),
    };
    out.line(format!(
        "recorded {saved} frame(s) into {}{range}: {received} received in {:.2} s ({:.1} frames/s), {missed} skipped",
        a.out.display(),
        elapsed.as_secs_f64(),
        rate(received.saturating_sub(1), elapsed)
    ));
    out.record(&json!({
        "event": "done",
        "path": name,
        "out": a.out.display().to_string(),
        "saved": saved,
        "received": received,
        "skipped": missed,
        "seconds": elapsed.as_secs_f64(),
        "ok": outcome.is_ok(),
    }));
    outcome
}
