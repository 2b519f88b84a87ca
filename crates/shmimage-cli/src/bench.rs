//! `shmimage bench`: a launcher for the end-to-end benchmark suite.
//!
//! The suite (crates/shmimage-bench) lives outside the workspace so that its
//! heavy dependencies (plotters, iceoryx2) never reach the engine's build or
//! `cargo test --workspace`. This command runs a suite binary that is already
//! built; only when there is none does it build one, and then it first says
//! what it builds and roughly how long that takes.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;

use crate::output::Result;

const MANIFEST: &str = "crates/shmimage-bench/Cargo.toml";
const BIN: &str = "shmimage-bench";

/// Other arguments are passed to shmimage-bench unchanged (`shmimage bench -- --help` lists them).
#[derive(Debug, Args)]
#[command(after_help = "\
The suite binary is looked for, in order: next to this executable, in the
checkout's crates/shmimage-bench/target/release (or $CARGO_TARGET_DIR), then
on PATH. When there is none and this is a source checkout, it is built with
cargo first (the command and an estimate of the time are printed before the
build starts); --no-build refuses instead.

Examples:
  shmimage bench --quick
  shmimage bench --no-build --sizes 1080p --seconds 2
  cargo build --release --manifest-path crates/shmimage-bench/Cargo.toml   # build (or rebuild) it yourself")]
pub struct BenchArgs {
    /// Fail instead of building the suite when no built binary is found.
    #[arg(long)]
    no_build: bool,
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

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where cargo puts the suite's release build.
fn built_in(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t).join("release").join(BIN),
        None => root.join("crates/shmimage-bench/target/release").join(BIN),
    }
}

/// A suite binary that is already built.
fn find_built(root: Option<&Path>) -> Option<PathBuf> {
    let beside = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join(BIN)));
    let in_checkout = root.map(built_in);
    let on_path = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(BIN)).find(|p| is_executable(p)));
    [beside, in_checkout, on_path].into_iter().flatten().find(|p| is_executable(p))
}

/// Packages cargo will compile for the suite (from its lock file).
fn crate_count(root: &Path) -> usize {
    std::fs::read_to_string(root.join("crates/shmimage-bench/Cargo.lock"))
        .map_or(0, |s| s.lines().filter(|l| l.starts_with("name = ")).count())
}

pub fn run(a: BenchArgs) -> Result<()> {
    let root = checkout();
    let bin = match find_built(root.as_deref()) {
        Some(b) => b,
        None => {
            let Some(root) = root else {
                return Err(format!(
                    "bench: no built benchmark suite ({BIN}) was found next to this program or on PATH, and this \
                     is not a source checkout to build it from; in a checkout run `cargo build --release \
                     --manifest-path {MANIFEST}`"
                )
                .into());
            };
            let manifest = root.join(MANIFEST);
            if a.no_build {
                return Err(format!(
                    "bench: the benchmark suite is not built (--no-build); build it with `cargo build --release \
                     --manifest-path {}`",
                    manifest.display()
                )
                .into());
            }
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let n = crate_count(&root);
            eprintln!(
                "shmimage bench: the benchmark suite is not built yet; building it now with\n  \
                 {} build --release --manifest-path {}\n\
                 A first build compiles {n} crates (iceoryx2 and plotters among them): several minutes, \
                 typically 3 to 10 on a 2-core machine. Later runs start at once. (--no-build refuses instead.)",
                Path::new(&cargo).display(),
                manifest.display()
            );
            let status = Command::new(&cargo)
                .args(["build", "--release", "--manifest-path"])
                .arg(&manifest)
                .status()
                .map_err(|e| format!("bench: cannot start cargo ({}): {e}", Path::new(&cargo).display()))?;
            if !status.success() {
                return Err(format!("bench: building the benchmark suite failed ({status})").into());
            }
            let bin = built_in(&root);
            if !is_executable(&bin) {
                return Err(format!("bench: cargo finished but {} is missing", bin.display()).into());
            }
            bin
        }
    };
    // exec, not spawn: the suite owns the terminal, its exit code and Ctrl-C.
    let err = Command::new(&bin).args(&a.args).exec();
    Err(format!("bench: cannot start {}: {err}", bin.display()).into())
}
