//! gst-inspect-1.0 finds both elements in the built plugin, with their
//! documented properties.
#![allow(clippy::unwrap_used)]

mod common;

#[test]
fn gst_inspect_finds_both_elements_with_documented_properties() {
    let reg = tempfile::tempdir().unwrap();
    for (element, props) in [
        ("shmimagesink", &["path", "ensight", "remove-on-stop", "slots", "stats-interval"][..]),
        ("shmimagesrc", &["path", "wait-for-writer", "lossless", "max-held-slots", "stats-interval"][..]),
    ] {
        let out = common::gst_tool("gst-inspect-1.0", reg.path()).arg(element).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "gst-inspect-1.0 {element}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("libgstshmimage.so"), "{text}");
        for p in props {
            assert!(text.contains(&format!("  {p} ")), "{element} lacks a documented {p}:\n{text}");
        }
    }
    let out = common::gst_tool("gst-inspect-1.0", reg.path()).arg("shmimage").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("shmimagesink") && text.contains("shmimagesrc") && text.contains("MIT/X11"), "{text}");
}
