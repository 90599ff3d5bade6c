#!/usr/bin/env bash
# Proves each check of devstack/check-manifests.sh can fail: copies a manifest,
# breaks it one way, and asserts the check rejects the copy (and accepts the
# unbroken copy, so the failure is the breakage's, not the copy's).
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
check=(bash devstack/check-manifests.sh)
passed=0
failed=0

expect() { # expect pass|fail DESCRIPTION -- ARGS...
  local want="$1" what="$2"; shift 3
  local log="$work/log"
  if "${check[@]}" "$@" >"$log" 2>&1; then got=pass; else got=fail; fi
  if [[ "$got" == "$want" ]]; then
    echo "test-check-manifests: ok: $what (check ${got}ed)"
    if [[ "$want" == fail ]]; then grep -E 'NOT|check-manifests: [^ ]+: |Error|not allowed|unexpected' "$log" | head -3 | sed 's/^/    /'; fi
    passed=$((passed + 1))
  else
    echo "test-check-manifests: FAILED: $what (expected the check to $want, it ${got}ed):"
    sed 's/^/    /' "$log"
    failed=$((failed + 1))
  fi
}

# A fresh copy of compose/ and deploy/ for each case; the Dockerfile and the
# devstack files a compose file mounts come along so relative paths resolve.
fresh() {
  rm -rf "$work/tree" && mkdir -p "$work/tree/devstack"
  cp -r compose deploy Dockerfile "$work/tree/"
  cp devstack/demo-accounts.csv devstack/demo-contacts.csv "$work/tree/devstack/"
}

# Compose: the unbroken copy passes, a service with an invalid key fails.
fresh
expect pass "unbroken compose copy" -- --compose "$work/tree/compose/docker-compose.yml"
sed -i 's/^  sandbox:$/  sandbox:\n    restart_policy: always/' "$work/tree/compose/docker-compose.yml"
grep -q 'restart_policy: always' "$work/tree/compose/docker-compose.yml"
expect fail "compose service with an invalid key (restart_policy)" -- --compose "$work/tree/compose/docker-compose.yml"

# Compose: a service built from a Dockerfile target that does not exist.
fresh
sed -i 's/target: notifications,/target: notification,/' "$work/tree/compose/docker-compose.yml"
expect fail "compose service built from a missing Dockerfile target" -- --compose "$work/tree/compose/docker-compose.yml"

# Dockerfile: the unbroken copy passes; a broken instruction and a target
# without its version label fail.
fresh
expect pass "unbroken Dockerfile copy" -- --dockerfile "$work/tree/Dockerfile"
sed -i 's/^COPY --from=build-gateway /COPPY --from=build-gateway /' "$work/tree/Dockerfile"
expect fail "Dockerfile with an unknown instruction" -- --dockerfile "$work/tree/Dockerfile"
fresh
sed -i '/^LABEL org.opencontainers.image.title="paystream-audit"/d' "$work/tree/Dockerfile"
expect fail "Dockerfile target without its version label" -- --dockerfile "$work/tree/Dockerfile"

# Kubernetes: the unbroken copy passes; a Deployment with a wrong field type fails.
fresh
expect pass "unbroken deploy/ copy" -- --kustomize "$work/tree/deploy"
sed -i 's/^  replicas: 2$/  replicas: "two"/' "$work/tree/deploy/gateway/deployment.yaml"
grep -q 'replicas: "two"' "$work/tree/deploy/gateway/deployment.yaml"
expect fail "Deployment with a string for replicas" -- --kustomize "$work/tree/deploy"

# Kubernetes (strict): an unknown field in a container.
fresh
sed -i 's/^          image: paystream\/validation$/          image: paystream\/validation\n          imagePullPolicyy: Always/' "$work/tree/deploy/validation/deployment.yaml"
grep -q imagePullPolicyy "$work/tree/deploy/validation/deployment.yaml"
expect fail "Deployment with an unknown container field" -- --kustomize "$work/tree/deploy"

# Kubernetes: an overlay that no longer renders.
fresh
sed -i 's|^  - ../../audit$|  - ../../audit\n  - ../../no-such-service|' "$work/tree/deploy/overlays/dev/kustomization.yaml"
expect fail "overlay naming a missing folder" -- --kustomize "$work/tree/deploy/overlays/dev"

# Deploy rules: a consumer's autoscaler above the topics' partition count.
fresh
sed -i 's/^  maxReplicas: 6$/  maxReplicas: 12/' "$work/tree/deploy/cbs-debit/hpa.yaml"
expect fail "consumer HorizontalPodAutoscaler above the partition count" -- --kustomize "$work/tree/deploy"

# Deploy rules: a Deployment without its readiness probe.
fresh
python3 - "$work/tree/deploy/notifications/deployment.yaml" <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = re.sub(r"          readinessProbe:\n            httpGet: \{[^}]*\}\n            periodSeconds: 5\n", "", text)
open(path, "w").write(text)
EOF
! grep -q readinessProbe "$work/tree/deploy/notifications/deployment.yaml"
expect fail "Deployment without a readinessProbe" -- --kustomize "$work/tree/deploy"

echo "test-check-manifests: $passed passed, $failed failed"
((failed == 0))
