//! The markdown report: machine, throughput table, latency table, goals.

use std::fmt::Write as _;
use std::time::Duration;

use crate::common::*;
use crate::results::{FanoutRow, Native, WakeRow};
use crate::Args;

pub const MEMCPY: &str = "memcpy (limit)";
pub const PUT: &str = "shmimage put_frame";
pub const MEMCPY_LOADED: &str = "memcpy while another process reads";
pub const PUT_NT: &str = "shmimage put_frame, client NOTHREADS";
pub const PIPE: &str = "pipeline copy (no shmimage)";
pub const LOAN: &str = "shmimage loan+commit";
pub const UNIX: &str = "Unix socket (stream)";

pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("nproc {cpus}, CPU {model}, Linux {}, load average at the end {}", kernel.trim(), load.join(" "))
}

fn us(ns: Option<f64>) -> String {
    match ns {
        Some(v) if v > 0.0 => format!("{:.1}", v / 1e3),
        _ => "-".into(),
    }
}

pub fn find<'a>(t: &'a [Tput], transport: &str, size: Size) -> Option<&'a Tput> {
    t.iter().find(|x| x.transport == transport && x.size == size)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

pub fn markdown(a: &Args, t: &[Tput], l: &[Latency], native: &Native, notes: &[String], took: Duration) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Run\n");
    let _ = writeln!(s, "- machine: {}", machine());
    let _ = writeln!(
        s,
        "- {} s per throughput measurement, {} s per latency test; whole run {:.0} s",
        a.seconds,
        (a.seconds * 2.0).max(1.0),
        took.as_secs_f64()
    );
    let _ = writeln!(s, "\n### Throughput (two processes; the consumer reads every byte unless noted)\n");
    let _ = writeln!(
        s,
        "| size | transport | frames/s | GB/s | x memcpy rate | producer us/frame (median) | consumer us/frame (median) | notes |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---|");
    for size in &a.sizes {
        let base = find(t, MEMCPY, *size).map(|m| m.fps()).unwrap_or(f64::NAN);
        for x in t.iter().filter(|x| x.size == *size) {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
                size.name,
                x.transport,
                x.fps(),
                x.gbps(),
                x.fps() / base,
                us(x.producer_ns),
                us(x.consumer_ns),
                x.note
            );
        }
    }
    if !l.is_empty() {
        let _ = writeln!(s, "\n### Wake-up latency (publish -> the consumer holds the frame; us)\n");
        let _ = writeln!(s, "| method | samples | p50 | p99 | p99.9 | notes |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---|");
        for x in l {
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {} |",
                x.method,
                x.sorted.len(),
                x.p(0.5) / 1e3,
                x.p(0.99) / 1e3,
                x.p(0.999) / 1e3,
                x.note
            );
        }
    }
    s.push_str(&native_tables(native));
    let _ = writeln!(s, "\n### Goals (ratios from this run)\n");
    let _ = writeln!(s, "| goal | size | measured | verdict |");
    let _ = writeln!(s, "|---|---|---|---|");
    for size in &a.sizes {
        for (client, name) in [("default client", PUT), ("client NOTHREADS", PUT_NT)] {
            let (Some(m), Some(p)) = (find(t, MEMCPY, *size), find(t, name, *size)) else { continue };
            let (mc, pt) = (m.producer_ns.unwrap_or(f64::NAN), p.producer_ns.unwrap_or(f64::NAN));
            let r = pt / mc;
            let loaded = find(t, MEMCPY_LOADED, *size)
                .and_then(|x| x.producer_ns)
                .map(|ml| format!("; vs memcpy while another process reads {:.2}x", pt / ml))
                .unwrap_or_default()
                + &find(t, PIPE, *size)
                    .and_then(|x| x.producer_ns)
                    .map(|pc| format!("; vs pipeline copy {:.2}x", pt / pc))
                    .unwrap_or_default();
            let _ = writeln!(
                s,
                "| put_frame <= 1.10x memcpy time ({client}) | {} | {:.0} us / {:.0} us = {:.2}x{loaded} | {} |",
                size.name,
                pt / 1e3,
                mc / 1e3,
                r,
                verdict(r <= 1.10)
            );
        }
        for (client, name) in [("default client", PUT), ("client NOTHREADS", PUT_NT)] {
            let (Some(m), Some(p)) = (find(t, MEMCPY, *size), find(t, name, *size)) else { continue };
            let (mc, rd) = (m.producer_ns.unwrap_or(f64::NAN), p.consumer_ns.unwrap_or(f64::NAN));
            let r = mc / rd;
            let _ = writeln!(
                s,
                "| lock+read+unlock rate >= 0.8x memcpy rate ({client}) | {} | {:.0} /s vs {:.0} /s = {:.2}x (end-to-end frames/s {:.2}x) | {} |",
                size.name,
                1e9 / rd,
                1e9 / mc,
                r,
                p.fps() / m.fps(),
                verdict(r >= 0.8)
            );
        }
    }
    let loans: Vec<(Size, f64)> =
        a.sizes.iter().filter_map(|z| find(t, LOAN, *z).and_then(|x| x.producer_ns).map(|v| (*z, v))).collect();
    if loans.len() >= 2 {
        let lo = loans.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
        let hi = loans.iter().map(|x| x.1).fold(0.0, f64::max);
        let each: Vec<String> = loans.iter().map(|(z, v)| format!("{} {:.1} us", z.name, v / 1e3)).collect();
        // Within noise: a fixed cost of a few microseconds, not one that grows
        // 6.75x from 720p to 4K as a copy would.
        let ok = hi / lo <= 1.5 || hi < 20_000.0;
        let _ = writeln!(
            s,
            "| loan+commit independent of frame size | all | {} (max/min {:.2}x) | {} |",
            each.join(", "),
            hi / lo,
            verdict(ok)
        );
    }
    let p50 = |name: &str| l.iter().find(|x| x.method.starts_with(name)).map(|x| x.p(0.5));
    let pairs = [("1-byte ping-pong RTT/2", "Unix socket 1-byte"), ("one-way stamp", "Unix socket one-way")];
    let clients =
        [("default client", "shmimage wait_frame (futex)"), ("client NOTHREADS", "shmimage wait_frame, no monitor")];
    for ((what, unix), (client, name)) in pairs.iter().flat_map(|p| clients.iter().map(move |c| (*p, *c))) {
        if let (Some(w), Some(u)) = (p50(name), p50(unix)) {
            let _ = writeln!(
                s,
                "| wake-up p50 <= Unix-socket latency ({what}; {client}) | - | {:.1} us vs {:.1} us = {:.2}x | {} |",
                w / 1e3,
                u / 1e3,
                w / u,
                verdict(w <= u)
            );
        }
    }
    for (client, name) in
        [("default client", "shmimage wait_frame (futex)"), ("client NOTHREADS", "shmimage wait_frame, no monitor")]
    {
        if let (Some(w), Some(p)) = (p50(name), p50("shmimage polling")) {
            let _ = writeln!(
                s,
                "| wake-up p50 >= 20x lower than polling ({client}) | - | {:.1} us vs {:.1} us = {:.1}x | {} |",
                w / 1e3,
                p / 1e3,
                p / w,
                verdict(p / w >= 20.0)
            );
        }
    }
    if let Some(z) = a.sizes.iter().find(|z| z.name == "1080p") {
        if let Some(u) = find(t, UNIX, *z) {
            for name in [PUT, PUT_NT, LOAN] {
                if let Some(p) = find(t, name, *z) {
                    let r = p.fps() / u.fps();
                    let _ = writeln!(
                        s,
                        "| >= 5x Unix-socket frames/s ({name}) | 1080p | {:.0} vs {:.0} = {:.2}x | {} |",
                        p.fps(),
                        u.fps(),
                        r,
                        verdict(r >= 5.0)
                    );
                }
            }
        }
    }
    for row in native_goals(native) {
        let _ = writeln!(s, "{row}");
    }
    if !notes.is_empty() {
        let _ = writeln!(s, "\n### Not measured\n");
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

/// "1 reader", "4 readers".
fn count(n: u32, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A list of per-reader values: "105.2, 98.7".
fn each(v: &[f64], digits: usize) -> String {
    v.iter().map(|x| format!("{x:.digits$}")).collect::<Vec<_>>().join(", ")
}

const NATIVE_METHOD: &str = "\
One writer (this process) and N reader processes at 1080p RGB (6.2 MB). \
The writer loans a frame, draws it (copies a prepared frame into the loan, not timed), \
then commits: shmimage native `loan` + `commit` (N + 2 slots: the fewest with which no loan waits \
for readers), iceoryx2 `loan_slice_uninit` + `send` + `notify` (queue of one per subscriber with \
safe overflow, history 0, one borrowed sample: a pool of 2N + 1 samples; refused loans are counted in the notes). Each reader takes the newest frame, reads every byte with \
`digest`, releases it, then reads a private buffer of the same size: both timed in the same process \
under the same load, alternately; a frame ready at once is timed from the take, one waited for from \
when the wait returned it. Per reader: the median of each. The rate ratio is plain time / frame time.";

const WAKE_METHOD: &str = "\
The writer publishes a tiny frame every 2 ms, so the readers are asleep. shmimage native: `put` of \
an 8x8 frame; each reader, asleep in `read`, takes `now_mono_ns()` minus the frame's publish time. \
iceoryx2 event: the notifier sends its CLOCK_MONOTONIC time in an 8-byte pub/sub sample, then \
`notify`; each listener wakes in `timed_wait`, takes the stamp with a non-blocking `receive` and \
subtracts it. All readers' samples pooled; each reader's own p50 beside them. The writer's publish \
column is what one publish costs with every reader asleep (shmimage `put` of 64 bytes; iceoryx2 \
loan + send + notify).";

fn native_tables(n: &Native) -> String {
    let mut s = String::new();
    if !n.fanout.is_empty() {
        let _ = writeln!(s, "\n### Native stream against iceoryx2, N reader processes (issue 12)\n");
        let _ = writeln!(s, "{NATIVE_METHOD}\n");
        let _ = writeln!(
            s,
            "| readers | system | writer frames/s | publish us (median) | of which loan / commit | frame us per reader (median) | plain read us per reader | rate vs plain read per reader | frames/s per reader | notes |"
        );
        let _ = writeln!(s, "|---:|---|---:|---:|---|---|---|---|---|---|");
        for x in &n.fanout {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.2} | {:.2} / {:.2} | {} | {} | {} | {} | {} |",
                x.readers,
                x.system,
                x.writer_frames_per_s,
                x.publish_us,
                x.loan_us,
                x.commit_us,
                each(&x.read_us, 1),
                each(&x.plain_us, 1),
                each(&x.ratios(), 2),
                each(&x.frames_per_s, 0),
                x.note
            );
        }
    }
    if !n.wake.is_empty() {
        let _ = writeln!(s, "\n### Wake-up with N readers (us)\n");
        let _ = writeln!(s, "{WAKE_METHOD}\n");
        let _ = writeln!(
            s,
            "| readers | system | samples | p50 | p99 | p99.9 | p50 of each reader | writer's publish us (median) | notes |"
        );
        let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---|---:|---|");
        for x in &n.wake {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {:.2} | {} |",
                x.readers,
                x.system,
                x.samples,
                x.p50_us,
                x.p99_us,
                x.p999_us,
                each(&x.p50_each_us, 1),
                x.publish_us,
                x.note
            );
        }
    }
    s
}

