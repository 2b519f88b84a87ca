//! `shmimage serve`: be the server of a stream, with frames from a generated
//! pattern, PNG files, or raw RGB on stdin.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use shmimage::layout::file_len_for_frame;
use shmimage::native::{FrameDesc, PixelFormat};
use shmimage::StreamFile;

use crate::endpoints::{Ended, Output, Put};
use crate::output::{
    explain, human_bytes, install_stop_handler, parse_fps, parse_secs, parse_wxh, sleep_unless_stopped,
};
use crate::output::{stopped, Flow, Out, OutputArgs, Result};
use crate::y4m::Y4mReader;

#[derive(Debug, Args)]
#[command(after_help = "\
Frames are numbered 1, 2, 3... in the order the source yields them. Each
frame is put only when a buffer is free (the server waits for the client
rather than dropping frames); with --lossless it also waits until the client
has taken the previous frame, so a client that records sees every frame.

Examples:
  shmimage serve /dev/shm/stream.shm
  shmimage serve /dev/shm/stream.shm --size 1920x1080 --fps 60
  shmimage serve /dev/shm/stream.shm --png ./frames --loop --fps 24
  shmimage serve /dev/shm/stream.shm --png 'shots/*.png' --count 10 --lossless --fps 0
  ffmpeg -i in.mp4 -f yuv4mpegpipe - | shmimage serve /dev/shm/stream.shm --stdin
  ffmpeg -i in.mp4 -f rawvideo -pix_fmt rgb24 - | shmimage serve /dev/shm/stream.shm --stdin --size 1280x720")]
