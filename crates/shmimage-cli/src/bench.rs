//! `shmimage bench`: a launcher for the end-to-end benchmark suite.
//!
//! The suite (crates/shmimage-bench) lives outside the workspace so that its
//! heavy dependencies (plotters, iceoryx2) never reach the engine's build or
//! `cargo test --workspace`; this command only finds and starts it.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const MANIFEST: &str = "crates/shmimage-bench/Cargo.toml";

/// Arguments are passed to shmimage-bench unchanged (`shmimage bench -- --help` lists them).
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// e.g. --quick, --seconds 5, --sizes 1080p,4K, --out target/bench, --skip gst
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// The checkout holding the suite: searched upwards from the current
/// directory, then from this executable (target/release/shmimage sits inside
/// the checkout it was built from).
fn checkout() -> Option<PathBuf> {
    let mut starts = Vec::new();
    if let Ok(d) = std::env::current_dir() {
        starts.push(d);
    }
    if let Ok(e) = std::env::current_exe() {
        starts.push(e);
    }
    starts.iter().find_map(|s| s.ancestors().find(|d| d.join(MANIFEST).is_file()).map(Path::to_path_buf))
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

pub fn run(a: BenchArgs) -> Result<()> {
    // exec, not spawn: the suite owns the terminal, its exit code and Ctrl-C.
    let err = if let Some(root) = checkout() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Command::new(cargo)
            .args(["run", "--release", "--manifest-path"])
            .arg(root.join(MANIFEST))
            .arg("--")
            .args(&a.args)
            .exec()
    } else if let Some(bin) = on_path("shmimage-bench") {
        Command::new(bin).args(&a.args).exec()
    } else {
        return Err(format!(
            "bench: the suite was not found: run this from a shmimage source checkout (it builds {MANIFEST} with cargo), \
             or put a shmimage-bench binary on PATH (cargo install --path crates/shmimage-bench)"
        )
        .into());
    };
    Err(format!("bench: cannot start the suite: {err}").into())
}
