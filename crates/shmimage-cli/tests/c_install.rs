//! The C library as users install it: `install.sh` installs a stripped
//! library with its debug info split off (or dropped), and the example client
//! built against the installed files says why it fails, in the library's words.
//! (Here rather than in shmimage-capi's tests: install.sh and the examples
//! are this suite's, the library itself is built by cargo as usual.)
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cli_support::*;

fn capi_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shmimage-capi")
}

/// The built C library's folder (target/<profile>), building it if needed
/// (a no-op after `cargo test --workspace`, which builds it anyway).
fn built_lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.args(["build", "-p", "shmimage-capi", "--quiet"]);
    if profile_dir.ends_with("release") {
        c.arg("--release");
    }
    let st = c.status().unwrap();
    assert!(st.success(), "building shmimage-capi failed");
    assert!(profile_dir.join("libshared_memory_image_client.so").is_file(), "{profile_dir:?}");
    profile_dir
}

fn sections(file: &Path) -> String {
    let o = Command::new("readelf").arg("-S").arg(file).output().expect("readelf (apt-get install binutils)");
    assert!(o.status.success(), "{}", text(&o.stderr));
    text(&o.stdout)
}

fn install(prefix: &Path, debug_info: &str) -> String {
    let o = Command::new(capi_dir().join("install.sh"))
        .arg(prefix)
        .env("SHMIMAGE_LIB_DIR", built_lib_dir())
        .env("DEBUG_INFO", debug_info)
        .output()
        .unwrap();
    assert!(o.status.success(), "install.sh: {}{}", text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

const SO: &str = "lib/libshared_memory_image_client.so.1.0";

#[test]
fn install_sh_strips_the_library_and_splits_its_debug_info() {
    let prefix = tempfile::tempdir().unwrap();
    let report = install(prefix.path(), "split");
    let so = prefix.path().join(SO);
    let s = sections(&so);
    assert!(!s.contains(".debug_info"), "the installed library has no debug info:\n{s}");
    assert!(s.contains(".gnu_debuglink"), "it names its debug file:\n{s}");
    let debug = prefix.path().join("lib/.debug/libshared_memory_image_client.so.1.0.debug");
    assert!(sections(&debug).contains(".debug_info"), "the debug info is in the .debug file");
    let built = std::fs::metadata(built_lib_dir().join("libshared_memory_image_client.so")).unwrap().len();
    let installed = std::fs::metadata(&so).unwrap().len();
    assert!(installed < built, "stripped {installed} < built {built}");
    // The sizes before and after are stated.
    assert!(report.contains(&format!("{built} -> {installed} bytes")), "{report}");
    // Still the library: the six functions are exported.
    let o = Command::new("nm").args(["-D", "--defined-only"]).arg(&so).output().unwrap();
    let n = text(&o.stdout).lines().filter(|l| l.contains(" SharedMemoryImageStream_")).count();
    assert_eq!(n, 6, "{}", text(&o.stdout));
    // The static library keeps its symbols, not its debug info.
    let a = prefix.path().join("lib/libshared_memory_image_client.a");
    let o = Command::new("nm").arg(&a).output().unwrap();
    assert!(text(&o.stdout).contains("T SharedMemoryImageStream_create"));
}

#[test]
fn install_sh_can_drop_or_keep_the_debug_info() {
    let none = tempfile::tempdir().unwrap();
    install(none.path(), "none");
    assert!(!sections(&none.path().join(SO)).contains(".debug_info"));
    assert!(!none.path().join("lib/.debug").exists());
    let keep = tempfile::tempdir().unwrap();
    install(keep.path(), "keep");
    assert!(sections(&keep.path().join(SO)).contains(".debug_info"));
    let o = Command::new(capi_dir().join("install.sh"))
        .arg(keep.path())
        .env("SHMIMAGE_LIB_DIR", built_lib_dir())
        .env("DEBUG_INFO", "some")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("split, none or keep"), "{}", text(&o.stderr));
}

#[test]
fn the_example_client_says_why_it_fails() {
    let prefix = tempfile::tempdir().unwrap();
    install(prefix.path(), "split");
    let exe = prefix.path().join("client");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let o = Command::new(cc)
        .args(["-Wall", "-Wextra", "-Werror"])
        .arg(capi_dir().join("examples/client.c"))
        .arg(format!("-I{}", prefix.path().join("include").display()))
        .arg(format!("-L{}", prefix.path().join("lib").display()))
        .arg("-lshared_memory_image_client")
        .arg(format!("-Wl,-rpath,{}", prefix.path().join("lib").display()))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let why = shmimage::Code::BadFileSize.description();
    let missing = prefix.path().join("missing.shm");
    let small = prefix.path().join("small.shm");
    std::fs::write(&small, [0u8; 10]).unwrap();
    for f in [&missing, &small] {
        let o = Command::new(&exe).arg(f).output().unwrap();
        assert_eq!(o.status.code(), Some(1));
        let err = text(&o.stderr);
        assert!(err.contains(path_str(f)) && err.contains(why), "{err}");
    }
    let o = Command::new(&exe).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("usage:"), "{}", text(&o.stderr));
}