pub struct ServeArgs {
    /// The stream file. If it does not exist it is created (mode 0600) just
    /// large enough for the frames to travel in one band.
    pub file: PathBuf,
    /// PNG frames: a folder (its *.png files in name order), a glob pattern
    /// (quote it) or one file. RGBA, gray, palette and 16-bit images are
    /// converted to RGB8 (alpha is dropped); sizes may differ frame to frame.
    #[arg(long, value_name = "DIR|GLOB|FILE", conflicts_with_all = ["stdin", "size"])]
    pub png: Option<String>,
    /// Read frames from standard input: YUV4MPEG2 (recognised by its
    /// header; its size is used), or raw RGB, WIDTH*HEIGHT*3 bytes per frame,
    /// rows top-down, no header (needs --size). Ends at end of input.
    #[arg(long)]
    pub stdin: bool,
    /// Frame size of the generated pattern (default 1280x720) or of each raw
    /// frame read with --stdin.
    #[arg(long, value_parser = parse_wxh, value_name = "WxH")]
    pub size: Option<(u32, u32)>,
    /// Frames per second; 0 sends as fast as the client takes them [default:
    /// 30; with --stdin the y4m header's rate, or 0 for raw input, whose
    /// producer sets the pace].
    #[arg(long, value_parser = parse_fps)]
    pub fps: Option<f64>,
    /// Store rows bottom-up (the protocol's FLIPVERTICAL option).
    #[arg(long)]
    pub flip: bool,
    /// Stop after sending N frames.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// With --png: start again after the last file, until --count or Ctrl-C.
    #[arg(long = "loop", requires = "png")]
    pub repeat: bool,
    /// Seconds to wait for a client, at the start and whenever one leaves;
    /// then exit with an error. 0 sends without waiting (frames with no
    /// client are counted as unconnected) [default: 10 with --count,
    /// otherwise forever].
    #[arg(long, value_parser = parse_secs, value_name = "SECS")]
    pub wait_client: Option<Duration>,
    /// Send each frame only after the client has taken the previous one, so
    /// it never skips a frame (for frames that fit in one buffer).
    #[arg(long)]
    pub lossless: bool,
    /// When FILE does not exist: create an EnSight 1.0 stream file instead
    /// of a native one.
    #[arg(long)]
    pub ensight: bool,
    /// When FILE does not exist: slots of the new native stream (2..64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=64), conflicts_with = "ensight")]
    pub slots: u32,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Where frames come from.
enum Source {
    Pattern { w: u32, h: u32, t: u32 },
    Png { files: Vec<PathBuf>, next: usize, repeat: bool },
    Stdin { w: u32, h: u32, input: Box<dyn Read>, frames: u64 },
    Y4m { reader: Y4mReader<Box<dyn Read>>, frames: u64 },
}

/// Raw RGB or y4m from standard input, told apart by the y4m header.
fn stdin_source(size: Option<(u32, u32)>) -> Result<Source> {
    let (is_y4m, input) = crate::y4m::sniff(std::io::stdin().lock()).map_err(|e| format!("reading stdin: {e}"))?;
    let input: Box<dyn Read> = Box::new(input);
    if is_y4m {
        let reader = Y4mReader::new(input)?;
        if let Some((w, h)) = size.filter(|s| *s != reader.size()) {
            let (yw, yh) = reader.size();
            return Err(format!("--size {w}x{h} differs from the y4m header's {yw}x{yh} (leave --size out)").into());
        }
        return Ok(Source::Y4m { reader, frames: 0 });
    }
    let (w, h) = size.ok_or(
        "standard input is not y4m (no YUV4MPEG2 header), so it is read as raw RGB, which needs \
         --size WIDTHxHEIGHT",
    )?;
    Ok(Source::Stdin { w, h, input, frames: 0 })
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Pattern { w, h, .. } => format!("test pattern {w}x{h}"),
            Source::Png { files, repeat, .. } => {
                format!("{} PNG file(s){}", files.len(), if *repeat { ", looping" } else { "" })
            }
            Source::Stdin { w, h, .. } => format!("raw RGB {w}x{h} from stdin"),
            Source::Y4m { reader, .. } => {
                let (w, h) = reader.size();
                format!("y4m {w}x{h} from stdin")
            }
        }
    }

    /// Frames the source yields before it ends, when known.
    fn total(&self) -> Option<u64> {
        match self {
            Source::Png { files, repeat: false, .. } => Some(files.len() as u64),
            _ => None,
        }
    }

    /// Every frame size this source yields, when known before reading.
    fn sizes(&self) -> Result<Vec<(u32, u32)>> {
        Ok(match self {
            Source::Pattern { w, h, .. } | Source::Stdin { w, h, .. } => vec![(*w, *h)],
            Source::Y4m { reader, .. } => vec![reader.size()],
            Source::Png { files, .. } => files.iter().map(|f| png_size(f)).collect::<Result<_>>()?,
        })
    }

    /// The slot size that carries every frame of this source (packed RGB8).
    fn slot_bytes(&self) -> Result<u64> {
        let mut max = 0;
        for (w, h) in self.sizes()? {
            let d = FrameDesc::packed(PixelFormat::Rgb8, w, h).map_err(|e| format!("{w}x{h}: {e}"))?;
            max = max.max(d.len());
        }
        Ok(max)
    }

    /// The file length that carries every frame of this source in one band.
    fn file_len(&self) -> Result<u64> {
        let mut max = None;
        for (w, h) in self.sizes()? {
            let len =
                file_len_for_frame(w, h).ok_or_else(|| format!("{w}x{h} frames are too large for a stream file"))?;
            max = max.max(Some(len));
        }
        max.ok_or_else(|| "the source has no frames".into())
    }

    /// The next frame into `buf`; `None` at the end of the source.
    fn next(&mut self, buf: &mut Vec<u8>) -> Result<Option<(u32, u32)>> {
        match self {
            Source::Pattern { w, h, t } => {
                *t = t.wrapping_add(1);
                render_pattern(*w, *h, *t, buf);
                Ok(Some((*w, *h)))
            }
            Source::Png { files, next, repeat } => {
                if *next == files.len() {
                    if !*repeat || files.is_empty() {
                        return Ok(None);
                    }
                    *next = 0;
                }
                let path = &files[*next];
                *next += 1;
                read_png(path, buf).map(Some)
            }
            Source::Stdin { w, h, input, frames } => {
                let len = shmimage::layout::frame_bytes(*w, *h)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| format!("{w}x{h} frames are too large"))?;
                buf.resize(len, 0);
                let got = read_full(input, buf).map_err(|e| format!("reading stdin: {e}"))?;
                if got == 0 {
                    return Ok(None);
                }
                if got < len {
                    return Err(format!(
                        "standard input ended inside frame {}: {got} of {len} bytes ({w}x{h}x3); \
                         check --size against the producer's frame size",
                        *frames + 1
                    )
                    .into());
                }
                *frames += 1;
                Ok(Some((*w, *h)))
            }
            Source::Y4m { reader, frames } => {
                if !reader.read(buf, *frames + 1)? {
                    return Ok(None);
                }
                *frames += 1;
                Ok(Some(reader.size()))
            }
        }
    }
}

