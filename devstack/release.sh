#!/usr/bin/env bash
# Per-team releases: one service's image at its own crate's version.
#
#   devstack/release.sh SERVICE        (make release SERVICE=gateway)
#       Reads the version of crates/SERVICE (cargo metadata), checks the
#       Dockerfile has a target named SERVICE, and builds only that target:
#         docker build --target SERVICE --build-arg VERSION=V -t paystream/SERVICE:V .
#       When no container engine answers (`docker info` fails), prints that
#       command instead, says so, and exits 0 after the checks.
#       Exits 1 for an unknown service or a missing Dockerfile target.
#
#   devstack/release.sh --changed REF
#       Prints, one a line, the services whose image would differ from the one
#       built at git REF: their crate changed, or a workspace crate they depend
#       on (normal or build dependency, not dev), or a crates.io package in
#       their dependency tree (Cargo.lock). Tests, benches, examples and
#       Markdown inside a crate do not count. A change to the root Cargo.toml,
#       the Dockerfile or .cargo/ counts for every service. The reason for each
#       goes to stderr.
#
#   devstack/release.sh --list         the releasable services
set -euo pipefail
cd "$(dirname "$0")/.."

# Service = Dockerfile target = folder under crates/ = image paystream/<service>.
SERVICES=(gateway validation cbs-debit rtgs-gateway notifications audit sandbox schema-registry provision cli)

usage() {
  echo "usage: $0 SERVICE | --changed GIT_REF | --list" >&2
  echo "services: ${SERVICES[*]}" >&2
}

crate_version() { # crate_version SERVICE -> the version cargo resolves for crates/SERVICE
  local manifest="$PWD/crates/$1/Cargo.toml"
  if command -v cargo >/dev/null 2>&1; then
    cargo metadata --no-deps --format-version 1 --offline 2>/dev/null \
      | python3 -c '
import json, sys
manifest = sys.argv[1]
for package in json.load(sys.stdin)["packages"]:
    if package["manifest_path"] == manifest:
        print(package["version"])
' "$manifest"
  else
    # Without cargo: the [package] version of the crate's own Cargo.toml.
    python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["package"]["version"])' "$manifest"
  fi
}

release() {
  local service="$1" known=false
  for candidate in "${SERVICES[@]}"; do [[ "$candidate" == "$service" ]] && known=true; done
  if ! $known || [[ ! -f "crates/$service/Cargo.toml" ]]; then
    echo "release: unknown service '$service'" >&2
    usage
    exit 1
  fi
  local version
  version="$(crate_version "$service")"
  if [[ ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]]; then
    echo "release: could not read a version for crates/$service (got '$version')" >&2
    exit 1
  fi
  if ! grep -qiE "^FROM[[:space:]]+[^[:space:]]+[[:space:]]+AS[[:space:]]+$service[[:space:]]*$" Dockerfile; then
    echo "release: the Dockerfile has no target '$service'" >&2
    exit 1
  fi
  local command=(docker build --target "$service" --build-arg "VERSION=$version" -t "paystream/$service:$version" .)
  echo "release: $service $version (crates/$service/Cargo.toml), Dockerfile target $service"
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo "release: ${command[*]}"
    "${command[@]}"
    echo "release: built paystream/$service:$version"
  else
    echo "release: no container engine answers here (docker info failed), so nothing is built; the command is:"
    echo "${command[*]}"
  fi
}

