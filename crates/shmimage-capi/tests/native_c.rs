//! The native C API as C programs use it: include/shmimage.h compiled with
//! the system C compiler (-Wall -Wextra -Werror, and as C++), a writer and a
//! lossless reader as two real C processes linked against the library cargo
//! built with this test.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SO: &str = "libshared_memory_image_client.so";
const SONAME: &str = "libshared_memory_image_client.so.1";

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory with the cdylib cargo built with this test, with its SONAME link.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    let d = [deps.clone(), deps.parent().unwrap().to_path_buf()]
        .into_iter()
        .find(|d| d.join(SO).is_file())
        .unwrap_or_else(|| panic!("no {SO} near {}", deps.display()));
    if std::fs::symlink_metadata(d.join(SONAME)).is_err() {
        let _ = std::os::unix::fs::symlink(SO, d.join(SONAME));
    }
    d
}

/// Compiles `src` into a program once per test process (tests run in
/// threads: a program being rewritten while another test runs it would be
/// "text file busy"); built under a temporary name, then renamed into place.
fn compile(name: &str, compiler: &str, src: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = built.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shmimage-native-c");
    std::fs::create_dir_all(&out).unwrap();
    let bin = out.join(format!("{name}.{}", std::process::id()));
    let tmp = out.join(format!("{name}.{}.tmp", std::process::id()));
    let lib = lib_dir();
    let st = Command::new(compiler)
        .args(["-Wall", "-Wextra", "-Werror", "-O1", "-I"])
        .arg(crate_dir().join("include"))
        .arg(crate_dir().join(src))
        .arg("-o")
        .arg(&tmp)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lshared_memory_image_client")
        .status()
        .unwrap();
    assert!(st.success(), "{compiler} {src} failed");
    std::fs::rename(&tmp, &bin).unwrap();
    built.push((name.to_owned(), bin.clone()));
    bin
}

/// Runs the C writer and the C reader on one stream, optionally under
/// valgrind memcheck (errors and definite leaks fail the run).
fn exchange(frames: u32, memcheck: bool) {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let writer = compile("native_writer", &cc, "tests/native_c/writer.c");
    let reader = compile("native_reader", &cc, "tests/native_c/reader.c");
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("stream");
    let run = |prog: &Path, args: &[&std::ffi::OsStr]| {
        let mut c = if memcheck {
            let mut c = Command::new("valgrind");
            c.args([
                "-q",
                "--error-exitcode=1",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--show-leak-kinds=definite",
            ]);
            c.arg(prog);
            c
        } else {
            Command::new(prog)
        };
        c.args(args).stdout(Stdio::piped()).spawn().unwrap()
    };
    let n = frames.to_string();
    let r = run(&reader, &[p.as_os_str()]);
    let w = run(&writer, &[p.as_os_str(), n.as_ref()]);
    let w = w.wait_with_output().unwrap();
    let r = r.wait_with_output().unwrap();
    let (wo, ro) = (String::from_utf8_lossy(&w.stdout), String::from_utf8_lossy(&r.stdout));
    assert!(w.status.success() && wo.contains(&format!("WROTE {frames}")), "writer: {wo} {:?}", w.status);
    assert!(r.status.success(), "reader: {ro} {:?}", r.status);
    assert!(ro.contains(&format!("READ frames={frames} missed=0")), "reader: {ro}");
}

#[test]
fn a_c_writer_and_a_lossless_c_reader_in_two_processes() {
    exchange(500, false);
}

#[test]
fn the_c_exchange_under_valgrind_memcheck() {
    if Command::new("valgrind").arg("--version").output().map_or(true, |o| !o.status.success()) {
        assert!(std::env::var_os("CI").is_none(), "valgrind is required in CI (apt-get install valgrind)");
        eprintln!("NOTICE: valgrind is not installed: the native C exchange runs without memcheck");
        return;
    }
    exchange(40, true);
}