/// Read until `buf` is full or input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Diagonal colour bands that move with `t`, plus a white bar whose position
/// encodes the frame number (visible motion in any viewer).
fn render_pattern(w: u32, h: u32, t: u32, buf: &mut Vec<u8>) {
    let (w, h) = (w as usize, h as usize);
    buf.resize(w * h * 3, 0);
    let shift = t as usize * 4;
    for (y, row) in buf.chunks_exact_mut(w * 3).enumerate() {
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let d = x + y + shift;
            px[0] = (d & 0xff) as u8;
            px[1] = ((x * 255) / w.max(1)) as u8;
            px[2] = ((y * 255) / h.max(1)) as u8;
        }
    }
    let bar_x = (t as usize * 7) % w;
    for row in buf.chunks_exact_mut(w * 3).take(h.div_ceil(8)) {
        let end = (bar_x + 4).min(w);
        row[bar_x * 3..end * 3].fill(255);
    }
}

fn png_decoder(path: &Path) -> Result<png::Reader<BufReader<File>>> {
    let f = File::open(path).map_err(|e| format!("cannot open PNG {}: {e}", path.display()))?;
    // The default 64 MiB limit refuses a 4K 16-bit RGBA image.
    let mut d = png::Decoder::new_with_limits(BufReader::new(f), png::Limits { bytes: 1 << 30 });
    d.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    d.read_info().map_err(|e| format!("{} is not a readable PNG: {e}", path.display()).into())
}

fn png_size(path: &Path) -> Result<(u32, u32)> {
    let r = png_decoder(path)?;
    let i = r.info();
    Ok((i.width, i.height))
}

/// Decode `path` into RGB8 rows in `buf`.
fn read_png(path: &Path, buf: &mut Vec<u8>) -> Result<(u32, u32)> {
    let mut r = png_decoder(path)?;
    let size = r.output_buffer_size().ok_or_else(|| format!("{}: image too large", path.display()))?;
    let mut raw = vec![0; size];
    let info = r.next_frame(&mut raw).map_err(|e| format!("{}: cannot decode: {e}", path.display()))?;
    let (w, h) = (info.width, info.height);
    let (color, depth) = r.output_color_type();
    if depth != png::BitDepth::Eight {
        return Err(format!("{}: unsupported bit depth {depth:?} after conversion", path.display()).into());
    }
    let pixels = w as usize * h as usize;
    let channels = color.samples();
    let stride = info.line_size;
    buf.clear();
    buf.reserve(pixels * 3);
    for row in raw.chunks(stride).take(h as usize) {
        for px in row[..w as usize * channels].chunks_exact(channels) {
            match color {
                png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha => buf.extend_from_slice(&[px[0]; 3]),
                _ => buf.extend_from_slice(&px[..3]),
            }
        }
    }
    Ok((w, h))
}

fn png_files(spec: &str) -> Result<Vec<PathBuf>> {
    let is_png = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
    let path = Path::new(spec);
    let mut files = if path.is_dir() {
        let rd = std::fs::read_dir(path).map_err(|e| format!("cannot list {spec}: {e}"))?;
        let mut v = Vec::new();
        for entry in rd {
            let p = entry.map_err(|e| format!("cannot list {spec}: {e}"))?.path();
            if is_png(&p) && p.is_file() {
                v.push(p);
            }
        }
        v
    } else if path.is_file() {
        vec![path.to_owned()]
    } else if spec.contains(['*', '?', '[']) {
        let paths = glob::glob(spec).map_err(|e| format!("--png {spec:?}: bad glob pattern: {e}"))?;
        paths.filter_map(|p| p.ok()).filter(|p| p.is_file()).collect()
    } else {
        return Err(format!("--png {spec}: no such file or folder").into());
    };
    files.sort();
    if files.is_empty() {
        return Err(format!("--png {spec}: no PNG files found (a folder's files must end in .png)").into());
    }
    Ok(files)
}

fn no_client(path: &Path, waited: Duration) -> Box<dyn std::error::Error> {
    format!(
        "no client connected to {} within {:.1} s (--wait-client); start one, e.g. \
         `shmimage record {} --out DIR`",
        path.display(),
        waited.as_secs_f64(),
        path.display()
    )
    .into()
}

