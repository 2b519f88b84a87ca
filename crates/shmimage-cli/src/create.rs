//! `shmimage create`: make a stream file of the right size, private (0600)
//! and new (an existing file is never overwritten): a native stream by
//! default, an EnSight 1.0 one with `--ensight`.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use shmimage::layout::{file_len_for_frame, Layout, ENSIGHT_FILE_SIZE, MIN_FILE_SIZE};
use shmimage::native::{self, FrameDesc, PixelFormat, WriterOptions};
use shmimage::StreamFile;

use crate::output::{explain, human_bytes, parse_bytes, parse_wxh, Out, OutputArgs, Result};

#[derive(Debug, Args)]
#[command(after_help = "\
A native stream (the default) has --slots slots, each holding one --format
frame of up to --max (default 1920x1080) with rows padded to 64 bytes; any
number of readers can join it. With --ensight the file is an EnSight 1.0
stream (one client, RGB8, two buffers); without --max or --len it is then
25 MiB, the size EnSight's own client uses (1920x1080 frames in one band; 4K
frames in two bands).

Examples:
  shmimage create /dev/shm/stream.shm --max 1920x1080
  shmimage create /dev/shm/depth.shm --format GRAY16_LE --max 640x480 --slots 8
  shmimage create /dev/shm/ensight.shm --ensight --len 25M
  shmimage create --print-size --ensight --max 3840x2160
  truncate -s \"$(shmimage create --print-size --ensight --max 640x480)\" stream.shm")]
pub struct CreateArgs {
    /// The stream file to create. It must not exist yet; /dev/shm keeps it in
    /// memory.
    #[arg(required_unless_present = "print_size")]
    pub file: Option<PathBuf>,
    /// The largest frame, WIDTHxHEIGHT: the file is sized so such a frame
    /// fits in one buffer (read in place by the client, no copy).
    #[arg(long, value_parser = parse_wxh, conflicts_with = "len", value_name = "WxH")]
    pub max: Option<(u32, u32)>,
    /// With --ensight: the exact file length in bytes (K, M, G suffixes are
    /// 1024-based), at least 64. Frames larger than one buffer travel in bands.
    #[arg(long, value_parser = parse_len, value_name = "BYTES", requires = "ensight")]
    pub len: Option<u64>,
    /// Make an EnSight protocol 1.0 stream file (one client, RGB8) instead of
    /// a native one.
    #[arg(long)]
    pub ensight: bool,
    /// Native: the pixel format its slots are sized for (RGB8, BGRX8,
    /// GRAY16_LE, I420, ...; GStreamer names work too).
    #[arg(long, value_parser = parse_format, default_value = "RGB8", conflicts_with = "ensight")]
    pub format: PixelFormat,
    /// Native: the number of slots (2..64); more slots let slow readers hold
    /// frames longer without stalling the writer.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=64), conflicts_with = "ensight")]
    pub slots: u32,
    /// Print the file length needed (a number alone, or JSON with --json)
    /// and create nothing.
    #[arg(long)]
    pub print_size: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn parse_format(s: &str) -> std::result::Result<PixelFormat, String> {
    PixelFormat::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = PixelFormat::ALL.iter().map(|f| f.name()).collect();
        format!("{s:?}: not a pixel format; one of {}", names.join(", "))
    })
}

fn parse_len(s: &str) -> std::result::Result<u64, String> {
    let n = parse_bytes(s)?;
    if n < MIN_FILE_SIZE {
        return Err(format!("{s:?}: a stream file needs at least {MIN_FILE_SIZE} bytes"));
    }
    Ok(n)
}

