#!/bin/sh
# Build and install the C library libshared_memory_image_client.
#
#   crates/shmimage-capi/install.sh [PREFIX]        PREFIX defaults to /usr/local
#
# Builds the release library with cargo, then installs
#   PREFIX/lib/libshared_memory_image_client.so.1.0 shared library (SONAME .so.1),
#       with the links .so.1 (for the loader) and .so (for the linker)
#   PREFIX/lib/libshared_memory_image_client.a      static library
#   PREFIX/include/shared_memory_image_client.h     header
#   PREFIX/lib/pkgconfig/shared_memory_image_client.pc
# so that `cc app.c $(pkg-config --cflags --libs shared_memory_image_client)`
# works (add PREFIX/lib/pkgconfig to PKG_CONFIG_PATH for a non-standard
# PREFIX, and PREFIX/lib to the run-time search path, e.g. -Wl,-rpath).
#
# Environment:
#   DESTDIR           staging root put in front of every installed path (for
#                     packaging); the .pc file still names PREFIX
#   LIBDIR            library directory (default PREFIX/lib)
#   CARGO             the cargo to build with (default: cargo)
#   SHMIMAGE_LIB_DIR  do not build: install the libraries already built in
#                     this directory
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:-/usr/local}
libdir=${LIBDIR:-$prefix/lib}
includedir=$prefix/include
destdir=${DESTDIR:-}
cargo=${CARGO:-cargo}

case $prefix$libdir in
*'|'* | *'
'*) echo "install.sh: PREFIX and LIBDIR must not contain '|' or a newline" >&2; exit 2 ;;
esac
case $prefix in
/*) ;;
*) echo "install.sh: PREFIX must be an absolute path, not '$prefix'" >&2; exit 2 ;;
esac

if [ -n "${SHMIMAGE_LIB_DIR:-}" ]; then
    built=$SHMIMAGE_LIB_DIR
else
    "$cargo" build --release -p shmimage-capi --manifest-path "$here/Cargo.toml"
    # Ask cargo where it put the build: CARGO_TARGET_DIR and .cargo/config
    # can move it away from the workspace's target/.
    target=$("$cargo" metadata --format-version 1 --no-deps --manifest-path "$here/Cargo.toml" |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    built=$target/release
fi
for f in libshared_memory_image_client.so libshared_memory_image_client.a; do
    [ -f "$built/$f" ] || { echo "install.sh: $built/$f is missing" >&2; exit 1; }
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/../../Cargo.toml" | head -n 1)
api=$(sed -n 's/^#define IMAGESTREAM_API_VERSION "\(.*\)"$/\1/p' "$here/include/shared_memory_image_client.h")
# What rustc prints as native-static-libs for a staticlib on Linux (glibc):
# a static link needs them after the library.
libs_private="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"

install -d "$destdir$libdir" "$destdir$libdir/pkgconfig" "$destdir$includedir"
# The file is named for the ABI version; the loader finds it by its SONAME
# (.so.1), the linker by the plain name.
install -m 0755 "$built/libshared_memory_image_client.so" "$destdir$libdir/libshared_memory_image_client.so.1.0"
ln -sf libshared_memory_image_client.so.1.0 "$destdir$libdir/libshared_memory_image_client.so.1"
ln -sf libshared_memory_image_client.so.1 "$destdir$libdir/libshared_memory_image_client.so"
install -m 0644 "$built/libshared_memory_image_client.a" "$destdir$libdir/"
install -m 0644 "$here/include/shared_memory_image_client.h" "$destdir$includedir/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@LIBDIR@|$libdir|" -e "s|@INCLUDEDIR@|$includedir|" \
    -e "s|@VERSION@|$version|" -e "s|@API_VERSION@|$api|" -e "s|@LIBS_PRIVATE@|$libs_private|" \
    "$here/shared_memory_image_client.pc.in" >"$destdir$libdir/pkgconfig/shared_memory_image_client.pc"
chmod 0644 "$destdir$libdir/pkgconfig/shared_memory_image_client.pc"
echo "installed libshared_memory_image_client $version under $destdir$prefix"
