//! iceoryx2 publish-subscribe with loaned `[u8]` samples of the frame size,
//! plus an event service so the subscriber sleeps until a frame arrives
//! (iceoryx2's pub-sub itself does not wake anyone).
//!
//! The service keeps the newest frame like shmimage does: a subscriber queue
//! of one with safe overflow, so a frame the subscriber has not taken yet is
//! replaced by a newer one. The publisher copies the frame into the loaned
//! sample (like put_frame) and the subscriber reads every byte.

use std::hint::black_box;
use std::time::{Duration, Instant};

use iceoryx2::prelude::*;

use crate::common::*;

type Err = Box<dyn std::error::Error>;

pub(crate) fn names() -> (String, String) {
    let id = format!("shmimage-bench/{}/{}", std::process::id(), now_ns());
    (format!("{id}/frames"), format!("{id}/wake"))
}

pub(crate) struct Ends {
    _node: Node<ipc::Service>,
    pub(crate) pubsub: iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>,
    pub(crate) events: iceoryx2::service::port_factory::event::PortFactory<ipc::Service>,
}

/// The frames service with room for `subscribers`, and its wake-up event
/// service. Every subscriber keeps the newest frame only: a queue of one
/// with safe overflow (a newer frame replaces an unread one, the publisher
/// never blocks), history 0, one sample borrowed at a time.
pub(crate) fn open(frames: &str, wake: &str, subscribers: usize) -> Result<Ends, Err> {
    set_log_level(LogLevel::Error);
    let node = NodeBuilder::new().create::<ipc::Service>()?;
    let pubsub = node
        .service_builder(&frames.try_into()?)
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(subscribers)
        .history_size(0)
        .subscriber_max_buffer_size(1)
        .subscriber_max_borrowed_samples(1)
        .enable_safe_overflow(true)
        .open_or_create()?;
    let events = node.service_builder(&wake.try_into()?).event().max_listeners(subscribers.max(16)).open_or_create()?;
    Ok(Ends { _node: node, pubsub, events })
}

/// Start the subscriber peer and wait until both of its ports exist, so no
/// frame is published into the void.
fn start_peer(role: &str, ends: &Ends, frames: &str, wake: &str, bytes: usize) -> Result<std::process::Child, Err> {
    let args = [role.into(), format!("{frames}|{wake}"), bytes.to_string()];
    let mut children = start_peers(ends, 1, &args)?;
    Ok(children.remove(0))
}

