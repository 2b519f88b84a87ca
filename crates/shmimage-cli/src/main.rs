//! `shmimage`: the command line of the shared-memory image stream.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod bridge;
mod create;
mod demo;
mod demo_native;
mod endpoints;
mod inspect;
mod list;
mod output;
mod pixels;
#[cfg(feature = "gst")]
mod receive;
mod record;
#[cfg(feature = "gst")]
mod send;
mod serve;
#[cfg(feature = "web")]
mod web;
mod x11_cmds;
mod y4m;

/// Move images between processes through shared memory: native multi-reader streams and EnSight's protocol 1.0.
#[derive(Debug, Parser)]
#[command(
    name = "shmimage",
    version,
    about,
    after_help = "Exit status: 0 success; 1 failure at run time (the reason is on stderr); 2 bad usage.\n\
                  Start here: shmimage demo; shmimage serve FILE and shmimage record FILE --out DIR.\n\
                  Each subcommand has examples in its --help; docs/cli.md has them all."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stream an animated test pattern from a server process to a verifying
    /// client process and print live stats (needs no setup, no display).
    Demo(demo::DemoArgs),
    /// (internal) the server process of `demo`.
    #[command(hide = true)]
    DemoServer(demo::RoleArgs),
    /// (internal) the client process of `demo`.
    #[command(hide = true)]
    DemoClient(demo::RoleArgs),
    /// (internal) the native writer process of `demo`.
    #[command(hide = true)]
    DemoWriter(demo_native::NativeRoleArgs),
    /// (internal) a native reader process of `demo`.
    #[command(hide = true)]
    DemoReader(demo_native::NativeRoleArgs),
    /// Create a stream file of the right size (mode 0600, never overwrites).
    Create(create::CreateArgs),
    /// Be a stream's server: frames from a test pattern, PNG files, or raw
    /// RGB on stdin.
    Serve(serve::ServeArgs),
    /// Be a stream's client: write its frames to a folder as PNG or raw RGB.
    Record(record::RecordArgs),
    /// Decode a stream file's headers and tell whether a server and a client
    /// are alive (read-only; safe on live streams and on garbage).
    Inspect(inspect::InspectArgs),
    /// List the stream files on this machine: protocol, size, state, frame
    /// rate, the processes using them, and stale ones left by killed programs.
    List(list::ListArgs),
    /// Remove stale stream files (never one in use or with a live peer).
    Clean(list::CleanArgs),
    /// Show a stream live in an X11 window (MIT-SHM, core fallback).
    View(x11_cmds::ViewArgs),
    /// Serve a stream of X11 screen or window grabs (ShmGetImage).
    Capture(x11_cmds::CaptureArgs),
    /// Print what the X server offers: MIT-SHM, version, shared pixmaps, visual.
    X11Info(x11_cmds::X11InfoArgs),
    /// Read an EnSight 1.0 stream as its one client and republish it as a
    /// native stream for any number of readers.
    Bridge(bridge::BridgeArgs),
    /// Run the end-to-end benchmark suite (shmimage vs memcpy, sockets,
    /// pipe, TCP, GStreamer, iceoryx2): a markdown table and a PNG plot.
    Bench(bench::BenchArgs),
    /// Send a stream to another machine (RTP over TCP, raw or H.264).
    #[cfg(feature = "gst")]
    Send(send::SendArgs),
    /// Receive a stream from `shmimage send` into a local stream.
    #[cfg(feature = "gst")]
    Receive(receive::ReceiveArgs),
    /// Watch streams live in a browser (HTTP + WebSocket, JPEG frames).
    #[cfg(feature = "web")]
    Web(web::WebArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Create(a) => create::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Record(a) => record::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::List(a) => list::list(a),
        Command::Clean(a) => list::clean(a),
        Command::Demo(a) => demo::run(a),
        Command::DemoServer(a) => demo::server(a),
        Command::DemoClient(a) => demo::client(a),
        Command::DemoWriter(a) => demo_native::writer(a),
        Command::DemoReader(a) => demo_native::reader(a),
        Command::View(a) => x11_cmds::view(a),
        Command::Capture(a) => x11_cmds::capture(a),
        Command::X11Info(a) => x11_cmds::x11_info(a),
        Command::Bridge(a) => bridge::run(a),
        Command::Bench(a) => bench::run(a),
        #[cfg(feature = "gst")]
        Command::Send(a) => send::run(a),
        #[cfg(feature = "gst")]
        Command::Receive(a) => receive::run(a),
        #[cfg(feature = "web")]
        Command::Web(a) => web::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmimage: {e}");
            ExitCode::FAILURE
        }
    }
}