/// Refuse, before any client connects, frames that cannot travel through
/// this file at all (a 1.0 row larger than a buffer, a native frame larger
/// than a slot).
fn check_fits(source: &Source, path: &Path, stream: &Output) -> Result<()> {
    for (w, h) in source.sizes()? {
        if let Err(why) = stream.check_fits(w, h, PixelFormat::Rgb8) {
            return Err(format!(
                "{w}x{h} frames cannot travel through {}: {why}; make a file for them, e.g. \
                 `shmimage create NEWFILE --max {w}x{h}`",
                path.display()
            )
            .into());
        }
    }
    Ok(())
}

/// This machine's memory in bytes (MemTotal), if /proc tells.
fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = info.lines().find_map(|l| l.strip_prefix("MemTotal:"))?.trim().strip_suffix("kB")?.trim().parse::<u64>();
    kib.ok()?.checked_mul(1024)
}

/// Refuse, before any file or buffer exists, frames this machine cannot
/// hold: serve keeps one frame in memory and the stream file two, so a frame
/// over half the memory is refused at once rather than grown into.
fn check_memory(source: &Source) -> Result<()> {
    let Some(mem) = total_memory() else { return Ok(()) };
    for (w, h) in source.sizes()? {
        let bytes = shmimage::layout::frame_bytes(w, h).unwrap_or(u64::MAX);
        if bytes > mem / 2 {
            return Err(format!(
                "{w}x{h} frames are too large: one takes {bytes} bytes ({}), more than half of this machine's \
                 memory ({}); choose a smaller --size",
                human_bytes(bytes),
                human_bytes(mem)
            )
            .into());
        }
    }
    Ok(())
}

