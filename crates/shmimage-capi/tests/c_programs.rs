//! The C library as C programs use it: the programs in tests/c/ and the
//! README's example are compiled with the system C compiler at test time,
//! linked against the cdylib (or the staticlib) that cargo built with this
//! test, and run as real processes, the small ones under valgrind memcheck.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use shmimage::{Code, Server, ServerOptions, StreamFile};

const SO: &str = "libshared_memory_image_client.so";
const A: &str = "libshared_memory_image_client.a";
const SONAME: &str = "libshared_memory_image_client.so.1";
/// What rustc prints as native-static-libs for the staticlib on Linux (glibc),
/// the same list install.sh writes into the .pc file.
const NATIVE_STATIC_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];
/// EnSight's own Python client uses a 25 MiB file.
const FILE_25_MIB: u64 = 26_214_400;
const TIMEOUT: Duration = Duration::from_secs(120);

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding the .so and .a that cargo built with this test.
///
/// Cargo builds every crate type of the library before the test binary, into
/// the test binary's own `deps/` directory (and copies them one level up),
/// whatever the target directory is called.
fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let deps = exe.parent().unwrap().to_path_buf();
        let candidates: Vec<PathBuf> =
            std::iter::once(deps.clone()).chain(deps.parent().map(Path::to_path_buf)).collect();
        let find =
            || candidates.iter().find(|d| d.join(SO).is_file() && d.join(A).is_file()).cloned().map(with_soname_link);
        if let Some(d) = find() {
            return d;
        }
        // A test binary run by hand, outside cargo test: build the libraries.
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "shmimage-capi", "--manifest-path"])
            .arg(crate_dir().join("Cargo.toml"))
            .status()
            .unwrap();
        assert!(status.success(), "cargo build -p shmimage-capi failed");
        find().unwrap_or_else(|| panic!("no {SO} and {A} in {candidates:?}"))
    })
}

/// Programs linked against the library ask the loader for its SONAME,
/// `.so.1`; in the build tree, as in an install, that name links to the file.
fn with_soname_link(dir: PathBuf) -> PathBuf {
    let link = dir.join(SONAME);
    if std::fs::symlink_metadata(&link).is_err() {
        // Another test process may create it at the same moment: fine.
        let _ = std::os::unix::fs::symlink(SO, &link);
    }
    dir
}

/// Scratch space for compiled programs, inside the target directory.
fn bin_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shmimage-capi-c");
    std::fs::create_dir_all(&d).unwrap();
    d
}

enum Link {
    Shared,
    Static,
}

/// Compiles `sources` (relative to the crate) into a program once per test
/// process; later calls return the same program.
fn compile(name: &str, compiler: &str, flags: &[&str], sources: &[&str], link: Link) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = built.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    let out = bin_dir().join(name);
    // Written under a private name and renamed, so that two test processes
    // sharing a target directory never run a half-written program.
    let tmp = bin_dir().join(format!("{name}.{}.tmp", std::process::id()));
    let mut cmd = Command::new(compiler);
    cmd.args(flags).arg("-g").arg("-I").arg(crate_dir().join("include")).arg("-I").arg(crate_dir().join("tests/c"));
    for s in sources {
        cmd.arg(crate_dir().join(s));
    }
    cmd.arg("-o").arg(&tmp);
    match link {
        Link::Shared => {
            cmd.arg("-L").arg(lib_dir()).arg("-lshared_memory_image_client");
            cmd.arg(format!("-Wl,-rpath,{}", lib_dir().display()));
        }
        Link::Static => {
            cmd.arg(lib_dir().join(A)).args(NATIVE_STATIC_LIBS);
        }
    }
    let o = cmd.output().unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    std::fs::rename(&tmp, &out).unwrap();
    built.push((name.to_owned(), out.clone()));
    out
}

fn c_program(name: &str) -> PathBuf {
    let flags = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2"];
    compile(name, &cc(), &flags, &[&format!("tests/c/{name}.c")], Link::Shared)
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// Writes past the test harness's capture, so a skipped check is visible in
/// `cargo test` output even when the test passes.
fn notice(msg: &str) {
    let _ = writeln!(std::io::stderr(), "NOTICE: {msg}");
}

/// The valgrind command line, or None (with a notice) where valgrind is not
/// installed. In CI (CI set) a missing valgrind is a failure, not a skip.
fn valgrind(what: &str) -> Option<Vec<OsString>> {
    let found = Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "valgrind is required in CI (apt-get install valgrind)");
        notice(&format!("valgrind is not installed: {what} runs without memcheck"));
        return None;
    }
    Some(
        [
            "valgrind",
            "-q",
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
        ]
        .iter()
        .map(OsString::from)
        .collect(),
    )
}