fn fan<'a>(n: &'a Native, system: &str, readers: u32) -> Option<&'a FanoutRow> {
    n.fanout.iter().find(|x| x.system.starts_with(system) && x.readers == readers)
}

fn wake_of<'a>(n: &'a Native, system: &str, readers: u32) -> Option<&'a WakeRow> {
    n.wake.iter().find(|x| x.system.starts_with(system) && x.readers == readers)
}

/// The issue-12 goals as rows of the goals table.
pub fn native_goals(n: &Native) -> Vec<String> {
    let mut rows = Vec::new();
    rows.extend(loan_flat(n));
    for x in n.fanout.iter().filter(|x| x.system.starts_with("shmimage")) {
        let r = x.worst_ratio();
        rows.push(format!(
            "| native: each reader's take+read+release rate >= 0.8x a plain read ({}) | 1080p | worst reader {r:.3}x (each: {}) | {} |",
            count(x.readers, "reader"),
            each(&x.ratios(), 3),
            verdict(r >= 0.8)
        ));
        if let Some(i) = fan(n, "iceoryx2", x.readers) {
            let (ns, is) = (x.read_us_mid(), i.read_us_mid());
            rows.push(format!(
                "| native: reader rate ahead of iceoryx2 pub/sub ({}, same frames, same digest) | 1080p | {:.0} vs {:.0} frames/s per reader from the middle reader's median ({ns:.1} vs {is:.1} us) = {:.2}x | {} |",
                count(x.readers, "reader"),
                1e6 / ns,
                1e6 / is,
                is / ns,
                verdict(ns < is)
            ));
        }
    }
    if let (Some(one), Some(four)) = (wake_of(n, "shmimage", 1), wake_of(n, "shmimage", 4)) {
        let r = four.p50_us / one.p50_us;
        rows.push(format!(
            "| native: wake-up p50 with 4 readers <= 1.2x one reader | - | {:.1} us vs {:.1} us = {r:.2}x | {} |",
            four.p50_us,
            one.p50_us,
            verdict(r <= 1.2)
        ));
    }
    for w in n.wake.iter().filter(|x| x.system.starts_with("shmimage")) {
        if let Some(i) = wake_of(n, "iceoryx2", w.readers) {
            rows.push(format!(
                "| native: wake-up p50 <= iceoryx2 event wake-up ({} / {}) | - | {:.1} us vs {:.1} us = {:.2}x | {} |",
                count(w.readers, "reader"),
                count(w.readers, "listener"),
                w.p50_us,
                i.p50_us,
                w.p50_us / i.p50_us,
                verdict(w.p50_us <= i.p50_us)
            ));
        }
    }
    rows
}

