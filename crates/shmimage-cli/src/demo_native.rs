//! `shmimage demo` on the native stream: one writer process renders stamped
//! frames into loans, several reader processes (default 3) verify every
//! frame they get and measure their wake-up latency, each at its own pace;
//! this process prints their live status and one summary per reader.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use shmimage::native::{self, FrameDesc, PixelFormat, ReaderOptions, WriterOptions};

use crate::demo::{checksum, field, now_ns, stamp, summary_json, Pattern, Tally, MAGIC, STAMP_LEN};
use crate::output::{install_stop_handler, on_stop, parse_wxh, stopped, Out, OutputArgs, Result};

/// Options of the demo's native writer and reader processes.
#[derive(Debug, Args)]
pub struct NativeRoleArgs {
    #[arg(long)]
    file: PathBuf,
    #[arg(long, value_parser = parse_wxh)]
    size: (u32, u32),
    #[arg(long)]
    fps: f64,
    #[arg(long)]
    seconds: f64,
    #[arg(long)]
    copy: bool,
    /// Writer: readers to wait for before the first frame.
    #[arg(long, default_value_t = 1)]
    readers: u32,
}

fn desc(w: u32, h: u32) -> Result<FrameDesc> {
    // Packed rows: the stamp and checksum see the frame as one RGB block.
    Ok(FrameDesc::packed(PixelFormat::Rgb8, w, h).map_err(|e| e.to_string())?)
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    (w, h): (u32, u32),
    fps: f64,
    seconds: Duration,
    copy: bool,
    readers: u32,
    view: bool,
    output: &OutputArgs,
) -> Result<()> {
    install_stop_handler();
    let out = Out::new(output);
    let secs = seconds.as_secs_f64();
    if (w as usize) * 3 < STAMP_LEN {
        return Err(format!("frames must be at least {} pixels wide to carry the stamp", STAMP_LEN.div_ceil(3)).into());
    }
    if view && std::env::var_os("DISPLAY").is_none() {
        return Err("--view needs an X display, and $DISPLAY is not set (run without --view, or under xvfb-run)".into());
    }
    // A private folder in memory, removed at the end.
    let dir = tempfile::Builder::new().prefix("shmimage-").tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir())?;
    let file = dir.path().join("demo.shm");
    let exe = std::env::current_exe()?;
    let role = |name: &str| {
        let mut c = Command::new(&exe);
        c.arg(name).arg("--file").arg(&file).args([
            "--size",
            &format!("{w}x{h}"),
            "--fps",
            &fps.to_string(),
            "--seconds",
            &secs.to_string(),
        ]);
        if copy {
            c.arg("--copy");
        }
        c
    };
    let mode = if copy { "put (one copy)" } else { "loan (zero copy)" };
    out.event(
        "start",
        format!(
            "shmimage demo: native stream, 1 writer and {readers} verifying readers, {w}x{h} RGB8, {}, {mode}, \
             {secs} s, stream file {}",
            if fps > 0.0 { format!("{fps} fps") } else { "as fast as possible".into() },
            file.display()
        ),
        json!({"protocol": "native", "readers": readers, "width": w, "height": h, "mode": mode, "seconds": secs,
               "path": file.display().to_string()}),
    );
    let mut writer = role("demo-writer").args(["--readers", &readers.to_string()]).stdout(Stdio::null()).spawn()?;
    let mut children: Vec<Child> = Vec::new();
    let (tx, rx) = channel::<(usize, String)>();
    let mut readers_out = Vec::new();
    for k in 0..readers as usize {
        let mut c = role("demo-reader").stdout(Stdio::piped()).spawn()?;
        let stdout = c.stdout.take().ok_or("no reader output")?;
        let tx = tx.clone();
        readers_out.push(std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(std::io::Result::ok) {
                if tx.send((k, line)).is_err() {
                    return;
                }
            }
        }));
        children.push(c);
    }
    drop(tx);
    let mut viewer = if view {
        Some(
            Command::new(&exe)
                .arg("view")
                .arg(&file)
                .args(["--quiet", "--seconds", &(secs + 2.0).to_string()])
                .spawn()?,
        )
    } else {
        None
    };
    // Ctrl-C here ends every process: they stop cleanly and still report.
    let pids: Vec<u32> = std::iter::once(writer.id()).chain(children.iter().map(Child::id)).collect();
    on_stop(move || {
        for &pid in &pids {
            // SAFETY: kill(2) on our own children's pids; no memory is touched.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
    });
    let mut status = out.status(None);
    let mut summaries: Vec<Option<String>> = vec![None; readers as usize];
    let mut latest: Vec<String> = vec![String::new(); readers as usize];
    for (k, line) in rx {
        if let Some(s) = line.strip_prefix("STATUS ") {
            latest[k] = s.to_owned();
            status.update(0, || {
                latest.iter().enumerate().map(|(i, l)| format!("r{i}: {l}")).collect::<Vec<_>>().join(" | ")
            });
        } else if let Some(s) = line.strip_prefix("SUMMARY ") {
            summaries[k] = Some(s.to_owned());
        }
    }
    status.finish();
    for t in readers_out {
        let _ = t.join();
    }
    let ended_well = |st: std::process::ExitStatus| {
        st.success() || (stopped() && std::os::unix::process::ExitStatusExt::signal(&st) == Some(libc::SIGTERM))
    };
    let mut all_ok = true;
    for c in &mut children {
        all_ok &= ended_well(c.wait()?);
    }
    let writer_ok = ended_well(writer.wait()?);
    if let Some(v) = viewer.as_mut() {
        let _ = v.kill();
        let _ = v.wait();
    }
    let mut per_reader = Vec::new();
    let (mut frames, mut corrupt) = (0u64, 0u64);
    for (k, s) in summaries.iter().enumerate() {
        let s = s.clone().unwrap_or_else(|| "frames=0 corrupt=0 no_summary=1".into());
        out.line(format!("reader {k}: {s}"));
        let f = field(&s, "frames").unwrap_or(0);
        frames = if k == 0 { f } else { frames.min(f) };
        corrupt += field(&s, "corrupt").unwrap_or(0);
        per_reader.push(summary_json(&s));
    }
    let outcome: Result<()> = if !all_ok || !writer_ok || corrupt != 0 || (frames == 0 && !stopped()) {
        Err(format!(
            "demo failed: {corrupt} corrupt frame(s), fewest frames read by a reader {frames}, writer {}, readers {}",
            if writer_ok { "ok" } else { "failed" },
            if all_ok { "ok" } else { "failed" }
        )
        .into())
    } else {
        Ok(())
    };
    out.done(
        // frames: the fewest any reader verified.
        format!("summary: readers={readers} frames={frames} corrupt={corrupt}"),
        json!({"protocol": "native", "readers": per_reader, "corrupt": corrupt as f64, "frames": frames as f64}),
        &outcome,
    );
    drop(dir);
    outcome
}