/// A program running with its output going to files in `logs`.
struct Running {
    name: String,
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

fn as_refs(v: &[OsString]) -> Vec<&OsStr> {
    v.iter().map(OsString::as_os_str).collect()
}

fn spawn(logs: &Path, name: &str, wrapper: Option<&[OsString]>, program: &Path, args: &[&OsStr]) -> Running {
    let out = logs.join(format!("{name}.out"));
    let err = logs.join(format!("{name}.err"));
    let (first, rest): (&OsStr, Vec<&OsStr>) = match wrapper {
        Some(w) => (&w[0], w[1..].iter().map(OsString::as_os_str).chain([program.as_os_str()]).collect()),
        None => (program.as_os_str(), Vec::new()),
    };
    let child = Command::new(first)
        .args(rest)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    Running { name: name.to_owned(), child, out, err }
}

impl Running {
    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn wait_for_output(&mut self, needle: &str) {
        let start = Instant::now();
        while !self.stdout().contains(needle) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} exited ({status}) before printing {needle:?}:\n{}", self.name, self.stderr());
            }
            assert!(start.elapsed() < TIMEOUT, "{} did not print {needle:?}", self.name);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits for a successful exit and returns what the program printed.
    fn finish(mut self) -> String {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} timed out; stdout:\n{}\nstderr:\n{}", self.name, self.stdout(), self.stderr());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(
            status.success(),
            "{} failed ({status}); stdout:\n{}\nstderr:\n{}",
            self.name,
            self.stdout(),
            self.stderr()
        );
        self.stdout()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed assertion elsewhere must not leave a process behind.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn logs() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("shmimage-capi-").tempdir().unwrap()
}

/// The C programs' pixel pattern (tests/c/common.h).
fn pattern(frame: u32, row: u32, col: u32, ch: u32) -> u8 {
    frame
        .wrapping_mul(31)
        .wrapping_add(row.wrapping_mul(7))
        .wrapping_add(col.wrapping_mul(3))
        .wrapping_add(ch.wrapping_mul(101))
        .wrapping_add((row >> 8).wrapping_mul(13)) as u8
}

struct Exchange<'a> {
    file_len: u64,
    width: u32,
    height: u32,
    frames: u32,
    /// Letters for the programs: f = FLIPVERTICAL, t = client NOTHREADS.
    flags: &'a str,
    memcheck: bool,
}

/// A C server and a C client in two processes: the client checks every pixel
/// and that frame numbers only grow, and must end with the last frame.
fn exchange(x: Exchange<'_>) {
    let server = c_program("server");
    let client = c_program("client");
    let file = StreamFile::with_len(x.file_len).unwrap();
    let logs = logs();
    let vg = if x.memcheck { valgrind("the two-process exchange") } else { None };
    let (w, h, n) = (x.width.to_string(), x.height.to_string(), x.frames.to_string());
    let args = |f: &str| -> Vec<OsString> { vec![file.path().into(), (&w).into(), (&h).into(), (&n).into(), f.into()] };
    let sargs = args(if x.flags.contains('f') { "f" } else { "-" });
    let cargs = args(if x.flags.is_empty() { "-" } else { x.flags });
    let mut srv = spawn(logs.path(), "server", vg.as_deref(), &server, &as_refs(&sargs));
    // The client connects only after the server has reset the file.
    srv.wait_for_output("ready");
    let cli = spawn(logs.path(), "client", vg.as_deref(), &client, &as_refs(&cargs));
    let got = cli.finish();
    let sent = srv.finish();
    let received: u32 = field(&got, "received");
    assert!(received >= 1, "client output: {got}");
    assert_eq!(field::<u32>(&got, "last"), x.frames, "client output: {got}");
    assert_eq!(field::<u32>(&sent, "sent"), x.frames, "server output: {sent}");
    let path = file.path().to_owned();
    drop(file);
    assert!(!path.exists());
}

/// The number after `key ` in `text`.
fn field<T: std::str::FromStr>(text: &str, key: &str) -> T {
    let words: Vec<&str> = text.split_whitespace().collect();
    let i = words.iter().position(|w| *w == key).unwrap_or_else(|| panic!("no {key:?} in {text:?}"));
    words.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no number after {key:?} in {text:?}"))
}

