//! `shmimage bench` runs a built suite, or says what it builds and how long
//! before it starts cargo; never a silent build. A fake checkout and a fake
//! cargo (shell scripts) stand in for the real, minutes-long build.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod cli_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cli_support::*;

fn script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A checkout with the suite's manifest and a cargo that "builds" a suite
/// binary printing its arguments (and leaves a mark that it ran).
fn fake_checkout() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let bench = root.path().join("crates/shmimage-bench");
    std::fs::create_dir_all(&bench).unwrap();
    std::fs::write(bench.join("Cargo.toml"), "[package]\nname = \"shmimage-bench\"\n").unwrap();
    std::fs::write(bench.join("Cargo.lock"), "name = \"a\"\nname = \"b\"\nname = \"c\"\n").unwrap();
    let bin = bench.join("target/release/shmimage-bench");
    script(
        &root.path().join("fake-cargo"),
        &format!(
            "echo \"FAKE CARGO $*\" >&2\ntouch {}\nmkdir -p {}\nprintf '#!/bin/sh\\necho \"SUITE $*\"\\n' > {}\nchmod +x {}",
            root.path().join("cargo-ran").display(),
            bin.parent().unwrap().display(),
            bin.display(),
            bin.display()
        ),
    );
    root
}

fn bench(root: &Path, args: &[&str]) -> std::process::Output {
    let child = shmimage()
        .arg("bench")
        .args(args)
        .current_dir(root)
        .env("CARGO", root.join("fake-cargo"))
        .env_remove("CARGO_TARGET_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    finish(child)
}

#[test]
fn without_a_built_suite_it_says_what_it_builds_before_building() {
    let root = fake_checkout();
    let o = bench(root.path(), &["--quick"]);
    ok(&o);
    let err = text(&o.stderr);
    let plan = err.find("building it now").unwrap_or_else(|| panic!("no plan announced:\n{err}"));
    let cargo = err.find("FAKE CARGO build --release --manifest-path").unwrap_or_else(|| panic!("{err}"));
    assert!(plan < cargo, "the plan comes before the build:\n{err}");
    assert!(err.contains("compiles 3 crates") && err.contains("minutes"), "{err}");
    assert_eq!(text(&o.stdout).trim(), "SUITE --quick");
}

#[test]
fn a_built_suite_runs_without_cargo() {
    let root = fake_checkout();
    let bin = root.path().join("crates/shmimage-bench/target/release/shmimage-bench");
    script(&bin, "echo \"SUITE $*\"");
    let o = bench(root.path(), &["--sizes", "1080p"]);
    ok(&o);
    assert_eq!(text(&o.stdout).trim(), "SUITE --sizes 1080p");
    assert!(!root.path().join("cargo-ran").exists(), "cargo must not run when the suite is built");
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
}

#[test]
fn no_build_refuses_with_the_command_to_run() {
    let root = fake_checkout();
    let o = bench(root.path(), &["--no-build", "--quick"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("not built") && err.contains("cargo build --release --manifest-path"), "{err}");
    assert!(!root.path().join("cargo-ran").exists());
}