/// A C writer killed with SIGKILL leaves its stream; a second C writer finds
/// it (create answers ALREADY_EXISTS), opens it, takes it over and goes on.
/// A reader that joined under the first writer keeps reading: it sees the
/// new writer's frame and the epoch go from 1 to 2.
#[test]
fn a_c_writer_takes_over_the_stream_of_a_killed_one() {
    use std::io::{BufRead, BufReader};
    use std::time::Duration;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let prog = compile("native_takeover", &cc, "tests/native_c/takeover.c");
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("stream");
    /// The first writer never exits by itself: kill it even if an assertion fails first.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut first = Killed(Command::new(&prog).arg(&p).arg("hang").stdout(Stdio::piped()).spawn().unwrap());
    let mut line = String::new();
    BufReader::new(first.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY");
    let reader = shmimage::native::Reader::open(&p, &Default::default()).unwrap();
    let f = reader.read(Some(Duration::from_secs(5))).unwrap();
    assert_eq!((f.metadata(), reader.epoch()), (&b"first"[..], 1));
    drop(f);
    drop(first); // SIGKILL, then reaped
    let second = Command::new(&prog).arg(&p).arg("open").output().unwrap();
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success() && out.contains("TOOK OVER"), "second writer: {out} {:?}", second.status);
    let f = reader.read(Some(Duration::from_secs(5))).unwrap();
    assert_eq!((f.metadata(), reader.epoch()), (&b"second"[..], 2));
}

#[test]
fn the_header_compiles_as_c_and_cpp_and_codes_have_strings() {
    let src = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shmimage_h_check.c");
    std::fs::write(
        &src,
        "#include \"shmimage.h\"\n#include <string.h>\n#include <stdio.h>\n\
         int main(int c, char **v) { (void)c; shmimage_reader r = 0;\n\
         int rc = shmimage_reader_open(v[1], 0, &r);\n\
         if (rc != SHMIMAGE_WRONG_PROTOCOL) { printf(\"open %d\\n\", rc); return 1; }\n\
         if (!strstr(shmimage_errorstring(rc), \"1.0\")) return 2;\n\
         if (shmimage_reader_read(12345, 0, 0) != SHMIMAGE_STALE_HANDLE) return 3;\n\
         if (shmimage_format_name(99) || strcmp(shmimage_format_name(SHMIMAGE_FORMAT_NV12), \"NV12\")) return 4;\n\
         if (!strstr(shmimage_errorstring(SHMIMAGE_PEER_BUSY), \"\")) return 5;\n\
         return 0; }\n",
    )
    .unwrap();
    let cxx = src.with_extension("cpp");
    std::fs::copy(&src, &cxx).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let one = shmimage::StreamFile::with_len(1 << 16).unwrap();
    for (compiler, file, name) in [(cc.as_str(), &src, "h_c"), ("c++", &cxx, "h_cpp")] {
        if compiler == "c++" && Command::new("c++").arg("--version").output().is_err() {
            continue;
        }
        let bin = compile(name, compiler, file.to_str().unwrap());
        let st = Command::new(&bin).arg(one.path()).status().unwrap();
        assert!(st.success(), "{name}: {st}");
    }
}