#[test]
fn two_processes_exchange_frames() {
    exchange(Exchange { file_len: 1 << 20, width: 320, height: 240, frames: 40, flags: "", memcheck: false });
}

#[test]
fn banded_4k_frames_through_a_25_mib_file() {
    // One 4K RGB frame (24,883,200 bytes) is larger than a buffer of the
    // 25 MiB file (13,107,176 bytes), so every frame travels in two bands.
    const { assert!((FILE_25_MIB - 48) / 2 < 3840 * 2160 * 3) };
    exchange(Exchange { file_len: FILE_25_MIB, width: 3840, height: 2160, frames: 6, flags: "", memcheck: false });
}

#[test]
fn flipvertical_banded_4k_with_a_client_without_threads() {
    exchange(Exchange { file_len: FILE_25_MIB, width: 3840, height: 2160, frames: 4, flags: "ft", memcheck: false });
}

#[test]
fn flipvertical_in_place() {
    exchange(Exchange { file_len: 1 << 20, width: 64, height: 48, frames: 10, flags: "f", memcheck: false });
}

#[test]
fn memcheck_two_processes_with_banded_frames() {
    // 4096 bytes hold 10 rows of 64 pixels a band: 5 bands a frame.
    exchange(Exchange { file_len: 4096, width: 64, height: 48, frames: 6, flags: "f", memcheck: true });
}

#[test]
fn every_return_code_on_purpose_under_memcheck() {
    let codes = c_program("codes");
    let dir = logs();
    let vg = valgrind("the return-code program");
    let run = spawn(dir.path(), "codes", vg.as_deref(), &codes, &[dir.path().as_os_str()]);
    let out = run.finish();
    assert!(out.contains("failures 0"), "{out}");
    // Resource exhaustion is left to resource_exhaustion_codes, fork to
    // misuse.c; the rest cannot happen through the C API in one process.
    let hard = [
        Code::UnableToMapFile,
        Code::MemoryAllocError,
        Code::ThreadCreateError,
        Code::Closed,
        Code::Forked,
        Code::NoSpace,
        Code::ServerGone,
        Code::FileReplaced,
        Code::Cancelled,
        Code::StreamReset,
    ];
    for code in Code::ALL {
        let line = format!("reached {}", code.c_name());
        assert_eq!(out.lines().any(|l| l == line), !hard.contains(&code), "{line}\n{out}");
    }
    // errorstring hands C the engine's texts, for codes and non-codes alike.
    let mut texts = 0;
    for line in out.lines().filter_map(|l| l.strip_prefix("text ")) {
        let (value, text) = line.split_once(' ').unwrap();
        assert_eq!(text, shmimage::errorstring(value.parse().unwrap()), "{line}");
        texts += 1;
    }
    assert_eq!(texts, Code::ALL.len() + 5);
}

#[test]
fn resource_exhaustion_codes() {
    let limits = c_program("limits");
    let dir = logs();
    let out = spawn(dir.path(), "limits", None, &limits, &[dir.path().as_os_str()]).finish();
    assert!(out.contains("failures 0"), "{out}");
    for code in [Code::UnableToMapFile, Code::ThreadCreateError, Code::MemoryAllocError] {
        let line = format!("reached {}", code.c_name());
        assert!(out.lines().any(|l| l == line), "{line}\n{out}");
    }
}

