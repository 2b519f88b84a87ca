//! `shmimage list` and `shmimage clean`: find the stream files on this
//! machine, tell which are in use (and by which processes), and remove the
//! stale ones that crashed or killed programs left behind.
//!
//! A file counts as a stream file when the engine decodes it as one (a
//! native file by its magic, a 1.0 file by two valid headers); other files in
//! the same folders are never listed and never removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};
use shmimage::{Inspection, Protocol};

use crate::output::{human_bytes, parse_secs, warn, Out, OutputArgs, Result};

#[derive(Debug, Args)]
#[command(after_help = "\
Searched by default: /dev/shm, and the private folders (shmimage-*) the
library makes there and in the temp folder for its own stream files.

A file is stale when no process has it open and no peer holds its liveness
lock, yet it was used (a server wrote to it): what a killed program leaves.
A file nobody has used yet (made by `shmimage create`, waiting for its
server) is listed as unused and not removed.

Examples:
  shmimage list
  shmimage list /dev/shm /tmp/streams --json | jq 'select(.stale)'
  shmimage clean --dry-run")]
pub struct ListArgs {
    /// Folders to search [default: /dev/shm and the library's private folders].
    pub dirs: Vec<PathBuf>,
    /// Seconds to watch each stream for its live frame rate (0: do not).
    #[arg(long, default_value = "0.5", value_parser = parse_secs, value_name = "SECS")]
    pub sample: Duration,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Removes the stale stream files `shmimage list` shows: used once, now with no
process holding them open and no live peer. A file with a live peer, a file
some process has open, an unused new file and anything that is not a stream
file are left alone. Private folders (shmimage-*) left empty are removed too.

Examples:
  shmimage clean --dry-run
  shmimage clean /dev/shm /tmp/streams")]
pub struct CleanArgs {
    /// Folders to search [default: /dev/shm and the library's private folders].
    pub dirs: Vec<PathBuf>,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// What `list` knows of one file.
#[derive(Debug)]
struct Found {
    path: PathBuf,
    protocol: Protocol,
    len: u64,
    state: String,
    /// A peer holds its liveness lock now (server, client, writer, reader).
    live: bool,
    /// Never written to: a new file waiting for its first server or writer.
    blank: bool,
    /// The newest frame's number or sequence, for the live rate.
    newest: Option<u64>,
    /// Protocol-specific facts for JSON.
    facts: Value,
    pids: Vec<(u32, String)>,
    fps: Option<f64>,
}

impl Found {
    fn stale(&self) -> bool {
        !self.live && self.pids.is_empty() && !self.blank
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "path": self.path.display().to_string(),
            "protocol": self.protocol.name(),
            "file_len": self.len,
            "state": self.state,
            "pids": self.pids.iter().map(|(p, name)| json!({"pid": p, "name": name})).collect::<Vec<_>>(),
            "fps": self.fps,
            "unused": self.blank,
            "stale": self.stale(),
        });
        if let (Value::Object(m), Value::Object(f)) = (&mut v, &self.facts) {
            m.extend(f.clone());
        }
        v
    }
}

/// The folders searched when none are given.
fn default_dirs() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("/dev/shm")];
    let tmp = std::env::temp_dir();
    if tmp != Path::new("/dev/shm") {
        v.push(tmp);
    }
    v
}

/// Candidate files: regular files in `dirs`, and in their `shmimage-*`
/// private folders. Symlinks are not followed. A folder given explicitly
/// that cannot be read is an error; the defaults are best effort.
fn candidates(dirs: &[PathBuf], explicit: bool) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let tmp = std::env::temp_dir();
    for dir in dirs {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if explicit => return Err(format!("cannot list {}: {e}", dir.display()).into()),
            Err(_) => continue,
        };
        // The temp folder holds all sorts of files; only its private
        // folders are ours to look in, unless it was named explicitly.
        let only_private = !explicit && *dir == tmp;
        for entry in rd.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            let p = entry.path();
            let private = entry.file_name().to_string_lossy().starts_with("shmimage-");
            if ft.is_file() && !only_private {
                files.push(p);
            } else if ft.is_dir() && private {
                if let Ok(inner) = std::fs::read_dir(&p) {
                    files
                        .extend(inner.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_file())).map(|e| e.path()));
                }
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Every process's open files: path -> (pid, command name). Processes we
/// may not look into are skipped.
fn open_files() -> HashMap<PathBuf, Vec<(u32, String)>> {
    let mut map: HashMap<PathBuf, Vec<(u32, String)>> = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return map };
    let me = std::process::id();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        let name = std::fs::read_to_string(p.path().join("comm")).map(|s| s.trim().to_owned()).unwrap_or_default();
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let entry = map.entry(target).or_default();
                if !entry.iter().any(|(q, _)| *q == pid) {
                    entry.push((pid, name.clone()));
                }
            }
        }
    }
    map
}

