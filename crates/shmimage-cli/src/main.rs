//! `shmimage`: the command line of the shared-memory image stream.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;

/// Move RGB frames between processes through shared memory (EnSight protocol 1.0).
#[derive(Debug, Parser)]
#[command(name = "shmimage", version, about)]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::DemoServer(a) => demo::server(a),
        Command::DemoClient(a) => demo::client(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmimage: {e}");
            ExitCode::FAILURE
        }
    }
}
