//! bench.json: what a run measured, saved beside bench.png so that the plot
//! can be redrawn (`--replot`) without measuring again. Latency keeps its
//! percentiles, not the samples: the plot and the tables need no more.
//!
//! The native-stream part (issue 12) is an optional `native` section: files
//! written before it existed load with an empty one, and older binaries
//! ignore it, so the format version did not change.

use std::error::Error;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::common::{Latency, Tput};

/// Bumped when a field changes meaning; a file of another version is refused.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub format: u32,
    /// When the run ended, as an HTTP date (UTC).
    pub date: String,
    /// CPU, kernel and load average at the end of the run.
    pub machine: String,
    /// Seconds per throughput measurement.
    pub seconds: f64,
    pub throughput: Vec<TputRow>,
    pub latency: Vec<LatencyRow>,
    /// The native stream against iceoryx2 with several readers; empty when
    /// the part was skipped or the file predates it.
    #[serde(default, skip_serializing_if = "Native::is_empty")]
    pub native: Native,
}

/// One writer and N reader processes (issue 12): what the writer pays per
/// frame, what each reader pays per frame against a plain read of the same
/// bytes, and wake-up latency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Native {
    pub fanout: Vec<FanoutRow>,
    pub wake: Vec<WakeRow>,
}

impl Native {
    pub fn is_empty(&self) -> bool {
        self.fanout.is_empty() && self.wake.is_empty()
    }
}

/// One system (shmimage native or iceoryx2) with `readers` reader processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanoutRow {
    /// `shmimage native` or `iceoryx2 pub/sub`.
    pub system: String,
    pub size: String,
    pub frame_bytes: u64,
    pub readers: u32,
    /// Frames the writer published, and at what rate.
    pub writer_frames: u64,
    pub writer_frames_per_s: f64,
    /// Median cost of publishing one frame, without drawing it: loan + commit
    /// (shmimage), loan + send + notify (iceoryx2).
    pub publish_us: f64,
    /// Its two halves' medians: the loan, and what makes the frame visible
    /// and wakes the readers (commit; send + notify).
    pub loan_us: f64,
    pub commit_us: f64,
    /// Each reader's median take + read every byte + release, us.
    pub read_us: Vec<f64>,
    /// Each reader's median plain read of a private buffer of the same size,
    /// interleaved with its frames (same process, same load), us.
    pub plain_us: Vec<f64>,
    /// Each reader's frames per second (half its time goes to the plain reads).
    pub frames_per_s: Vec<f64>,
    pub note: String,
}

impl FanoutRow {
    /// The readers' median per-frame cost, the middle reader's (the mean of
    /// the middle two for an even count).
    pub fn read_us_mid(&self) -> f64 {
        middle(&self.read_us)
    }

    #[cfg_attr(not(feature = "plot"), allow(dead_code))]
    pub fn plain_us_mid(&self) -> f64 {
        middle(&self.plain_us)
    }

    /// Each reader's frame rate against its own plain read (plain time / frame time).
    pub fn ratios(&self) -> Vec<f64> {
        self.read_us.iter().zip(&self.plain_us).map(|(r, p)| p / r).collect()
    }

    /// The worst reader's ratio: the goal is for each reader.
    pub fn worst_ratio(&self) -> f64 {
        self.ratios().into_iter().fold(f64::NAN, f64::min)
    }
}

/// Wake-up latency with `readers` sleeping readers, all readers' samples pooled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WakeRow {
    /// `shmimage native` or `iceoryx2 event`.
    pub system: String,
    pub readers: u32,
    pub samples: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// Each reader's own p50: whether all wake alike or some later.
    pub p50_each_us: Vec<f64>,
    /// The writer's median cost of publishing one tiny frame with the
    /// readers asleep: `put` (shmimage), loan + send + notify (iceoryx2).
    pub publish_us: f64,
    pub note: String,
}

