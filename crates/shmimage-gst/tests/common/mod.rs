//! Helpers shared by the plugin's tests: the built plugin, unique stream
//! paths, child processes that stop by themselves, frames as plain bytes.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;

/// Register the elements in this process (from the rlib, not the .so).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| gstshmimage::register_static().unwrap());
}

/// The directory holding the built `libgstshmimage.so`, next to the test
/// binaries' `deps/`. `cargo test` builds only the rlib for tests, so the
/// cdylib is built here once when it is missing or older than this test.
pub fn plugin_dir() -> PathBuf {
    static BUILD: Once = Once::new();
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let so = dir.join("libgstshmimage.so");
    BUILD.call_once(|| {
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if modified(&so).map_or(true, |t| Some(t) < modified(&exe)) {
            let mut c = Command::new(env!("CARGO"));
            c.args(["build", "-p", "shmimage-gst", "--lib"]);
            if dir.file_name().is_some_and(|n| n == "release") {
                c.arg("--release");
            }
            let out = c.output().unwrap();
            assert!(out.status.success(), "building the plugin: {}", String::from_utf8_lossy(&out.stderr));
        }
    });
    assert!(so.exists(), "{} is missing", so.display());
    dir
}

/// A command for a GStreamer tool that sees the built plugin and no user
/// registry (a private one, so stale registries never hide the plugin).
pub fn gst_tool(tool: &str, registry_dir: &Path) -> Command {
    let mut c = Command::new(tool);
    c.env("GST_PLUGIN_PATH", plugin_dir()).env("GST_REGISTRY", registry_dir.join("registry.bin")).stdin(Stdio::null());
    c
}

/// A private directory in /dev/shm for one test's stream files.
pub fn shm_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("shmimage-gst-test-").tempdir_in("/dev/shm").unwrap()
}

/// A child process killed (and reaped) when dropped, so a failing test
/// leaves nothing running.
#[derive(Debug)]
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Reaped {
    /// Wait for the child to exit, at most `limit`; then kill it.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(s) = self.0.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// One decoded frame: its format, size, the writer's sequence number and
/// its planes with the padding removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plain {
    pub format: gst_video::VideoFormat,
    pub width: u32,
    pub height: u32,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// Copy a sample's planes row by row, dropping stride padding (honours
/// GstVideoMeta through VideoFrameRef).
pub fn plain(sample: &gst::Sample) -> Plain {
    let caps = sample.caps().unwrap();
    let info = gst_video::VideoInfo::from_caps(caps).unwrap();
    let buffer = sample.buffer().unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).unwrap();
    let mut bytes = Vec::new();
    let finfo = info.format_info();
    for p in 0..info.n_planes() {
        let stride = frame.plane_stride()[p as usize] as usize;
        let data = frame.plane_data(p).unwrap();
        // The plane's first component gives its row width and height.
        let comp = (0..finfo.n_components()).find(|&c| finfo.plane()[c as usize] == p).unwrap();
        let w = finfo.scale_width(comp as u8, info.width()) as usize;
        let h = finfo.scale_height(comp as u8, info.height()) as usize;
        let row = w * finfo.pixel_stride()[comp as usize] as usize;
        for y in 0..h {
            bytes.extend_from_slice(&data[y * stride..y * stride + row]);
        }
    }
    Plain { format: info.format(), width: info.width(), height: info.height(), offset: buffer.offset(), bytes }
}

/// Run `desc` (ending in `appsink name=out`) until `n` samples arrived or
/// `limit` passed, and return them as plain frames.
pub fn collect(desc: &str, n: usize, limit: Duration) -> Result<Vec<Plain>, String> {
    let pipeline = gst::parse::launch(desc).map_err(|e| e.to_string())?.downcast::<gst::Pipeline>().unwrap();
    let sink = pipeline.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).map_err(|e| e.to_string())?;
    let bus = pipeline.bus().unwrap();
    let end = Instant::now() + limit;
    let mut got = Vec::new();
    let mut err = None;
    while got.len() < n && Instant::now() < end {
        if let Some(s) = sink.try_pull_sample(gst::ClockTime::from_mseconds(50)) {
            got.push(plain(&s));
        } else if sink.is_eos() {
            break;
        }
        while let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = m.view() {
                err = Some(format!("{} ({:?})", e.error(), e.debug()));
            }
        }
        if err.is_some() {
            break;
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    match err {
        Some(e) => Err(e),
        None => Ok(got),
    }
}

/// Frames of a non-live `videotestsrc` with these properties and caps.
pub fn reference(src_props: &str, caps: &str, n: usize) -> Vec<Plain> {
    let desc = format!("videotestsrc {src_props} num-buffers={n} ! {caps} ! appsink name=out sync=false");
    collect(&desc, n, Duration::from_secs(60)).unwrap()
}

/// Run this test binary again as a child process that executes `entry`
/// (a `#[test]` that does nothing unless `SHMIMAGE_GST_CHILD` names it),
/// with `args` in `SHMIMAGE_GST_ARGS`.
pub fn spawn_child(entry: &str, args: &str) -> Reaped {
    let exe = std::env::current_exe().unwrap();
    Reaped(
        Command::new(exe)
            .args(["--exact", entry, "--nocapture", "--test-threads=1"])
            .env("SHMIMAGE_GST_CHILD", entry)
            .env("SHMIMAGE_GST_ARGS", args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The child's arguments when this process is the child running `entry`.
pub fn child_args(entry: &str) -> Option<String> {
    (std::env::var("SHMIMAGE_GST_CHILD").ok()? == entry).then(|| std::env::var("SHMIMAGE_GST_ARGS").unwrap_or_default())
}

/// Deterministic RGB pixels for frame `n` of a `w` x `h` stream.
pub fn rgb_pattern(n: u32, w: u32, h: u32) -> Vec<u8> {
    (0..w as usize * h as usize * 3)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(n.wrapping_mul(7)) as u8)
        .collect()
}
