#!/bin/sh
# setup.sh: makes sure the Debian packages the build needs are present.
# As root it installs what is missing; otherwise it prints the apt-get line and stops.
set -e
missing=""
have_header() { [ -f "/usr/include/$1" ] || [ -f "/usr/include/x86_64-linux-gnu/$1" ] || [ -f "/usr/include/$(uname -m)-linux-gnu/$1" ]; }
have_header cjson/cJSON.h || missing="$missing libcjson-dev"
have_header curl/curl.h || missing="$missing libcurl4-openssl-dev"
# OpenBLAS's own header (a cblas.h from the reference BLAS, libblas-dev, lacks
# openblas_set_num_threads)
have_openblas() {
    for f in /usr/include/openblas_config.h /usr/include/*/openblas_config.h /usr/include/*/openblas*/openblas_config.h; do
        [ -f "$f" ] && return 0
    done
    return 1
}
have_openblas || missing="$missing libopenblas-dev"
command -v xmllint >/dev/null 2>&1 || missing="$missing libxml2-utils"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "dmabench setup: missing packages; run as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi
echo "dmabench setup: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || apt-get update
apt-get install -y -qq --no-install-recommends $missing >/dev/null
