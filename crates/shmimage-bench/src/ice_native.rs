//! iceoryx2 counterparts of the native-stream tests (`native.rs`), with the
//! same frame, the same number of reader processes and the same work:
//!
//! - fan-out: publish-subscribe of `[u8]` samples of the 1080p frame; the
//!   publisher loans a sample (zero copy), draws the frame into it like the
//!   native writer draws into its loan (not timed), sends it and notifies an
//!   event service (timed: loan + send + notify); each subscriber sleeps in
//!   its listener when no sample is queued, takes the newest sample, reads
//!   every byte with `digest` and drops it, then reads a private buffer of
//!   the same size ([`Meter`]), exactly like a native reader.
//! - wake-up: the event service (notifier/listener). The notifier's
//!   CLOCK_MONOTONIC send time travels in an 8-byte pub/sub sample sent just
//!   before `notify`; a listener sleeps in `timed_wait`, then takes the
//!   stamp without blocking (`receive`), so the wake is the only wait.
//!
//! Settings (`ice::open`): one publisher, N subscribers, subscriber queue of
//! one with safe overflow (the newest sample wins, like a native reader in
//! newest mode; the publisher never blocks), history 0, one borrowed sample
//! per subscriber, one loaned sample for the publisher; iceoryx2 sizes its
//! sample pool for that (N x (1 + 1) + 1 samples), so loans are never
//! refused (counted if they are).

use std::time::{Duration, Instant};

use crate::common::*;
use crate::ice::{names, open, send_end, split, start_peers};
use crate::native::{fanout_row, stamp, Meter, Times, SIZE, WAKE_GAP};
use crate::results::{FanoutRow, WakeRow};

type Err = Box<dyn std::error::Error>;

pub const PUBSUB: &str = "iceoryx2 pub/sub";
pub const EVENT: &str = "iceoryx2 event";

pub fn fanout(readers: u32, secs: f64) -> Result<FanoutRow, Err> {
    let n = readers as usize;
    let (frames, wake) = names();
    let ends = open(&frames, &wake, n)?;
    let publisher =
        ends.pubsub.publisher_builder().initial_max_slice_len(SIZE.bytes()).max_loaned_samples(1).create()?;
    let notifier = ends.events.notifier_builder().create()?;
    let args = ["ice-fan-read".into(), format!("{frames}|{wake}"), SIZE.bytes().to_string(), n.to_string()];
    let children = start_peers(&ends, n, &args)?;
    let frame = pattern(SIZE.bytes());
    let mut times = Times::default();
    let (t0, mut sent, mut refused) = (Instant::now(), 0u64, 0u64);
    let end = t0 + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        let t = Instant::now();
        let Ok(sample) = publisher.loan_slice_uninit(SIZE.bytes()) else {
            refused += 1;
            std::thread::yield_now();
            continue;
        };
        let loaned = t.elapsed();
        // Draw, as native::draw does: the frame, then its number.
        let mut sample = sample.write_from_slice(&frame);
        stamp(sample.payload_mut(), sent);
        let c = Instant::now();
        sample.send()?;
        notifier.notify()?;
        times.push(loaned, c.elapsed());
        sent += 1;
    }
    let writer_secs = t0.elapsed().as_secs_f64();
    send_end(&publisher, &notifier)?;
    let reports: Vec<PeerReport> = children.into_iter().map(|c| collect(c, "iceoryx2 subscriber")).collect();
    let note = format!("pool {} samples, loans refused {refused}", 2 * n + 1);
    Ok(fanout_row(PUBSUB, readers, sent, writer_secs, times, &reports, note))
}

/// Peer: take the newest sample, read every byte, drop it; sleep in the
/// listener only when no sample is queued. Timed from `receive`.
pub fn peer_read(arg: &str, bytes: usize, subscribers: usize) {
    let (frames, wake) = split(arg);
    let ends = open(frames, wake, subscribers).expect("open iceoryx2 services");
    let subscriber = ends.pubsub.subscriber_builder().create().expect("subscriber");
    let listener = ends.events.listener_builder().create().expect("listener");
    let mut m = Meter::new(bytes);
    let mut slept = false;
    loop {
        let t = Instant::now();
        let Some(sample) = subscriber.receive().expect("receive") else {
            // Notifications of samples already taken return at once; the
            // next receive tells.
            listener.timed_wait(|_| {}, Duration::from_secs(10)).expect("listener wait");
            slept = true;
            continue;
        };
        if sample.payload().len() != bytes {
            break;
        }
        m.waited += u64::from(std::mem::take(&mut slept));
        m.frame(t, move || {
            let d = digest(sample.payload());
            drop(sample);
            d
        });
    }
    m.report();
}

/// Wake-up through the event service with `readers` listeners (one per
/// process), paced like the native wake-up test.
pub fn wake(readers: u32, secs: f64) -> Result<WakeRow, Err> {
    let n = readers as usize;
    let (frames, wake) = names();
    let ends = open(&frames, &wake, n)?;
    let publisher = ends.pubsub.publisher_builder().initial_max_slice_len(64).max_loaned_samples(1).create()?;
    let notifier = ends.events.notifier_builder().create()?;
    let args = ["ice-fan-wait".into(), format!("{frames}|{wake}"), n.to_string()];
    let children = start_peers(&ends, n, &args)?;
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let (mut publish, mut refused) = (Vec::with_capacity(1 << 12), 0u64);
    while Instant::now() < end {
        std::thread::sleep(WAKE_GAP);
        let t = Instant::now();
        let Ok(s) = publisher.loan_slice_uninit(8) else {
            refused += 1;
            continue;
        };
        s.write_from_slice(&now_ns().to_le_bytes()).send()?;
        notifier.notify()?;
        publish.push(t.elapsed().as_nanos() as u64);
    }
    send_end(&publisher, &notifier)?;
    let each: Vec<Vec<u64>> = children.into_iter().map(|c| collect(c, "iceoryx2 listener").latencies).collect();
    let note = format!(
        "{} notifications, one every {} ms (loans refused {refused}); stamp, send, notify -> listener wakes and receives the stamp",
        publish.len(),
        WAKE_GAP.as_millis()
    );
    Ok(WakeRow::from_samples(EVENT, readers, each, median_ns(&mut publish), &note))
}
