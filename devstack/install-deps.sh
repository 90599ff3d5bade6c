#!/usr/bin/env bash
# Installs what building and running Paystream needs and a fresh machine may
# lack: a C toolchain and headers for librdkafka's bundled build, and PostgreSQL.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

packages=(build-essential pkg-config libssl-dev zlib1g-dev cmake libcurl4-openssl-dev postgresql postgresql-client curl)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "system packages present"
fi