/// The newest frame number in the file, if any buffer holds a frame.
pub(crate) fn newest_frame(i: &Inspection) -> Option<u32> {
    i.buffers.iter().filter(|b| b.state().is_some() && b.band.is_ok()).map(|b| b.header.frame_number).reduce(|a, b| {
        if shmimage::layout::is_newer(b, a) {
            b
        } else {
            a
        }
    })
}

/// Decode one candidate; `None` when it is not a stream file.
fn examine(path: &Path, open: &HashMap<PathBuf, Vec<(u32, String)>>) -> Option<Found> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mut pids = open.get(&canonical).cloned().unwrap_or_default();
    pids.sort_unstable();
    let protocol = shmimage::detect_protocol(path).ok()?;
    let found = |state, live, blank, newest, facts, pids: Vec<(u32, String)>| Found {
        path: path.to_owned(),
        protocol,
        len: meta.len(),
        state,
        live,
        blank,
        newest,
        facts,
        pids,
        fps: None,
    };
    match protocol {
        Protocol::Native => {
            // The magic says native; a damaged one still shows, with why.
            let n = match shmimage::native::inspect(path) {
                Ok(n) => n,
                Err(e) => return Some(found(format!("damaged: {e}"), false, false, None, json!({}), pids)),
            };
            let live = n.writer_alive || !n.readers.is_empty();
            // A native writer or reader need not keep the file open: the
            // stream's own records name them too.
            let mut named: Vec<u32> = n.readers.iter().map(|r| r.pid).collect();
            if n.writer_alive && n.writer_pid != 0 {
                named.push(n.writer_pid);
            }
            for pid in named {
                if !pids.iter().any(|(p, _)| *p == pid) {
                    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                    pids.push((pid, name.trim().to_owned()));
                }
            }
            pids.sort_unstable();
            let facts = json!({
                "writer_alive": n.writer_alive,
                "writer_pid": (n.writer_pid != 0).then_some(n.writer_pid),
                "readers": n.readers.iter().map(|r| json!({"pid": r.pid, "lossless": r.lossless})).collect::<Vec<_>>(),
            });
            let newest = (n.latest > 0).then_some(n.latest);
            Some(found(crate::inspect::native_summary(&n), live, n.latest == 0 && n.epoch <= 1, newest, facts, pids))
        }
        Protocol::Ensight1 => {
            let i = shmimage::inspect(path).ok()?;
            // 1.0 has no magic: both state words must be states and each
            // header blank or a band the file can hold; a random file fails.
            let plausible = i
                .buffers
                .iter()
                .all(|b| b.state().is_some() && (b.band.is_ok() || (b.header == shmimage::layout::Header::default())));
            if !plausible {
                return None;
            }
            let live = i.server_alive == Some(true) || i.client_alive == Some(true);
            let facts = json!({"server_alive": i.server_alive, "client_alive": i.client_alive});
            let newest = newest_frame(&i).map(u64::from);
            Some(found(i.diagnose().to_string(), live, i.is_blank(), newest, facts, pids))
        }
    }
}

/// The newest frame of this file now, read again.
fn newest_now(f: &Found) -> Option<u64> {
    match f.protocol {
        Protocol::Native => shmimage::native::inspect(&f.path).ok().map(|n| n.latest),
        Protocol::Ensight1 => shmimage::inspect(&f.path).ok().as_ref().and_then(newest_frame).map(u64::from),
    }
}