/// Every code and format the header defines has the engine's value, and the
/// structs have the same layout in C as in Rust.
#[test]
fn the_header_agrees_with_the_engine() {
    use shared_memory_image_client::native::{CFrame, CPlane, CWriterOptions};
    use shmimage::native::{code, PixelFormat};
    use shmimage::Code;
    let h = include_str!("../include/shmimage.h");
    let value = |name: &str| -> i64 {
        let line = h
            .lines()
            .find(|l| {
                let t = l.trim_start();
                (t.starts_with("#define ") && t.split_whitespace().nth(1) == Some(name))
                    || t.starts_with(&format!("{name} ="))
            })
            .unwrap_or_else(|| panic!("{name} missing"));
        let v = if line.trim_start().starts_with("#define") {
            line.split_whitespace().nth(2).unwrap()
        } else {
            line.split('=').nth(1).unwrap()
        };
        let v = v.split("/*").next().unwrap();
        v.trim_matches(|c: char| c == '(' || c == ')' || c == ',' || c.is_whitespace()).parse().unwrap()
    };
    for (name, v) in [
        ("SHMIMAGE_OK", 0),
        ("SHMIMAGE_NO_FRAME_AVAILABLE", Code::NoFrameAvailable as i32),
        ("SHMIMAGE_NO_SLOT_AVAILABLE", Code::NoBufferAvailable as i32),
        ("SHMIMAGE_BAD_ARGS", Code::BadArgs as i32),
        ("SHMIMAGE_NOT_FOUND", Code::BadFileSize as i32),
        ("SHMIMAGE_UNABLE_TO_OPEN_FILE", Code::UnableToOpenFile as i32),
        ("SHMIMAGE_UNABLE_TO_MAP_FILE", Code::UnableToMapFile as i32),
        ("SHMIMAGE_FRAME_TOO_LARGE", Code::FrameTooLarge as i32),
        ("SHMIMAGE_PEER_BUSY", code::WRITER_BUSY),
        ("SHMIMAGE_CLOSED", code::CLOSED),
        ("SHMIMAGE_FORKED", code::FORKED),
        ("SHMIMAGE_WRITER_GONE", code::WRITER_GONE),
        ("SHMIMAGE_FILE_TRUNCATED", code::FILE_TRUNCATED),
        ("SHMIMAGE_STALE_HANDLE", Code::StaleHandle as i32),
        ("SHMIMAGE_ALREADY_EXISTS", code::ALREADY_EXISTS),
        ("SHMIMAGE_WRONG_PROTOCOL", code::WRONG_PROTOCOL),
        ("SHMIMAGE_NOT_A_STREAM", code::NOT_A_STREAM),
        ("SHMIMAGE_UNSUPPORTED_VERSION", code::UNSUPPORTED_VERSION),
        ("SHMIMAGE_CORRUPT", code::CORRUPT),
        ("SHMIMAGE_READERS_FULL", code::READERS_FULL),
        ("SHMIMAGE_METADATA_TOO_LARGE", code::METADATA_TOO_LARGE),
        ("SHMIMAGE_INVALID_DESC", code::INVALID_DESC),
    ] {
        assert_eq!(value(name), i64::from(v), "{name}");
    }
    for f in PixelFormat::ALL {
        assert_eq!(value(&format!("SHMIMAGE_FORMAT_{}", f.name())), i64::from(f.code()), "{f}");
    }
    // Layout: a C program prints sizeof/offsetof; Rust computes the same.
    let src = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shmimage_h_layout.c");
    std::fs::write(
        &src,
        "#include \"shmimage.h\"\n#include <stdio.h>\n#include <stddef.h>\n\
         int main(void) { printf(\"%zu %zu %zu %zu %zu %zu %zu %zu\\n\", sizeof(shmimage_frame), \
         offsetof(shmimage_frame, planes), offsetof(shmimage_frame, sequence), offsetof(shmimage_frame, pixels), \
         offsetof(shmimage_frame, metadata_len), sizeof(shmimage_plane), sizeof(shmimage_writer_options), \
         offsetof(shmimage_writer_options, lossless_wait_ms)); return 0; }\n",
    )
    .unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let bin = compile("h_layout", &cc, src.to_str().unwrap());
    let out = String::from_utf8(Command::new(&bin).output().unwrap().stdout).unwrap();
    use std::mem::{offset_of, size_of};
    let rust = format!(
        "{} {} {} {} {} {} {} {}\n",
        size_of::<CFrame>(),
        offset_of!(CFrame, planes),
        offset_of!(CFrame, sequence),
        offset_of!(CFrame, pixels),
        offset_of!(CFrame, metadata_len),
        size_of::<CPlane>(),
        size_of::<CWriterOptions>(),
        offset_of!(CWriterOptions, lossless_wait_ms)
    );
    assert_eq!(out, rust);
}