/// Start `n` subscriber peers with `args` and wait until all their
/// subscribers and listeners exist.
pub(crate) fn start_peers(ends: &Ends, n: usize, args: &[String]) -> Result<Vec<std::process::Child>, Err> {
    let children = (0..n).map(|_| peer(args).spawn()).collect::<Result<Vec<_>, _>>()?;
    let t0 = Instant::now();
    while ends.pubsub.dynamic_config().number_of_subscribers() < n
        || ends.events.dynamic_config().number_of_listeners() < n
    {
        if t0.elapsed() > Duration::from_secs(20) {
            return Err(format!("{n} iceoryx2 subscribers did not appear within 20 s").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(children)
}

/// A one-byte sample, which no frame is: the subscribers stop.
pub(crate) fn send_end(
    publisher: &iceoryx2::port::publisher::Publisher<ipc::Service, [u8], ()>,
    notifier: &iceoryx2::port::notifier::Notifier<ipc::Service>,
) -> Result<(), Err> {
    for _ in 0..10_000 {
        if let Ok(s) = publisher.loan_slice_uninit(1) {
            s.write_from_slice(&[0]).send()?;
            notifier.notify()?;
            return Ok(());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Err("no sample free for the end marker".into())
}

pub fn throughput(size: Size, secs: f64) -> Result<Tput, Err> {
    let (frames, wake) = names();
    let ends = open(&frames, &wake, 1)?;
    let publisher =
        ends.pubsub.publisher_builder().initial_max_slice_len(size.bytes()).max_loaned_samples(1).create()?;
    let notifier = ends.events.notifier_builder().create()?;
    let child = start_peer("ice-read", &ends, &frames, &wake, size.bytes())?;
    let frame = pattern(size.bytes());
    let mut times = Vec::with_capacity(1 << 16);
    let (mut sent, mut busy) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        let t = Instant::now();
        match publisher.loan_slice_uninit(size.bytes()) {
            Ok(s) => {
                s.write_from_slice(&frame).send()?;
                notifier.notify()?;
                times.push(t.elapsed().as_nanos() as u64);
                sent += 1;
            }
            // Every sample is held (by the subscriber and its queue): the
            // same back-pressure as shmimage's NO_BUFFERAVAILABLE.
            Err(_) => {
                busy += 1;
                std::thread::yield_now();
            }
        }
    }
    send_end(&publisher, &notifier)?;
    let rep = collect(child, "iceoryx2");
    Ok(Tput {
        transport: "iceoryx2 pub/sub + event".into(),
        size,
        frames: rep.get("frames").unwrap_or(0.0) as u64,
        secs: rep.get("secs").unwrap_or(0.0),
        producer_ns: Some(median_ns(&mut times)),
        consumer_ns: rep.get("med_ns"),
        note: format!("sent {sent}, loans refused {busy}; newest-frame queue of one"),
    })
}

pub(crate) fn split(arg: &str) -> (&str, &str) {
    arg.split_once('|').expect("peer argument is frames|wake")
}

pub fn peer_read(arg: &str, bytes: usize) {
    let (frames, wake) = split(arg);
    let ends = open(frames, wake, 1).expect("open iceoryx2 services");
    let subscriber = ends.pubsub.subscriber_builder().create().expect("subscriber");
    let listener = ends.events.listener_builder().create().expect("listener");
    let (mut first, mut last, mut n, mut acc) = (None, None, 0u64, 0u64);
    let mut times = Vec::with_capacity(1 << 16);
    'outer: loop {
        listener.timed_wait(|_| {}, Duration::from_secs(10)).expect("listener wait");
        while let Some(sample) = subscriber.receive().expect("receive") {
            if sample.payload().len() != bytes {
                break 'outer;
            }
            let t = Instant::now();
            acc ^= digest(sample.payload());
            drop(sample);
            let done = Instant::now();
            times.push((done - t).as_nanos() as u64);
            first.get_or_insert(done);
            last = Some(done);
            n += 1;
        }
    }
    let (frames, secs) = rate_from(first, last, n);
    print_result(&[
        ("frames", frames.to_string()),
        ("secs", format!("{secs:.6}")),
        ("med_ns", format!("{}", median_ns(&mut times))),
        ("digest", black_box(acc).to_string()),
    ]);
}

/// Same pacing and stamp as the shmimage latency test: publish an 8-byte
/// stamp, notify; the subscriber wakes in the listener and receives.
pub fn latency(secs: f64) -> Result<Latency, Err> {
    let (frames, wake) = names();
    let ends = open(&frames, &wake, 1)?;
    let publisher = ends.pubsub.publisher_builder().initial_max_slice_len(64).max_loaned_samples(1).create()?;
    let notifier = ends.events.notifier_builder().create()?;
    let child = start_peer("ice-wait", &ends, &frames, &wake, 64)?;
    let mut jitter = Jitter::new();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        std::thread::sleep(jitter.gap(crate::shm::GAP_US.0, crate::shm::GAP_US.1));
        if let Ok(s) = publisher.loan_slice_uninit(8) {
            s.write_from_slice(&now_ns().to_le_bytes()).send()?;
            notifier.notify()?;
        }
    }
    send_end(&publisher, &notifier)?;
    let rep = collect(child, "iceoryx2 latency");
    Ok(Latency::new("iceoryx2 event wait + receive", rep.latencies, "same pacing and stamp as shmimage"))
}

/// Peer of the latency tests (also with several listeners, `ice_native`):
/// sleep in the listener, then take every stamp queued and record now minus
/// the stamp.
pub fn peer_latency(arg: &str, subscribers: usize) {
    let (frames, wake) = split(arg);
    let ends = open(frames, wake, subscribers).expect("open iceoryx2 services");
    let subscriber = ends.pubsub.subscriber_builder().create().expect("subscriber");
    let listener = ends.events.listener_builder().create().expect("listener");
    let mut lat = Vec::with_capacity(1 << 16);
    'outer: loop {
        listener.timed_wait(|_| {}, Duration::from_secs(10)).expect("listener wait");
        while let Some(sample) = subscriber.receive().expect("receive") {
            let now = now_ns();
            let p = sample.payload();
            if p.len() != 8 {
                break 'outer;
            }
            lat.push(now.saturating_sub(u64::from_le_bytes(p.try_into().unwrap())));
        }
    }
    print_latencies(&lat);
    print_result(&[("samples", lat.len().to_string())]);
}