/// Serves frames from this (Rust) process to a C program until it exits.
fn serve_until_exit(program: &Path, wrapper: Option<&[OsString]>) -> String {
    let file = StreamFile::for_frame(64, 48).unwrap();
    let server = Server::create(file.path(), ServerOptions::default()).unwrap();
    let logs = logs();
    let mut client = spawn(logs.path(), "example", wrapper, program, &[file.path().as_os_str()]);
    let start = Instant::now();
    let mut n = 1u32;
    while !client.exited() && start.elapsed() < TIMEOUT {
        let px: Vec<u8> =
            (0..48).flat_map(|r| (0..64).flat_map(move |c| (0..3).map(move |k| pattern(n, r, c, k)))).collect();
        // UNCONNECTED and NO_BUFFERAVAILABLE just mean: try the next frame.
        if server.put_frame(n, 64, 48, &px).is_ok() {
            n += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    client.finish()
}

fn check_example_output(out: &str) {
    // "frame N: 64x48, first pixel R G B"
    let n: u32 = out.strip_prefix("frame ").and_then(|s| s.split(':').next()).and_then(|s| s.parse().ok()).unwrap();
    let rgb = format!("{} {} {}", pattern(n, 0, 0, 0), pattern(n, 0, 0, 1), pattern(n, 0, 0, 2));
    assert_eq!(out.trim_end(), format!("frame {n}: 64x48, first pixel {rgb}"));
}

#[test]
fn the_readme_example_reads_a_frame_from_a_rust_server() {
    // Plain `cc` with its default dialect, as a reader would build it.
    let example =
        compile("example-client", &cc(), &["-Wall", "-Wextra", "-Werror"], &["examples/client.c"], Link::Shared);
    let vg = valgrind("the example client");
    check_example_output(&serve_until_exit(&example, vg.as_deref()));
}

#[test]
fn the_static_library_links_and_works() {
    let flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"];
    let codes = compile("codes-static", &cc(), &flags, &["tests/c/codes.c"], Link::Static);
    let dir = logs();
    let out = spawn(dir.path(), "codes-static", None, &codes, &[dir.path().as_os_str()]).finish();
    assert!(out.contains("failures 0"), "{out}");
}

#[test]
fn a_cxx_translation_unit_includes_the_header_and_links() {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    let flags = ["-std=c++11", "-pedantic", "-Wall", "-Wextra", "-Werror"];
    let prog = compile("cxx", &cxx, &flags, &["tests/c/cxx.cpp"], Link::Shared);
    let dir = logs();
    let out = spawn(dir.path(), "cxx", None, &prog, &[]).finish();
    assert_eq!(out.trim_end(), Code::Locked.description());
}

#[test]
fn the_shared_library_carries_its_abi_soname() {
    let Ok(o) = Command::new("readelf").arg("-d").arg(lib_dir().join(SO)).output() else {
        assert!(std::env::var_os("CI").is_none(), "readelf is required in CI (apt-get install binutils)");
        notice("readelf is not installed: the SONAME was not checked");
        return;
    };
    let dynamic = String::from_utf8_lossy(&o.stdout);
    assert!(dynamic.lines().any(|l| l.contains("(SONAME)") && l.contains(&format!("[{SONAME}]"))), "{dynamic}");
}

#[test]
fn the_shared_library_exports_exactly_the_six_functions() {
    let Ok(o) = Command::new("nm").args(["-D", "--defined-only"]).arg(lib_dir().join(SO)).output() else {
        assert!(std::env::var_os("CI").is_none(), "nm is required in CI (apt-get install binutils)");
        notice("nm is not installed: the exported symbols were not checked");
        return;
    };
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut exported: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|name| name.starts_with("SharedMemoryImageStream_"))
        .map(str::to_owned)
        .collect();
    exported.sort();
    let want = ["create", "destroy", "errorstring", "lock", "putframe", "unlock"]
        .map(|f| format!("SharedMemoryImageStream_{f}"));
    assert_eq!(exported, want);
}

#[test]
fn install_script_and_pkg_config() {
    let prefix = logs();
    let status = Command::new(crate_dir().join("install.sh"))
        .arg(prefix.path())
        .env("SHMIMAGE_LIB_DIR", lib_dir())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    for f in [
        "lib/libshared_memory_image_client.so",
        "lib/libshared_memory_image_client.a",
        "lib/pkgconfig/shared_memory_image_client.pc",
        "include/shared_memory_image_client.h",
    ] {
        assert!(prefix.path().join(f).is_file(), "{f} not installed");
    }
    let pc = std::fs::read_to_string(prefix.path().join("lib/pkgconfig/shared_memory_image_client.pc")).unwrap();
    assert!(pc.contains(&format!("prefix={}\n", prefix.path().display())), "{pc}");
    assert!(!pc.contains('@'), "unfilled template value in:\n{pc}");

    if Command::new("pkg-config").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "pkg-config is required in CI (apt-get install pkg-config)");
        notice("pkg-config is not installed: the .pc file was not tried");
        return;
    }
    let pkg = |args: &[&str]| {
        let o = Command::new("pkg-config")
            .args(args)
            .arg("shared_memory_image_client")
            .env("PKG_CONFIG_PATH", prefix.path().join("lib/pkgconfig"))
            .output()
            .unwrap();
        assert!(o.status.success(), "pkg-config {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(pkg(&["--modversion"]).trim(), env!("CARGO_PKG_VERSION"));
    // The README's command line, plus an rpath for the non-standard prefix.
    let out = bin_dir().join(format!("example-pkg-config.{}", std::process::id()));
    let flags = pkg(&["--cflags", "--libs"]);
    let o = Command::new(cc())
        .arg(crate_dir().join("examples/client.c"))
        .arg("-o")
        .arg(&out)
        .args(flags.split_whitespace())
        .arg(format!("-Wl,-rpath,{}", prefix.path().join("lib").display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_example_output(&serve_until_exit(&out, None));
    let _ = std::fs::remove_file(&out);
}

/// The misuse suite (tests/c/misuse.c): what careless C code does.
fn misuse_program() -> PathBuf {
    let flags = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2", "-pthread"];
    compile("misuse", &cc(), &flags, &["tests/c/misuse.c"], Link::Shared)
}

/// Runs one mode; the logs directory lives as long as the returned guard.
fn misuse(mode: &str, file: &Path) -> (Running, tempfile::TempDir) {
    let dir = logs();
    let run =
        spawn(dir.path(), &format!("misuse-{mode}"), None, &misuse_program(), &[OsStr::new(mode), file.as_os_str()]);
    (run, dir)
}

/// Two reader threads and a producer on one stream: a locked frame never
/// changes under its thread, no thread unlocks another's frame, and a
/// destroy racing the other thread's calls answers STALE_HANDLE, not a crash.
#[test]
fn misuse_two_threads_on_one_stream() {
    let file = StreamFile::for_frame(64, 32).unwrap();
    let (run, _logs) = misuse("threads", file.path());
    let out = run.finish();
    assert!(out.contains("ok threads"), "{out}");
}

/// fork() with a client (background thread running) and a server: the child
/// gets FORKED from every call, its destroy returns NOERROR silently (before:
/// a Rust panic message and -1), and the parent's stream goes on.
#[test]
fn misuse_fork_leaves_the_parent_stream_alone() {
    let file = StreamFile::for_frame(64, 32).unwrap();
    let (run, _logs) = misuse("fork", file.path());
    let err_path = run.err.clone();
    let out = run.finish();
    assert!(out.contains("ok fork"), "{out}");
    let err = std::fs::read_to_string(err_path).unwrap();
    assert!(err.is_empty(), "the child printed: {err}");
}

/// A second client while one is alive: refused with IMAGESTREAM_PEER_BUSY
/// (before: accepted, taking over the first one's locked buffer); once the
/// first is killed, its role is taken over (RECONNECTING).
#[test]
fn misuse_a_second_client_is_refused_until_the_first_dies() {
    let file = StreamFile::for_frame(64, 32).unwrap();
    let _server = Server::create(file.path(), ServerOptions::default()).unwrap();
    let (mut holder, _logs) = misuse("hold", file.path());
    holder.wait_for_output("READY");
    let (second, _l2) = misuse("second", file.path());
    let out = second.finish();
    assert!(out.contains(&format!("code {}", Code::PeerBusy as i32)), "{out}");
    match shmimage::Client::connect(file.path(), shmimage::ClientOptions::default()) {
        Err(shmimage::Error::PeerBusy { pid, .. }) => assert_eq!(pid, Some(holder.child.id())),
        other => panic!("{other:?}"),
    }
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    let (second, _l3) = misuse("second", file.path());
    let out = second.finish();
    assert!(out.contains(&format!("code {}", Code::Reconnecting as i32)), "{out}");
}

/// Hostile header writes from another process while both ends run in the C
/// program: every answer is a known code, every locked frame is readable in
/// full, nothing crashes.
#[test]
fn misuse_hostile_header_writes_while_both_ends_run() {
    use std::os::unix::fs::FileExt;
    let file = StreamFile::for_frame(64, 32).unwrap();
    let len = std::fs::metadata(file.path()).unwrap().len();
    let layout = shmimage::layout::Layout::for_file_len(len).unwrap();
    let (mut run, _logs) = misuse("hostile", file.path());
    run.wait_for_output("READY");
    let attacker = std::fs::OpenOptions::new().write(true).open(file.path()).unwrap();
    let mut x: u32 = 0x1234_5678;
    while !run.exited() {
        // xorshift: a different field and value each time.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let at = layout.header_offset((x & 1) as usize) + u64::from((x >> 1) % 6) * 4;
        let v = match (x >> 4) % 4 {
            0 => (x >> 8) % 6,
            1 => x >> 8,
            2 => 64,
            _ => u32::MAX,
        };
        let _ = attacker.write_at(&v.to_le_bytes(), at);
        std::thread::sleep(Duration::from_micros(50));
    }
    let out = run.finish();
    assert!(out.contains("ok hostile"), "{out}");
}
