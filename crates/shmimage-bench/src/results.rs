//! bench.json: what a run measured, saved beside bench.png so that the plot
//! can be redrawn (`--replot`) without measuring again. Latency keeps its
//! percentiles, not the samples: the plot and the tables need no more.

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
    pub fn from_run(seconds: f64, machine: String, t: &[Tput], l: &[Latency]) -> Results {
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
mod tests {
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
        Results::from_run(0.3, "test machine".into(), &t, &l)
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
