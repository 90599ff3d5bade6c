#!/usr/bin/env bash
# Installs what building and running Paystream needs and a fresh machine may
# lack: a C toolchain and headers for librdkafka's bundled build, PostgreSQL,
# and promtool (from Debian's prometheus package; the server it also brings is
# not started) for devstack/check-monitoring.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

packages=(build-essential pkg-config libssl-dev zlib1g-dev cmake libcurl4-openssl-dev postgresql postgresql-client curl prometheus)
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

# Python tools: PyYAML for the manifest checks, schemathesis for the
# gateway's OpenAPI contract test (`st`, run by `make test`), and Confluent's
# own Python client with its Avro serdes, which the schema registry's tests run
# against it. Pinned, so a new release cannot change what the tests check.
SCHEMATHESIS_VERSION="4.32.5"
CONFLUENT_KAFKA_VERSION="2.16.1"
python_tools=()
python3 -c "import yaml" 2>/dev/null || python_tools+=(pyyaml)
st --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION" || python_tools+=("schemathesis==$SCHEMATHESIS_VERSION")
# Importing the Avro serdes also proves the extras (fastavro, httpx, ...) are there.
python3 -c "import sys, importlib.metadata, confluent_kafka.schema_registry.avro
sys.exit(importlib.metadata.version('confluent-kafka') != '$CONFLUENT_KAFKA_VERSION')" 2>/dev/null \
  || python_tools+=("confluent-kafka[avro,schemaregistry]==$CONFLUENT_KAFKA_VERSION")
if ((${#python_tools[@]})); then
  log "installing ${python_tools[*]} from PyPI"
  pip_install=(python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
  # A distribution's own Python (PEP 668) refuses pip; this machine kind's
  # pyenv Python does not. The tools are test-only, so fall back rather than fail.
  "${pip_install[@]}" "${python_tools[@]}" 2>/dev/null \
    || "${pip_install[@]}" --break-system-packages "${python_tools[@]}"
  # pyenv, where Python comes from here, finds new commands through shims.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
  command -v st >/dev/null 2>&1 || die "schemathesis installed, but its st command is not on the PATH"
  python3 -c "import confluent_kafka.schema_registry.avro" \
    || die "confluent-kafka installed, but python3 cannot import its Avro serdes"
else
  log "python tools present"
fi