pub fn run(a: CreateArgs) -> Result<()> {
    if !a.ensight {
        return run_native(a);
    }
    let out = Out::new(&a.output);
    let len = match (a.max, a.len) {
        (Some((w, h)), _) => {
            file_len_for_frame(w, h).ok_or_else(|| format!("--max {w}x{h}: such a frame does not fit in a file"))?
        }
        (None, Some(len)) => len,
        (None, None) => ENSIGHT_FILE_SIZE,
    };
    let layout = Layout::for_file_len(len).ok_or("the file length is below the protocol's minimum")?;
    let facts = json!({
        "file_len": len,
        "capacity": layout.capacity(),
        "max_pixels_one_band": layout.pixels_per_buffer(),
    });
    if a.print_size {
        if out.json() {
            out.record(&facts);
        } else if out.text() {
            println!("{len}");
        }
        return Ok(());
    }
    let Some(path) = a.file else {
        // clap enforces FILE unless --print-size; keep a message anyway.
        return Err("no FILE given; see `shmimage create --help`".into());
    };
    if let Err(e) = StreamFile::create_at(&path, len) {
        return Err(create_error(e, &path));
    }
    if out.json() {
        let mut v = facts;
        v["path"] = json!(path.display().to_string());
        v["created"] = json!(true);
        v["protocol"] = json!("ensight-1.0");
        out.record(&v);
    }
    let fits = match a.max {
        Some((w, h)) => format!("{w}x{h} frames travel in one band"),
        None => {
            format!("frames of up to {} pixels travel in one band, larger ones in bands", layout.pixels_per_buffer())
        }
    };
    out.line(format!(
        "created {} (ensight-1.0, {len} bytes = {}, mode 0600): {} bytes per buffer; {fits}",
        path.display(),
        human_bytes(len),
        layout.capacity()
    ));
    Ok(())
}

fn run_native(a: CreateArgs) -> Result<()> {
    let out = Out::new(&a.output);
    let (w, h) = a.max.unwrap_or((1920, 1080));
    let desc = FrameDesc::new(a.format, w, h).map_err(|e| format!("--max {w}x{h} --format {}: {e}", a.format))?;
    let options = WriterOptions { slots: a.slots, slot_bytes: desc.len(), ..WriterOptions::default() };
    let layout = native::layout::Layout::new(options.slots, options.slot_bytes, options.metadata_bytes)
        .map_err(|e| format!("--max {w}x{h}: {}", e.0))?;
    let len = layout.file_len();
    let facts = json!({
        "protocol": "native",
        "file_len": len,
        "format": a.format.name(),
        "slots": layout.slots(),
        "slot_bytes": layout.slot_len(),
        "max": format!("{w}x{h}"),
    });
    if a.print_size {
        if out.json() {
            out.record(&facts);
        } else if out.text() {
            println!("{len}");
        }
        return Ok(());
    }
    let path = a.file.ok_or("no FILE given; see `shmimage create --help`")?;
    crate::endpoints::check_space(&path, len)?;
    let p = path.display();
    // The writer makes the file (exclusive, 0600) and leaves it to the next
    // writer, which takes it over.
    let writer = native::Writer::create(&path, &options).map_err(|e| match e {
        native::Error::AlreadyExists { .. } => format!(
            "{p} already exists; `shmimage create` never overwrites a file. Remove it first \
             (`rm {p}`) or choose another name; `shmimage inspect {p}` shows what it holds"
        ),
        native::Error::Ensight(e) => create_error(e, &path).to_string(),
        native::Error::UnableToOpen { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            let dir = path.parent().map_or_else(|| ".".into(), |d| d.display().to_string());
            format!("cannot create {p}: directory {dir} does not exist (mkdir -p it first)")
        }
        e => format!("cannot create {p}: {e}"),
    })?;
    writer.close();
    drop(writer);
    let len = std::fs::metadata(&path).map_or(len, |m| m.len());
    if out.json() {
        let mut v = facts;
        v["path"] = json!(p.to_string());
        v["file_len"] = json!(len);
        v["created"] = json!(true);
        out.record(&v);
    }
    out.line(format!(
        "created {p} (native, {len} bytes = {}, mode 0600): {} slots of {} bytes, each a {} frame of up to {w}x{h}",
        human_bytes(len),
        layout.slots(),
        layout.slot_len(),
        a.format
    ));
    Ok(())
}

/// Why a create failed, named once, with the way out.
fn create_error(e: shmimage::Error, path: &std::path::Path) -> Box<dyn std::error::Error> {
    use std::io::ErrorKind as K;
    let p = path.display();
    match &e {
        shmimage::Error::UnableToOpenFile { source, .. } if source.kind() == K::AlreadyExists => format!(
            "{p} already exists; `shmimage create` never overwrites a file. Remove it first \
             (`rm {p}`) or choose another name; `shmimage inspect {p}` shows what it holds"
        )
        .into(),
        shmimage::Error::UnableToOpenFile { source, .. } if source.kind() == K::NotFound => {
            let dir = path.parent().map_or_else(|| ".".into(), |d| d.display().to_string());
            format!("cannot create {p}: directory {dir} does not exist (mkdir -p it first)").into()
        }
        // The engine's text names the file and the problem already.
        _ => explain(e, path),
    }
}
