#!/bin/sh
# Build and install the C library libshared_memory_image_client.
#
#   crates/shmimage-capi/install.sh [PREFIX]        PREFIX defaults to /usr/local
#
# Builds the release library with cargo, then installs
#   PREFIX/lib/libshared_memory_image_client.so.1.0 shared library (SONAME .so.1),
#       stripped, with the links .so.1 (for the loader) and .so (for the linker)
#   PREFIX/lib/.debug/libshared_memory_image_client.so.1.0.debug
#       its debug info, split off (gdb finds it through the library's
#       .gnu_debuglink; only with DEBUG_INFO=split, the default)
#   PREFIX/lib/libshared_memory_image_client.a      static library, debug info dropped
#   PREFIX/include/shared_memory_image_client.h     EnSight's header (protocol 1.0)
#   PREFIX/include/shmimage.h                       the native stream's header
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
#   DEBUG_INFO        split (default): debug info in a separate .debug file;
#                     none: dropped; keep: install the libraries unstripped
#   OBJCOPY, STRIP    the binutils to use (default: objcopy, strip)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:-/usr/local}
libdir=${LIBDIR:-$prefix/lib}
includedir=$prefix/include
destdir=${DESTDIR:-}
cargo=${CARGO:-cargo}
debug_info=${DEBUG_INFO:-split}
objcopy=${OBJCOPY:-objcopy}
strip=${STRIP:-strip}

case $prefix$libdir in
*'|'* | *'
'*) echo "install.sh: PREFIX and LIBDIR must not contain '|' or a newline" >&2; exit 2 ;;
esac
case $prefix in
/*) ;;
*) echo "install.sh: PREFIX must be an absolute path, not '$prefix'" >&2; exit 2 ;;
esac
case $debug_info in
split | none | keep) ;;
*) echo "install.sh: DEBUG_INFO must be split, none or keep, not '$debug_info'" >&2; exit 2 ;;
esac
if [ "$debug_info" != keep ]; then
    for tool in "$objcopy" "$strip"; do
        command -v "$tool" >/dev/null 2>&1 || {
            echo "install.sh: $tool is missing (apt-get install binutils), or set DEBUG_INFO=keep to install unstripped" >&2
            exit 1
        }
    done
fi

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

size() { wc -c <"$1" | tr -d ' '; }

install -d "$destdir$libdir" "$destdir$libdir/pkgconfig" "$destdir$includedir"
so=libshared_memory_image_client.so.1.0
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$built/libshared_memory_image_client.so" "$stage/$so"
cp "$built/libshared_memory_image_client.a" "$stage/libshared_memory_image_client.a"
before_so=$(size "$stage/$so")
before_a=$(size "$stage/libshared_memory_image_client.a")
# The release build carries debug info (profile.release debug = 1), most of
# the file; users get the code, and the debug info beside it if they want.
if [ "$debug_info" = split ]; then
    "$objcopy" --only-keep-debug "$stage/$so" "$stage/$so.debug"
fi
if [ "$debug_info" != keep ]; then
    "$strip" --strip-debug --strip-unneeded "$stage/$so"
    # Debug info only: the symbols a static link needs stay.
    "$strip" --strip-debug "$stage/libshared_memory_image_client.a"
fi
if [ "$debug_info" = split ]; then
    # The link names the .debug file and its checksum; gdb looks for it in
    # a .debug folder beside the library.
    (cd "$stage" && "$objcopy" --add-gnu-debuglink="$so.debug" "$so")
    install -d "$destdir$libdir/.debug"
    install -m 0644 "$stage/$so.debug" "$destdir$libdir/.debug/"
fi
# The file is named for the ABI version; the loader finds it by its SONAME
# (.so.1), the linker by the plain name.
install -m 0755 "$stage/$so" "$destdir$libdir/$so"
ln -sf $so "$destdir$libdir/libshared_memory_image_client.so.1"
ln -sf libshared_memory_image_client.so.1 "$destdir$libdir/libshared_memory_image_client.so"
install -m 0644 "$stage/libshared_memory_image_client.a" "$destdir$libdir/"
install -m 0644 "$here/include/shared_memory_image_client.h" "$here/include/shmimage.h" "$destdir$includedir/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@LIBDIR@|$libdir|" -e "s|@INCLUDEDIR@|$includedir|" \
    -e "s|@VERSION@|$version|" -e "s|@API_VERSION@|$api|" -e "s|@LIBS_PRIVATE@|$libs_private|" \
    "$here/shared_memory_image_client.pc.in" >"$destdir$libdir/pkgconfig/shared_memory_image_client.pc"
chmod 0644 "$destdir$libdir/pkgconfig/shared_memory_image_client.pc"
echo "installed libshared_memory_image_client $version under $destdir$prefix"
echo "  $so: $before_so -> $(size "$stage/$so") bytes (debug info: $debug_info)"
echo "  libshared_memory_image_client.a: $before_a -> $(size "$stage/libshared_memory_image_client.a") bytes"
if [ "$debug_info" = split ]; then
    echo "  debug info: $libdir/.debug/$so.debug ($(size "$stage/$so.debug") bytes)"
fi
