//! `shmimage send`: a stream to another machine over GStreamer's RTP/TCP.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use gstshmimage::net::{self, Codec, SendOptions};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CodecArg {
    /// Uncompressed RTP video: pixel-exact, for a LAN.
    Raw,
    /// H.264 over RTP: lossy, for slow links.
    H264,
}

/// Send a stream (native or 1.0) to `shmimage receive` on another machine.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  shmimage send /dev/shm/render --to viewer-host:5600\n  \
                        shmimage send /dev/shm/render --to 10.0.0.7:5600 --codec h264 --bitrate 4000\n\
                        Equivalent gst-launch-1.0 pipelines: docs/gstreamer.md.")]
pub struct SendArgs {
    /// The stream file to read.
    pub stream: PathBuf,
    /// The receiver, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub to: String,
    /// Encoding on the wire.
    #[arg(long, value_enum, default_value = "raw")]
    pub codec: CodecArg,
    /// H.264 bit rate in kbit/s.
    #[arg(long, default_value_t = 8000, value_parser = clap::value_parser!(u32).range(1..=2_000_000))]
    pub bitrate: u32,
    /// Wait for the stream's writer to appear or come back instead of failing.
    #[arg(long)]
    pub wait_for_writer: bool,
    /// Print the pipeline (gst-launch-1.0 syntax) and exit.
    #[arg(long)]
    pub print_pipeline: bool,
}

fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("--to {s}: expected HOST:PORT"))?;
    let port = port.parse::<u16>().map_err(|_| format!("--to {s}: {port} is not a port number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(format!("--to {s}: expected HOST:PORT with a port > 0"));
    }
    Ok((host.to_string(), port))
}

pub fn run(a: SendArgs) -> Result<(), Box<dyn std::error::Error>> {
    let (host, port) = split_host_port(&a.to)?;
    let codec = match a.codec {
        CodecArg::Raw => Codec::Raw,
        CodecArg::H264 => Codec::H264,
    };
    let o = SendOptions {
        stream: a.stream,
        host,
        port,
        codec,
        bitrate_kbps: a.bitrate,
        wait_for_writer: a.wait_for_writer,
    };
    let desc = net::send_pipeline(&o);
    if a.print_pipeline {
        // Ready for a shell: caps with a format list are quoted.
        let words: Vec<String> =
            desc.split(' ').map(|w| if w.contains('{') { format!("'{w}'") } else { w.to_string() }).collect();
        println!("gst-launch-1.0 {}", words.join(" "));
        return Ok(());
    }
    if !o.wait_for_writer && !o.stream.exists() {
        return Err(format!("{}: no such stream (--wait-for-writer waits for one)", o.stream.display()).into());
    }
    gstshmimage::register_static()?;
    crate::output::install_stop_handler();
    eprintln!("shmimage: sending {} to {}:{}", o.stream.display(), o.host, o.port);
    let mut on_element = |s: &gst::StructureRef| {
        if s.name() == "shmimagesrc-stats" {
            let frames = s.get::<u64>("frames").unwrap_or(0);
            eprintln!("shmimage: sent {frames} frames");
        }
    };
    match net::run(&desc, &crate::output::stopped, &mut on_element)? {
        net::Ended::Eos | net::Ended::Stopped => Ok(()),
    }
}