pub fn run(a: ServeArgs) -> Result<()> {
    let out = Out::new(&a.output);
    install_stop_handler();
    let mut source = if let Some(spec) = &a.png {
        Source::Png { files: png_files(spec)?, next: 0, repeat: a.repeat }
    } else if a.stdin {
        stdin_source(a.size)?
    } else {
        let (w, h) = a.size.unwrap_or((1280, 720));
        Source::Pattern { w, h, t: 0 }
    };
    // y4m announces its rate, so a file plays at its speed; raw input sets
    // the pace itself.
    let fps = a.fps.unwrap_or(match &source {
        Source::Y4m { reader, .. } => reader.fps(),
        Source::Stdin { .. } => 0.0,
        _ => 30.0,
    });
    let period = (fps > 0.0).then(|| Duration::from_secs_f64(1.0 / fps));
    // A run with an end waits for its client only so long: a script that
    // asked for N frames must not hang when nobody ever comes.
    let wait_client = a.wait_client.or(a.count.map(|_| DEFAULT_COUNT_WAIT));

    check_memory(&source)?;
    let name = a.file.display().to_string();
    let stream = if std::fs::symlink_metadata(&a.file).is_err() {
        // A new file: native unless --ensight, sized for every frame of
        // the source in one slot (1.0: one band).
        let (stream, len) = if a.ensight {
            let len = source.file_len()?;
            StreamFile::create_at(&a.file, len).map_err(|e| explain(e, &a.file))?;
            (Output::open(&a.file, a.flip)?, len)
        } else {
            let slot = source.slot_bytes()?;
            let s = Output::create_native(&a.file, a.slots, slot, a.flip)?;
            (s, std::fs::metadata(&a.file).map(|m| m.len()).unwrap_or(0))
        };
        out.event(
            "created",
            format!("created {name} ({}, {len} bytes, mode 0600)", stream.protocol()),
            json!({"path": name, "file_len": len, "protocol": stream.protocol().name()}),
        );
        stream
    } else {
        Output::open(&a.file, a.flip)?
    };
    check_fits(&source, &a.file, &stream)?;
    let peer = match stream.protocol() {
        shmimage::Protocol::Ensight1 => "a client",
        shmimage::Protocol::Native => "a reader",
    };

    out.line(format!(
        "serving {name} ({}): {}, {}",
        stream.protocol(),
        source.describe(),
        if fps > 0.0 { format!("{fps} frames/s") } else { "as fast as possible".into() }
    ));
    let total = match (a.count, source.total()) {
        (Some(c), Some(t)) => Some(c.min(t)),
        (c, t) => c.or(t),
    };
    let mut status = out.status(total);
    let (mut dropped, mut unconnected, mut number) = (0u64, 0u64, 0u32);
    let mut flow = Flow::new();
    let mut buf = Vec::new();
    let mut next_due = Instant::now();
    let mut connected = false;
    let mut warned_banded = false;
    let mut last_seq = 0;

    let outcome: Result<()> = 'frames: loop {
        if stopped() || a.count.is_some_and(|c| flow.frames() >= c) {
            break Ok(());
        }
        // The frame comes first, so the end of the source is seen even while
        // no client is connected; a frame read meanwhile waits for one.
        let (w, h) = match source.next(&mut buf) {
            Ok(Some(size)) => size,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        number = number.wrapping_add(1);
        if !stream.has_peer() && wait_client != Some(Duration::ZERO) {
            if connected {
                connected = false;
                status.event("client_left", format!("{peer} left"), json!({"sent": flow.frames()}));
            }
            status.event("waiting", format!("waiting for {peer} on {name}"), json!({"path": name}));
            let since = Instant::now();
            // The engine's wait: ended by a peer, the deadline or Ctrl-C.
            match stream.wait_for_peer(&a.file, wait_client) {
                Ok(()) => {}
                Err(Ended::Stopped) => break 'frames Ok(()),
                Err(Ended::Failed(e)) => break 'frames Err(e),
                Err(_) => break 'frames Err(no_client(&a.file, since.elapsed())),
            }
            // Pace from the moment a client is there, not from before.
            next_due = Instant::now();
        }
        if !connected && stream.has_peer() {
            connected = true;
            status.event("connected", format!("{peer} connected"), json!({}));
        }
        if let Some(p) = period {
            let now = Instant::now();
            if next_due > now {
                sleep_unless_stopped(next_due - now);
            }
            // A late frame does not make the next ones come in a burst.
            next_due = (next_due + p).max(Instant::now());
        }
        // Wait for a free buffer rather than drop the frame: the client
        // holds both only briefly. Ctrl-C and a departing client end the wait
        // (put then says which).
        stream.wait_ready();
        if stopped() {
            break Ok(());
        }
        if a.lossless
            && !warned_banded
            && stream.protocol() == shmimage::Protocol::Ensight1
            && (buf.len() as u64) > stream.capacity()
        {
            // The client assembles banded frames in its own memory, out of
            // the server's sight, so nothing in the file says it took one.
            warned_banded = true;
            status.warn(format!(
                "{w}x{h} frames travel in bands in {name} ({} bytes per buffer); --lossless cannot stop \
                 a client skipping them; `shmimage create NEWFILE --max {w}x{h}` makes a file where it can",
                stream.capacity()
            ));
        }
        let desc = match FrameDesc::packed(PixelFormat::Rgb8, w, h) {
            Ok(d) => d,
            Err(e) => break Err(format!("{w}x{h}: {e}").into()),
        };
        match stream.put(&a.file, number, &desc, &buf) {
            Ok(Put::Sent(seq)) => {
                flow.tick();
                last_seq = seq;
                if a.lossless {
                    // Ended by the peers taking it, leaving, or Ctrl-C.
                    stream.wait_taken(seq, None);
                }
            }
            Ok(Put::Dropped) => dropped += 1,
            Ok(Put::NoPeer) => unconnected += 1,
            Err(_) if stopped() => break Ok(()),
            Err(e) => break Err(e),
        }
        status.update(flow.frames(), || {
            format!(
                "frame {number} ({w}x{h}): {} sent, {:.1} frames/s, {dropped} dropped, {unconnected} unconnected",
                flow.frames(),
                flow.live_fps()
            )
        });
    };
    // Give the client a moment to take the last frame before this process
    // (and its liveness lock) goes away; it can read it afterwards anyway.
    if outcome.is_ok() && !stopped() && flow.frames() > 0 {
        stream.wait_taken(last_seq, Some(Duration::from_secs(2)));
    }
    status.finish();
    let mut v = flow.json();
    v["path"] = json!(name);
    v["protocol"] = json!(stream.protocol().name());
    v["sent"] = json!(flow.frames());
    v["dropped"] = json!(dropped);
    v["unconnected"] = json!(unconnected);
    out.done(
        format!("served {} on {name}, {dropped} dropped, {unconnected} unconnected", flow.describe()),
        v,
        &outcome,
    );
    outcome
}

/// How long `serve --count N` waits for a client unless --wait-client says.
const DEFAULT_COUNT_WAIT: Duration = Duration::from_secs(10);