impl WakeRow {
    /// The row from each reader's samples (ns) and the writer's median publish cost (ns).
    pub fn from_samples(system: &str, readers: u32, each: Vec<Vec<u64>>, publish_ns: f64, note: &str) -> WakeRow {
        let p50_each_us = each.iter().map(|v| Latency::new(system, v.clone(), note).p(0.5) / 1e3).collect();
        let l = Latency::new(system, each.into_iter().flatten().collect(), note);
        WakeRow {
            system: system.to_owned(),
            readers,
            samples: l.sorted.len(),
            p50_us: l.p(0.5) / 1e3,
            p99_us: l.p(0.99) / 1e3,
            p999_us: l.p(0.999) / 1e3,
            p50_each_us,
            publish_us: publish_ns / 1e3,
            note: note.to_owned(),
        }
    }

    /// The same numbers as a latency row, for the plot's latency panel.
    #[cfg_attr(not(feature = "plot"), allow(dead_code))]
    pub fn as_latency(&self) -> LatencyRow {
        let who = if self.system.starts_with("iceoryx2") { "listener" } else { "reader" };
        let plural = if self.readers == 1 { "" } else { "s" };
        LatencyRow {
            method: format!("{}, {} {who}{plural}", self.system, self.readers),
            samples: self.samples,
            p50_us: self.p50_us,
            p99_us: self.p99_us,
            p999_us: self.p999_us,
            note: self.note.clone(),
        }
    }
}

