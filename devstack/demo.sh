#!/usr/bin/env bash
# Drives a small, realistic mix of payments through the running services and
# shows where each ended: a clean one, a sanctioned creditor, one from a VPN,
# one from the wrong country, one into a blocked corridor, one missing its
# travel-rule fields, and an idempotent retry.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

GATEWAY="http://127.0.0.1:${PAYSTREAM_GATEWAY_PORT:-8080}"
KEY="paystream-dev-key"
run_id="$(date +%s)"

submit() {
  local label="$1" key="$2" creditor_name="$3" creditor_country="$4" ip="$5" amount="$6"
  curl -sS -X POST "$GATEWAY/v1/payments" \
    -H "Authorization: Bearer $KEY" -H "Idempotency-Key: demo-$run_id-$key" \
    -H 'Content-Type: application/json' \
    -d "{\"amount\":\"$amount\",\"currency\":\"EUR\",
         \"debtor\":{\"name\":\"Emily Clarke\",\"account\":\"GB82WEST12345698765432\",\"agentBic\":\"NWBKGB2L\",\"country\":\"GB\"},
         \"creditor\":{\"name\":\"$creditor_name\",\"account\":\"FR1420041010050500013M02606\",\"agentBic\":\"BNPAFRPP\",\"country\":\"$creditor_country\"},
         \"remittanceInformation\":\"$label\",\"clientIp\":\"$ip\"}"
}

declare -A labels
ids=()
while IFS='|' read -r label key name country ip amount; do
  answer="$(submit "$label" "$key" "$name" "$country" "$ip" "$amount")"
  id="$(python3 -c 'import json,sys; print(json.load(sys.stdin).get("paymentId",""))' <<<"$answer")"
  [[ -n "$id" ]] || { echo "  $label: refused: $answer"; continue; }
  ids+=("$id"); labels[$id]="$label"
done <<'MIX'
clean payment|1|Camille Moreau|FR|81.2.69.142|250.00
sanctioned creditor|2|Saddam Hussein Al-Tikriti|FR|81.2.69.142|250.00
initiated over a VPN|3|Camille Moreau|FR|45.83.220.10|250.00
initiated from another country|4|Camille Moreau|FR|8.8.8.8|250.00
corridor not allowed|5|Camille Moreau|IR|81.2.69.142|250.00
travel rule incomplete|6|Camille Moreau|FR|81.2.69.142|4500.00
MIX
retry="$(submit "clean payment" 1 "Camille Moreau" FR 81.2.69.142 250.00)"
echo "Retry with the same Idempotency-Key answers the same payment: $retry"

echo "Waiting for decisions..."
for id in "${ids[@]}"; do
  for _ in $(seq 1 100); do
    view="$(curl -sS -H "Authorization: Bearer $KEY" "$GATEWAY/v1/payments/$id")"
    grep -q '"SUBMITTED"' <<<"$view" || break
    sleep 0.2
  done
  printf '  %-32s %s\n' "${labels[$id]}" \
    "$(python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["status"], v.get("reasonCode") or "", "(correlationId " + v["correlationId"] + ")")' <<<"$view")"
done
