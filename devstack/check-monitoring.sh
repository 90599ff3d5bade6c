#!/usr/bin/env bash
# Statically checks deploy/monitoring/ (or the directory given):
#   1. promtool check rules alerts.yaml        (the rules parse)
#   2. promtool test rules alerts.test.yaml    (each alert fires, and stays quiet, as its tests say)
#   3. dashboard.json parses, has the Prometheus datasource variable, and
#      every metric named by a panel or a rule is one the services define
#      (a `"paystream_..."` string in crates/*/src) or one the rule tests feed.
# Run without an argument it then proves it can fail: on copies with a broken
# expression and with a misspelt metric it must exit non-zero.
# That the metrics are really exported by running services is
# crates/e2e/tests/it/metrics_for_alerts.rs's job.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$DEVSTACK_ROOT"

command -v promtool >/dev/null 2>&1 || die "promtool is not installed: run devstack/install-deps.sh (Debian package prometheus)"

check() {
  local dir="$1"
  promtool check rules "$dir/alerts.yaml" >&2 || return 1
  promtool test rules "$dir/alerts.test.yaml" >&2 || return 1
  python3 - "$dir" <<'PY' || return 1
import json, pathlib, re, sys

import yaml

directory = pathlib.Path(sys.argv[1])
name = re.compile(r"\bpaystream_[a-z0-9_]+")
suffix = re.compile(r"_(bucket|sum|count)$")

def metrics(text):
    return {suffix.sub("", found) for found in name.findall(text)}

defined = set()
for source in pathlib.Path("crates").glob("*/src/**/*.rs"):
    defined |= {m[1:-1] for m in re.findall(r'"paystream_[a-z0-9_]+"', source.read_text())}
tests = yaml.safe_load((directory / "alerts.test.yaml").read_text())
fed = {suffix.sub("", s["series"].split("{")[0].strip("'\" "))
       for test in tests["tests"] for s in test.get("input_series", [])}
# Histograms are defined under their base name.
known = defined | fed

problems = []
rules = yaml.safe_load((directory / "alerts.yaml").read_text())
rule_metrics = set()
for group in rules["groups"]:
    for rule in group["rules"]:
        used = metrics(rule["expr"])
        rule_metrics |= used
        for metric in sorted(used - defined):
            problems.append(f"alert {rule.get('alert')}: {metric} is defined by no service (crates/*/src)")

dashboard = json.loads((directory / "dashboard.json").read_text())
variables = dashboard.get("templating", {}).get("list", [])
if not any(v.get("type") == "datasource" and v.get("query") == "prometheus" for v in variables):
    problems.append("dashboard: no Prometheus datasource variable")
exprs = 0
for panel in dashboard.get("panels", []):
    if panel.get("datasource", {}).get("uid") != "${datasource}":
        problems.append(f"panel {panel.get('title')!r}: not on the $datasource variable")
    for target in panel.get("targets", []):
        exprs += 1
        used = metrics(target.get("expr", ""))
        if not used:
            problems.append(f"panel {panel.get('title')!r}: expr names no paystream metric: {target.get('expr')!r}")
        for metric in sorted(used - known):
            problems.append(f"panel {panel.get('title')!r}: {metric} is neither defined by a service nor fed by the rule tests")
for problem in problems:
    print(f"check-monitoring: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"dashboard: {len(dashboard['panels'])} panels, {exprs} queries; "
      f"{len(rule_metrics)} metrics named by the rules; all known", file=sys.stderr)
PY
}

if (($#)); then
  check "$1" || exit 1
  exit 0
fi

check deploy/monitoring || die "deploy/monitoring fails its checks"
log "deploy/monitoring: rules valid, rule tests pass, dashboard consistent"

# The check must be able to fail: break copies and expect a refusal.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# what | file | sed edit
breaks=(
  "a broken rule expression|alerts.yaml|s/histogram_quantile(0.99,/histogram_quantile(0.99/"
  "a misspelt metric in a rule|alerts.yaml|s/paystream_bus_consumer_lag)/paystream_bus_consumer_lagg)/"
  "a dashboard panel on an unknown metric|dashboard.json|s/paystream_bus_outbox_oldest_pending_seconds)/paystream_bus_outbox_oldest_seconds)/"
)
for entry in "${breaks[@]}"; do
  IFS='|' read -r what file edit <<<"$entry"
  rm -rf "$scratch/monitoring" && cp -r deploy/monitoring "$scratch/monitoring"
  sed -i "$edit" "$scratch/monitoring/$file"
  cmp -s "deploy/monitoring/$file" "$scratch/monitoring/$file" && die "the edit for $what changed nothing"
  if check "$scratch/monitoring" 2>"$scratch/err"; then
    die "a copy with $what passed the check"
  fi
  log "a copy with $what is refused: $(grep -m1 -E 'parse error|alertname:|check-monitoring:' "$scratch/err" | sed 's/^ *//')"
done