/// The middle value (mean of the middle two for an even count); NaN for none.
fn middle(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TputRow {
    /// 720p, 1080p, 4K or WxH.
    pub size: String,
    pub width: u32,
    pub height: u32,
    /// RGB bytes of one frame.
    pub frame_bytes: u64,
    pub transport: String,
    pub frames: u64,
    pub secs: f64,
    pub frames_per_s: f64,
    pub producer_us: Option<f64>,
    pub consumer_us: Option<f64>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyRow {
    pub method: String,
    pub samples: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub note: String,
}

/// A median of 0 means "not measured" in a Tput; JSON says it with null.
fn us(ns: Option<f64>) -> Option<f64> {
    ns.filter(|v| *v > 0.0).map(|v| v / 1e3)
}

impl Results {
    pub fn from_run(seconds: f64, machine: String, t: &[Tput], l: &[Latency], native: Native) -> Results {
        Results {
            format: FORMAT,
            date: httpdate::fmt_http_date(std::time::SystemTime::now()),
            machine,
            seconds,
            throughput: t
                .iter()
                .map(|x| TputRow {
                    size: x.size.name.to_owned(),
                    width: x.size.w,
                    height: x.size.h,
                    frame_bytes: x.size.bytes() as u64,
                    transport: x.transport.clone(),
                    frames: x.frames,
                    secs: x.secs,
                    frames_per_s: x.fps(),
                    producer_us: us(x.producer_ns),
                    consumer_us: us(x.consumer_ns),
                    note: x.note.clone(),
                })
                .collect(),
            latency: l
                .iter()
                .map(|x| LatencyRow {
                    method: x.method.clone(),
                    samples: x.sorted.len(),
                    p50_us: x.p(0.5) / 1e3,
                    p99_us: x.p(0.99) / 1e3,
                    p999_us: x.p(0.999) / 1e3,
                    note: x.note.clone(),
                })
                .collect(),
            native,
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), Box<dyn Error>> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(())
    }

    #[cfg_attr(not(feature = "plot"), allow(dead_code))]
    pub fn load(path: &Path) -> Result<Results, Box<dyn Error>> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let r: Results = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a shmimage-bench result: {e}", path.display()))?;
        if r.format != FORMAT {
            return Err(format!("{}: results format {} (this binary reads {FORMAT})", path.display(), r.format).into());
        }
        Ok(r)
    }

    /// The sizes in the order the run measured them.
    #[cfg_attr(not(feature = "plot"), allow(dead_code))]
    pub fn sizes(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = Vec::new();
        for x in &self.throughput {
            if !v.iter().any(|(n, _)| *n == x.size) {
                v.push((&x.size, x.frame_bytes));
            }
        }
        v
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::common::SIZES;

    fn sample() -> Results {
        let t = vec![Tput {
            transport: "shmimage put_frame".into(),
            size: SIZES[1],
            frames: 300,
            secs: 0.1,
            producer_ns: Some(200_000.0),
            consumer_ns: None,
            note: "n".into(),
        }];
        let l = vec![Latency::new("shmimage wait_frame (futex)", (1..=1000).map(|v| v * 1000).collect(), "m")];
        Results::from_run(0.3, "test machine".into(), &t, &l, native_sample())
    }

    pub fn fanout(system: &str, readers: u32, read_us: Vec<f64>, plain_us: Vec<f64>) -> FanoutRow {
        FanoutRow {
            system: system.into(),
            size: "1080p".into(),
            frame_bytes: 1920 * 1080 * 3,
            readers,
            writer_frames: 1000,
            writer_frames_per_s: 2000.0,
            publish_us: 2.0,
            loan_us: 0.5,
            commit_us: 1.5,
            frames_per_s: vec![1000.0; read_us.len()],
            read_us,
            plain_us,
            note: "n".into(),
        }
    }

    pub fn native_sample() -> Native {
        Native {
            fanout: vec![
                fanout("shmimage native", 2, vec![300.0, 400.0], vec![300.0, 320.0]),
                fanout("iceoryx2 pub/sub", 2, vec![350.0, 450.0], vec![300.0, 300.0]),
            ],
            wake: vec![
                WakeRow::from_samples("shmimage native", 1, vec![(1..=100).map(|v| v * 1000).collect()], 1500.0, "w"),
                WakeRow::from_samples("iceoryx2 event", 4, vec![vec![10_000; 5], vec![30_000; 5]], 2500.0, "w"),
            ],
        }
    }

    #[test]
    fn keeps_what_the_plot_needs() {
        let r = sample();
        assert_eq!(r.sizes(), vec![("1080p", 1920 * 1080 * 3)]);
        assert_eq!(r.throughput[0].frames_per_s, 3000.0);
        assert_eq!(r.throughput[0].producer_us, Some(200.0));
        assert_eq!(r.throughput[0].consumer_us, None);
        assert_eq!((r.latency[0].p50_us, r.latency[0].p99_us, r.latency[0].p999_us), (500.0, 990.0, 999.0));
    }

    #[test]
    fn native_rows_give_each_reader_its_ratio() {
        let n = native_sample();
        let x = &n.fanout[0];
        assert_eq!(x.ratios(), vec![1.0, 0.8]);
        assert_eq!(x.worst_ratio(), 0.8);
        assert_eq!((x.read_us_mid(), x.plain_us_mid()), (350.0, 310.0));
        assert_eq!(middle(&[3.0, 1.0, 2.0]), 2.0);
        assert!(middle(&[]).is_nan());
        let w = &n.wake[0];
        assert_eq!((w.samples, w.p50_us, w.p99_us, w.publish_us), (100, 50.0, 99.0, 1.5));
        assert_eq!(n.wake[1].p50_each_us, vec![10.0, 30.0]);
        assert_eq!((n.wake[1].samples, n.wake[1].p50_us), (10, 10.0));
        assert_eq!(w.as_latency().method, "shmimage native, 1 reader");
        assert_eq!(n.wake[1].as_latency().method, "iceoryx2 event, 4 listeners");
    }

    #[test]
    fn files_without_the_native_part_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.json");
        let mut r = sample();
        r.native = Native::default();
        r.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        // Nothing measured, nothing written: the file is what format 1 always was.
        assert!(!text.contains("\"native\""), "{text}");
        assert_eq!(Results::load(&path).unwrap(), r);
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.json");
        let r = sample();
        r.save(&path).unwrap();
        assert_eq!(Results::load(&path).unwrap(), r);
    }

    #[test]
    fn refuses_other_files_with_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        std::fs::write(&path, "{\"rows\": []}").unwrap();
        let e = Results::load(&path).unwrap_err().to_string();
        assert!(e.contains("is not a shmimage-bench result"), "{e}");
        let mut r = sample();
        r.format = FORMAT + 1;
        r.save(&path).unwrap();
        let e = Results::load(&path).unwrap_err().to_string();
        assert!(e.contains("results format"), "{e}");
        let e = Results::load(&dir.path().join("missing.json")).unwrap_err().to_string();
        assert!(e.contains("cannot read"), "{e}");
    }
}
