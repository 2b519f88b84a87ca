//! `shmimage receive`: a stream from `shmimage send`, written locally.

use std::path::PathBuf;

use clap::Args;
use gstshmimage::net::{self, ReceiveOptions};

/// Receive a stream from `shmimage send` and write it as a local stream.
/// When the sender goes away, say so and wait for the next one.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  shmimage receive /dev/shm/render --listen 5600\n\
                        then read /dev/shm/render like a local stream (view, record, shmimagesrc).\n\
                        Equivalent gst-launch-1.0 pipelines: docs/gstreamer.md.")]
pub struct ReceiveArgs {
    /// The stream file to write (created with the sender's frame size if missing).
    pub stream: PathBuf,
    /// TCP port to listen on.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub listen: u16,
    /// Local address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: String,
    /// Write an EnSight 1.0 (RGB) stream instead of a native one.
    #[arg(long)]
    pub ensight: bool,
    /// Exit when the first sender disconnects instead of waiting for another.
    #[arg(long)]
    pub once: bool,
    /// Print the pipeline (gst-launch-1.0 syntax) and exit.
    #[arg(long)]
    pub print_pipeline: bool,
}

pub fn run(a: ReceiveArgs) -> Result<(), Box<dyn std::error::Error>> {
    let o = ReceiveOptions { stream: a.stream, bind: a.bind, port: a.listen, ensight: a.ensight };
    let desc = net::receive_pipeline(&o);
    if a.print_pipeline {
        println!("gst-launch-1.0 {desc}");
        return Ok(());
    }
    gstshmimage::register_static()?;
    crate::output::install_stop_handler();
    let existed = o.stream.exists();
    let result = serve(&o, &desc, a.once);
    if !existed {
        let _ = std::fs::remove_file(&o.stream);
    }
    result
}

fn serve(o: &ReceiveOptions, desc: &str, once: bool) -> Result<(), Box<dyn std::error::Error>> {
    loop {
        eprintln!("shmimage: listening on {}:{} for a sender", o.bind, o.port);
        let mut frames = 0;
        let mut on_element = |s: &gst::StructureRef| {
            if s.name() == "shmimagesink-stats" {
                frames = s.get::<u64>("frames").unwrap_or(frames);
                eprintln!("shmimage: received {frames} frames into {}", o.stream.display());
            }
        };
        match net::run(desc, &crate::output::stopped, &mut on_element) {
            Ok(net::Ended::Stopped) => return Ok(()),
            Ok(net::Ended::Eos) => eprintln!("shmimage: the sender disconnected"),
            Err(e) if once => return Err(e.into()),
            Err(e) => eprintln!("shmimage: the sender was lost: {e}"),
        }
        if once {
            return Ok(());
        }
        crate::output::sleep_unless_stopped(net::RELISTEN);
        if crate::output::stopped() {
            return Ok(());
        }
    }
}