/// Loan+commit flat in the number of readers: the slowest reader count's
/// median within 1.5x of the fastest's.
fn loan_flat(n: &Native) -> Option<String> {
    let rows: Vec<&FanoutRow> = n.fanout.iter().filter(|x| x.system.starts_with("shmimage")).collect();
    if rows.len() < 2 {
        return None;
    }
    let lo = rows.iter().map(|x| x.publish_us).fold(f64::INFINITY, f64::min);
    let hi = rows.iter().map(|x| x.publish_us).fold(0.0, f64::max);
    let list: Vec<String> = rows
        .iter()
        .map(|x| format!("{}: {:.2} us (loan {:.2}, commit {:.2})", x.readers, x.publish_us, x.loan_us, x.commit_us))
        .collect();
    Some(format!(
        "| native: loan+commit flat in the number of reader processes | 1080p | {} (max/min {:.2}x) | {} |",
        list.join(", "),
        hi / lo,
        verdict(hi / lo <= 1.5)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::{fanout, native_sample};

    #[test]
    fn native_goals_say_met_or_missed_from_the_numbers() {
        let mut n = native_sample();
        n.fanout.push(fanout("shmimage native", 1, vec![300.0], vec![300.0]));
        n.wake.push(WakeRow::from_samples("shmimage native", 4, vec![vec![30_000; 10]], 3000.0, "w"));
        let rows = native_goals(&n).join("\n");
        // Loan+commit 2 us with 1 and 2 readers: flat.
        assert!(rows.contains("processes | 1080p | 2: 2.00 us (loan 0.50, commit 1.50), 1: 2.00 us"), "{rows}");
        assert!(rows.contains("(max/min 1.00x) | met |"), "{rows}");
        // Two readers at 1.0x and 0.8x of their plain reads: the worst meets 0.8x.
        assert!(rows.contains("(2 readers) | 1080p | worst reader 0.800x (each: 1.000, 0.800) | met |"), "{rows}");
        // Middle reader 350 us against iceoryx2's 400 us: ahead.
        assert!(rows.contains("(350.0 vs 400.0 us) = 1.14x | met |"), "{rows}");
        // Wake-up: 30 us with 4 readers against 50 us with one (0.6x), and
        // against iceoryx2's 10 us with 4 listeners: missed.
        assert!(rows.contains("30.0 us vs 50.0 us = 0.60x | met |"), "{rows}");
        assert!(rows.contains("(4 readers / 4 listeners) | - | 30.0 us vs 10.0 us = 3.00x | **missed** |"), "{rows}");
        // No iceoryx2 row with one reader: no comparison made up.
        assert!(rows.contains("plain read (1 reader) | 1080p | worst reader 1.000x"), "{rows}");
        assert!(!rows.contains("(1 reader / 1 listener)"), "{rows}");
        assert!(!rows.contains("iceoryx2 pub/sub (1 reader"), "{rows}");
    }

    #[test]
    fn native_tables_list_every_reader() {
        let s = native_tables(&native_sample());
        assert!(
            s.contains(
                "| 2 | shmimage native | 2000 | 2.00 | 0.50 / 1.50 | 300.0, 400.0 | 300.0, 320.0 | 1.00, 0.80 |"
            ),
            "{s}"
        );
        assert!(s.contains("| 4 | iceoryx2 event | 10 | 10.0 | 30.0 | 30.0 | 10.0, 30.0 | 2.50 | w |"), "{s}");
        assert!(native_tables(&Native::default()).is_empty());
    }
}
