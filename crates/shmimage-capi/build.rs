//! Give the shared library a SONAME carrying the ABI's major version, so
//! programs linked against it keep loading `.so.1` across compatible updates
//! and refuse an incompatible `.so.2`, as with any system library.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libshared_memory_image_client.so.1");
}
