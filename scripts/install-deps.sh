#!/usr/bin/env bash
# Install the system packages the test suite needs (Debian/Ubuntu), only
# those missing. Needs root for apt-get; without it, prints what is missing.
#   C tests: cc, g++, valgrind, pkg-config, nm     X11 tests: Xvfb, xwd
#   Python tests: python3 with venv (maturin, numpy, pytest come from PyPI)
set -euo pipefail

pkgs=(build-essential pkg-config valgrind binutils xvfb x11-apps x11-utils)
# GStreamer plugin (shmimage-gst) and send/receive: headers for gstreamer-rs,
# gst-launch/gst-inspect, gst-discoverer, and the elements the tests use
# (x264enc in ugly, avdec_h264 in libav, rtp/tcp/gdp in good and bad).
pkgs+=(libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base
       gstreamer1.0-plugins-base-apps gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
       gstreamer1.0-plugins-ugly gstreamer1.0-libav)
# shmimage web: JPEG encoding (libjpeg-turbo) and the headless-browser tests.
pkgs+=(libturbojpeg0-dev chromium)
# CLI pipes: record --out - into ffmpeg, y4m from ffmpeg, checked with ffprobe.
pkgs+=(ffmpeg)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