pub fn writer(a: NativeRoleArgs) -> Result<()> {
    install_stop_handler();
    let (w, h) = a.size;
    let d = desc(w, h)?;
    let options = WriterOptions { slot_bytes: d.len(), ..WriterOptions::default() };
    let wr = native::Writer::create(&a.file, &options).map_err(|e| e.to_string())?;
    let stop = wr.clone();
    on_stop(move || stop.close());
    // Every reader joins before the first frame, so all see frame 1 on.
    let waiting = Instant::now();
    while (wr.readers().len() as u32) < a.readers {
        if stopped() {
            return Ok(());
        }
        if waiting.elapsed() > Duration::from_secs(20) {
            return Err(format!("only {} of {} readers joined", wr.readers().len(), a.readers).into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let pattern = Pattern::new(w);
    let len = d.len() as usize;
    let mut scratch = if a.copy { vec![0u8; len] } else { Vec::new() };
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.seconds);
    let period = (a.fps > 0.0).then(|| Duration::from_secs_f64(1.0 / a.fps));
    let mut n = 0u32;
    while Instant::now() < end && !stopped() {
        if let Some(p) = period {
            if let Some(left) = (start + p * n).checked_duration_since(Instant::now()) {
                std::thread::sleep(left);
            }
        }
        n += 1;
        if a.copy {
            pattern.render(n, h, &mut scratch);
            let sum = checksum(&scratch, w);
            stamp(&mut scratch, n, sum);
            match wr.put(&d, &scratch, &native::FrameInfo::default()) {
                Ok(_) | Err(native::Error::NoSlotAvailable) => {}
                Err(_) if stopped() => break,
                Err(e) => return Err(e.to_string().into()),
            }
        } else {
            let mut loan = match wr.loan(&d, Some(Duration::from_secs(1))) {
                Ok(l) => l,
                Err(native::Error::NoSlotAvailable) => continue,
                Err(_) if stopped() => break,
                Err(e) => return Err(e.to_string().into()),
            };
            let px = loan.pixels_mut();
            pattern.render(n, h, &mut px[..len]);
            let sum = checksum(&px[..len], w);
            stamp(&mut px[..len], n, sum);
            match loan.commit() {
                Ok(_) => {}
                // Ctrl-C closes the writer under a loan in flight: a stop.
                Err(_) if stopped() => break,
                Err(e) => return Err(e.to_string().into()),
            }
        }
    }
    // Let the readers take the last frames before they see us gone.
    let last = u64::from(n);
    let drained = Instant::now();
    while drained.elapsed() < Duration::from_secs(2) && wr.readers().iter().any(|r| r.last_seq < last) && !stopped() {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

pub fn reader(a: NativeRoleArgs) -> Result<()> {
    install_stop_handler();
    let (w, h) = a.size;
    let start = Instant::now();
    // The writer creates the file; wait for it.
    let r = loop {
        match native::Reader::open(&a.file, &ReaderOptions::default()) {
            Ok(r) => break r,
            // Stopped before the writer was up: nothing read, nothing wrong.
            Err(_) if stopped() => return Ok(()),
            Err(_) if start.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.to_string().into()),
        }
    };
    let stop = r.clone();
    on_stop(move || stop.close());
    let mut t = Tally::default();
    let mut first: Option<Instant> = None;
    let give_up = start + Duration::from_secs_f64(a.seconds + 20.0);
    let mut next_status = start + Duration::from_millis(250);
    let mut out = std::io::stdout().lock();
    loop {
        let waiting_since = now_ns();
        match r.read(Some(Duration::from_millis(250))) {
            Ok(f) => {
                let woke = now_ns();
                let px = &f.pixels()[..f.desc().len() as usize];
                let number = u32::try_from(f.sequence()).unwrap_or(u32::MAX);
                let ok = f.width() == w
                    && f.height() == h
                    && px.len() >= STAMP_LEN
                    && &px[..4] == MAGIC
                    && u32::from_le_bytes(px[4..8].try_into()?) == number
                    && u64::from_le_bytes(px[16..24].try_into()?) == checksum(px, w);
                let published = u64::from_le_bytes(px[8..16].try_into()?);
                if ok && published >= waiting_since && woke >= published {
                    t.wake_ns.push(woke - published);
                }
                t.dropped += f.missed_before();
                t.last = Some(number);
                t.frames += 1;
                first.get_or_insert_with(Instant::now);
                t.bytes += px.len() as u64;
                t.corrupt += u64::from(!ok);
            }
            Err(native::Error::NoFrameAvailable) => {}
            Err(_) if stopped() => break,
            // Before the first frame the writer may not be up yet.
            Err(native::Error::WriterGone { .. }) if t.frames == 0 => std::thread::sleep(Duration::from_millis(5)),
            Err(native::Error::WriterGone { .. }) => break,
            Err(e) => return Err(e.to_string().into()),
        }
        if Instant::now() >= next_status {
            writeln!(out, "STATUS {}", t.line(first.map_or(0.0, |f| f.elapsed().as_secs_f64())))?;
            next_status += Duration::from_millis(250);
        }
        if Instant::now() > give_up || stopped() {
            break;
        }
    }
    let line = t.line(first.map_or(0.0, |f| f.elapsed().as_secs_f64()));
    writeln!(out, "SUMMARY {line} missed={}", r.missed())?;
    Ok(())
}
