//! The hand-written header against the Rust side: every #define has the
//! engine's value, nothing is missing or extra, the declarations are the
//! spec's, and the frame struct has the same layout in both languages.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

use std::collections::BTreeMap;

use shared_memory_image_client::FrameStruct;
use shmimage::{options, Code};

const HEADER: &str = include_str!("../include/shared_memory_image_client.h");

/// `#define NAME VALUE` lines, comments removed, values as written.
fn defines() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in HEADER.lines() {
        let Some(rest) = line.trim().strip_prefix("#define ") else { continue };
        let rest = rest.split("/*").next().unwrap().trim();
        let (name, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        assert!(out.insert(name.to_owned(), value.trim().to_owned()).is_none(), "{name} defined twice");
    }
    out
}

/// An integer literal as C reads it: decimal or 0x hex, in optional
/// parentheses, with an optional minus sign.
fn int_value(text: &str) -> i64 {
    let t = text.trim();
    let t = t.strip_prefix('(').and_then(|t| t.strip_suffix(')')).unwrap_or(t).trim();
    let (neg, t) = t.strip_prefix('-').map_or((false, t), |t| (true, t));
    let v = match t.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16),
        None => t.parse(),
    }
    .unwrap_or_else(|_| panic!("not an integer literal: {text:?}"));
    if neg {
        -v
    } else {
        v
    }
}

#[test]
fn every_define_has_the_engines_value_and_none_is_extra() {
    let mut defs = defines();
    assert!(defs.remove("SHARED_MEMORY_IMAGE_CLIENT_H").is_some(), "include guard");
    assert_eq!(defs.remove("IMAGESTREAM_API_VERSION").as_deref(), Some(&*format!("\"{}\"", shmimage::API_VERSION)));
    for code in Code::ALL {
        let v = defs.remove(code.c_name()).unwrap_or_else(|| panic!("{} missing", code.c_name()));
        assert_eq!(int_value(&v), code as i64, "{}", code.c_name());
    }
    let opts = [
        ("IMAGESTREAM_OPTIONS_NONE", options::NONE),
        ("IMAGESTREAM_OPTIONS_INITBUFFERHEADERS", options::INITBUFFERHEADERS),
        ("IMAGESTREAM_OPTIONS_NOTHREADS", options::NOTHREADS),
        ("IMAGESTREAM_OPTIONS_SERVER", options::SERVER),
        ("IMAGESTREAM_OPTIONS_FLIPVERTICAL", options::FLIPVERTICAL),
    ];
    for (name, value) in opts {
        let v = defs.remove(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(int_value(&v), i64::from(value), "{name}");
    }
    assert!(defs.is_empty(), "defines the engine does not know: {defs:?}");
}

/// The header with comments removed and whitespace collapsed.
fn normalized() -> String {
    let mut text = String::new();
    let mut rest = HEADER;
    while let Some(start) = rest.find("/*") {
        text.push_str(&rest[..start]);
        let end = rest[start..].find("*/").unwrap();
        rest = &rest[start + end + 2..];
    }
    text.push_str(rest);
    let text: String = text.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join(" ");
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace("( ", "(").replace(" )", ")").replace(" ;", ";")
}

#[test]
fn declarations_are_the_specs() {
    let h = normalized();
    for decl in [
        "typedef int SharedMemoryImageError;",
        "typedef struct _SharedMemoryImageStream *SharedMemoryImageStream;",
        "typedef struct _SharedMemoryFrame { uint32_t iFrame; uint32_t iWidth; uint32_t iHeight; uint8_t *buffer; } *SharedMemoryFrame;",
        "SharedMemoryImageError SharedMemoryImageStream_create(const char *filename, uint32_t options, SharedMemoryImageStream *stream);",
        "SharedMemoryImageError SharedMemoryImageStream_lock(SharedMemoryImageStream stream, SharedMemoryFrame *frame);",
        "SharedMemoryImageError SharedMemoryImageStream_unlock(SharedMemoryImageStream stream);",
        "SharedMemoryImageError SharedMemoryImageStream_destroy(SharedMemoryImageStream stream);",
        "const char *SharedMemoryImageStream_errorstring(SharedMemoryImageError err);",
        "SharedMemoryImageError SharedMemoryImageStream_putframe(SharedMemoryImageStream stream, SharedMemoryFrame frame);",
        "#include <stdint.h>",
        "#ifdef __cplusplus extern \"C\" {",
        "#ifdef __cplusplus } #endif",
    ] {
        assert!(h.contains(decl), "header lacks: {decl}\n{h}");
    }
    // No function beyond those six.
    let mut names: Vec<&str> = h
        .split("SharedMemoryImageStream_")
        .skip(1)
        .map(|s| s.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["create", "destroy", "errorstring", "lock", "putframe", "unlock"]);
}

#[test]
fn the_frame_struct_has_the_c_layout() {
    use std::mem::{align_of, offset_of, size_of};
    let ptr = size_of::<*mut u8>();
    assert_eq!(offset_of!(FrameStruct, iFrame), 0);
    assert_eq!(offset_of!(FrameStruct, iWidth), 4);
    assert_eq!(offset_of!(FrameStruct, iHeight), 8);
    assert_eq!(offset_of!(FrameStruct, buffer), 12usize.next_multiple_of(ptr));
    assert_eq!(size_of::<FrameStruct>(), (12usize.next_multiple_of(ptr) + ptr).next_multiple_of(align_of::<*mut u8>()));
    assert_eq!(size_of::<shared_memory_image_client::SharedMemoryImageError>(), size_of::<std::ffi::c_int>());
}