changed() {
  local ref="$1"
  git rev-parse --verify --quiet "$ref^{commit}" >/dev/null || { echo "release: unknown git ref '$ref'" >&2; exit 1; }
  local files metadata old_lock
  # Committed and uncommitted changes since REF, and new untracked files.
  files="$( { git diff --name-only "$ref" --; git ls-files --others --exclude-standard; } | sort -u)"
  metadata="$(cargo metadata --no-deps --format-version 1 --offline)"
  old_lock="$(git show "$ref:Cargo.lock" 2>/dev/null || true)"
  FILES="$files" METADATA="$metadata" OLD_LOCK="$old_lock" SERVICES="${SERVICES[*]}" python3 - <<'EOF'
import json, os, pathlib, sys, tomllib

root = pathlib.Path.cwd()
services = os.environ["SERVICES"].split()
files = [f for f in os.environ["FILES"].splitlines() if f]
packages = json.loads(os.environ["METADATA"])["packages"]

by_dir = {}      # crate folder (relative) -> package name
deps = {}        # workspace package -> the packages it builds with (not dev)
service_package = {}
for package in packages:
    folder = pathlib.Path(package["manifest_path"]).parent.relative_to(root).as_posix()
    by_dir[folder] = package["name"]
    deps[package["name"]] = {d["name"] for d in package["dependencies"] if d.get("kind") in (None, "normal", "build")}
    if folder.startswith("crates/") and folder.removeprefix("crates/") in services:
        service_package[folder.removeprefix("crates/")] = package["name"]

def lock_packages(text):
    if not text:
        return {}
    entries = {}
    for entry in tomllib.loads(text).get("package", []):
        entries.setdefault(entry["name"], []).append(
            (entry.get("version"), entry.get("source"), entry.get("checksum"), tuple(entry.get("dependencies", []))))
    return {name: sorted(map(str, value)) for name, value in entries.items()}

new_lock_text = (root / "Cargo.lock").read_text()
new_lock = tomllib.loads(new_lock_text).get("package", [])
# Edges for crates.io packages come from the lock ("name" or "name version").
for entry in new_lock:
    if entry["name"] not in deps:
        deps[entry["name"]] = {d.split(" ")[0] for d in entry.get("dependencies", [])}

reasons = {}     # changed package or "*" -> why
everything = None
for path in files:
    if path in ("Cargo.toml", "Dockerfile", ".dockerignore", "rust-toolchain", "rust-toolchain.toml") or path.startswith(".cargo/"):
        everything = f"{path} changed"
        continue
    if path == "Cargo.lock":
        old, new = lock_packages(os.environ["OLD_LOCK"]), lock_packages(new_lock_text)
        for name in set(old) | set(new):
            if old.get(name) != new.get(name) and name not in by_dir.values():
                reasons.setdefault(name, "Cargo.lock entry changed")
        continue
    if path.startswith("schemas/released/") or path.endswith(".md"):
        # The record of released versions is read by CI's check, not built.
        continue
    if path.startswith("schemas/"):
        # The Avro schemas are compiled into the contract crate (include_str!).
        reasons.setdefault("paystream-contract", f"{path} changed")
        continue
    for folder, name in by_dir.items():
        if path.startswith(folder + "/"):
            inner = path[len(folder) + 1:]
            if inner.split("/")[0] in ("tests", "benches", "examples") or inner.endswith(".md"):
                break
            reasons.setdefault(name, f"{path} changed")
            break

def closure(name):
    seen, stack = set(), [name]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(deps.get(current, ()))
    return seen

for service in services:
    package = service_package.get(service)
    if package is None:
        continue
    if everything:
        print(f"{service}: {everything}", file=sys.stderr)
        print(service)
        continue
    hits = sorted(closure(package) & set(reasons))
    if hits:
        first = hits[0] if package not in hits else package
        more = f" (and {len(hits) - 1} more)" if len(hits) > 1 else ""
        via = "" if first == package else f" via {first}"
        print(f"{service}: {reasons[first]}{via}{more}", file=sys.stderr)
        print(service)
EOF
}

case "${1:-}" in
  --changed) [[ -n "${2:-}" ]] || { usage; exit 2; }; changed "$2" ;;
  --list) printf '%s\n' "${SERVICES[@]}" ;;
  ""|-h|--help) usage; exit 2 ;;
  -*) usage; exit 2 ;;
  *) release "$1" ;;
esac