/// Find, decode and (for `sample` > 0) time every stream file in `dirs`.
fn find(dirs: &[PathBuf], sample: Duration) -> Result<Vec<Found>> {
    let explicit = !dirs.is_empty();
    let dirs = if explicit { dirs.to_vec() } else { default_dirs() };
    let open = open_files();
    let mut found: Vec<Found> = candidates(&dirs, explicit)?.iter().filter_map(|p| examine(p, &open)).collect();
    let live: Vec<usize> = (0..found.len()).filter(|&k| found[k].live).collect();
    if !sample.is_zero() && !live.is_empty() {
        // One pause for all files: the rate is frames numbered in between.
        let t0 = Instant::now();
        std::thread::sleep(sample);
        for &k in &live {
            let last = newest_now(&found[k]);
            let dt = t0.elapsed().as_secs_f64();
            found[k].fps = Some(match (found[k].newest, last) {
                (Some(a), Some(b)) if dt > 0.0 && b >= a => (b - a) as f64 / dt,
                (None, Some(b)) if dt > 0.0 => b as f64 / dt,
                _ => 0.0,
            });
        }
    }
    Ok(found)
}

fn describe_pids(p: &[(u32, String)]) -> String {
    if p.is_empty() {
        return "none".into();
    }
    p.iter().map(|(pid, name)| format!("{pid} ({name})")).collect::<Vec<_>>().join(", ")
}

pub fn list(a: ListArgs) -> Result<()> {
    let out = Out::new(&a.output);
    let found = find(&a.dirs, a.sample)?;
    for f in &found {
        let mut v = f.to_json();
        v["event"] = json!("file");
        out.record(&v);
        let tag = if f.stale() {
            " [stale]"
        } else if f.blank {
            " [unused]"
        } else {
            ""
        };
        out.line(format!("{}{tag}", f.path.display()));
        out.line(format!("  {}, {} ({} bytes)", f.protocol.name(), human_bytes(f.len), f.len));
        out.line(format!("  state  {}", f.state));
        if let Some(fps) = f.fps {
            out.line(format!("  rate   {fps:.1} frames/s"));
        }
        out.line(format!("  pids   {}", describe_pids(&f.pids)));
    }
    let stale = found.iter().filter(|f| f.stale()).count();
    let hint = if stale > 0 { "; `shmimage clean` removes the stale ones" } else { "" };
    let outcome = Ok(());
    out.done(
        format!("{} stream file(s), {stale} stale{hint}", found.len()),
        json!({"files": found.len(), "stale": stale}),
        &outcome,
    );
    outcome
}

pub fn clean(a: CleanArgs) -> Result<()> {
    let out = Out::new(&a.output);
    let found = find(&a.dirs, Duration::ZERO)?;
    let (mut removed, mut failed) = (0u64, 0u64);
    for f in found.iter().filter(|f| f.stale()) {
        // Look again right before removing: a peer may have opened it since.
        let open = open_files();
        let Some(again) = examine(&f.path, &open) else { continue };
        if !again.stale() {
            continue;
        }
        let p = f.path.display().to_string();
        if a.dry_run {
            out.event("would_remove", format!("would remove {p}"), json!({"path": p}));
            continue;
        }
        match std::fs::remove_file(&f.path) {
            Ok(()) => {
                removed += 1;
                out.event("removed", format!("removed {p}"), json!({"path": p}));
                remove_private_dir(&f.path);
            }
            Err(e) => {
                failed += 1;
                warn(format!("cannot remove {p}: {e}"));
            }
        }
    }
    let kept = found.iter().filter(|f| !f.stale()).count();
    let outcome = if failed > 0 { Err(format!("{failed} stale file(s) could not be removed").into()) } else { Ok(()) };
    let verb = if a.dry_run { "would remove" } else { "removed" };
    let n = if a.dry_run { found.iter().filter(|f| f.stale()).count() as u64 } else { removed };
    out.done(
        format!("{verb} {n} stale stream file(s); {kept} in use or unused left alone"),
        json!({"removed": removed, "kept": kept, "dry_run": a.dry_run}),
        &outcome,
    );
    outcome
}

/// A private folder the library made (`shmimage-*`) that is now empty.
fn remove_private_dir(file: &Path) {
    if let Some(dir) = file.parent() {
        if dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with("shmimage-")) {
            let _ = std::fs::remove_dir(dir); // fails, harmlessly, if not empty
        }
    }
}
