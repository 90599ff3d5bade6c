#!/usr/bin/env bash
# Drives a small, realistic mix of payments through the running services and
# shows where each ended: a clean one (settled on the rail), one the rail
# rejects (the creditor's account is closed: the debit is reversed), a
# sanctioned creditor, one from a VPN, one from the wrong country, one into a
# blocked corridor, one missing its travel-rule fields, three the ledger
# refuses (insufficient funds, a closed and a blocked account), a card
# transaction, and an idempotent retry.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

GATEWAY="http://127.0.0.1:${PAYSTREAM_GATEWAY_PORT:-8080}"
LEDGER="http://127.0.0.1:${PAYSTREAM_CBS_DEBIT_PORT:-8083}"
NOTIFICATIONS="http://127.0.0.1:${PAYSTREAM_NOTIFICATIONS_PORT:-8086}"
KEY="paystream-dev-key"
run_id="$(date +%s)"

submit() {
  local label="$1" key="$2" creditor_name="$3" creditor_country="$4" ip="$5" amount="$6" debtor="${7:-GB82WEST12345698765432}" creditor="${8:-FR1420041010050500013M02606}"
  curl -sS -X POST "$GATEWAY/v1/payments" \
    -H "Authorization: Bearer $KEY" -H "Idempotency-Key: demo-$run_id-$key" \
    -H 'Content-Type: application/json' \
    -d "{\"amount\":\"$amount\",\"currency\":\"EUR\",
         \"debtor\":{\"name\":\"Emily Clarke\",\"account\":\"$debtor\",\"agentBic\":\"NWBKGB2L\",\"country\":\"GB\"},
         \"creditor\":{\"name\":\"$creditor_name\",\"account\":\"$creditor\",\"agentBic\":\"BNPAFRPP\",\"country\":\"$creditor_country\"},
         \"remittanceInformation\":\"$label\",\"clientIp\":\"$ip\"}"
}

declare -A labels
ids=()
while IFS='|' read -r label key name country ip amount debtor creditor; do
  answer="$(submit "$label" "$key" "$name" "$country" "$ip" "$amount" "$debtor" "$creditor")"
  id="$(python3 -c 'import json,sys; print(json.load(sys.stdin).get("paymentId",""))' <<<"$answer")"
  [[ -n "$id" ]] || { echo "  $label: refused: $answer"; continue; }
  ids+=("$id"); labels[$id]="$label"
done <<'MIX'
clean payment|1|Camille Moreau|FR|81.2.69.142|250.00
rejected by the rail|10|Lena Fischer|DE|81.2.69.142|120.00|GB82WEST12345698765432|DE89370400440532013000
sanctioned creditor|2|Saddam Hussein Al-Tikriti|FR|81.2.69.142|250.00
initiated over a VPN|3|Camille Moreau|FR|45.83.220.10|250.00
initiated from another country|4|Camille Moreau|FR|8.8.8.8|250.00
corridor not allowed|5|Camille Moreau|IR|81.2.69.142|250.00
travel rule incomplete|6|Camille Moreau|FR|81.2.69.142|4500.00
insufficient funds|7|Camille Moreau|FR|81.2.69.142|250.00|GB29NWBK60161331926819
closed account|8|Camille Moreau|FR|81.2.69.142|250.00|GB94BARC10201530093459
blocked account|9|Camille Moreau|FR|81.2.69.142|250.00|GB33BUKB20201555555555
MIX
retry="$(submit "clean payment" 1 "Camille Moreau" FR 81.2.69.142 250.00)"
echo "Retry with the same Idempotency-Key answers the same payment: $retry"

echo "Waiting for each payment's final state..."
for id in "${ids[@]}"; do
  for _ in $(seq 1 150); do
    view="$(curl -sS -H "Authorization: Bearer $KEY" "$GATEWAY/v1/payments/$id")"
    grep -q '"status": *"\(SETTLED\|REJECTED\|REVERSED\)"' <<<"$view" && break
    sleep 0.2
  done
  printf '  %-32s %s\n' "${labels[$id]}" \
    "$(python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["status"], v.get("reasonCode") or "", "(correlationId " + v["correlationId"] + ")")' <<<"$view")"
  notified="$(curl -sS "$NOTIFICATIONS/v1/payments/$id/notifications" |
    python3 -c 'import json,sys; print(", ".join("{} {} {}".format(n["kind"], n["channel"], n["state"]) for n in json.load(sys.stdin)["notifications"]))')"
  [[ -z "$notified" ]] || printf '  %-32s told: %s\n' "" "$notified"
done

# A card transaction, signed as the processor signs it: posted at once from
# the card's account (card 4821337 belongs to the payer above).
card_id="demo-$run_id"
python3 - "$card_id" "${PAYSTREAM_GATEWAY_WEBHOOK_SECRET:-dev-webhook-secret}" >"$RUN_DIR/demo-webhook.json" <<'PY'
import base64, hashlib, hmac, json, sys, uuid
card_transaction_id, secret = sys.argv[1], sys.argv[2]
payload = json.dumps({"cardtransactions": [{
    "cardtransactionId": card_transaction_id, "cardId": "4821337", "amount": "15.00",
    "currency": "EUR", "cardtransactionStatus": "VALIDATED", "merchantName": "SNCF Automate",
    "merchantCountry": "FR", "codeStatus": "170006", "createdDate": "2026-11-30 09:30:00"}]})
signature = base64.b64encode(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()).decode()
body = '{"webhook":"cardtransaction.create","webhook_id":"%s","object":"cardtransaction","object_id":"%s","object_payload":%s,"object_payload_signature":"%s"}' % (
    uuid.uuid4(), card_transaction_id, payload, signature)
print(body)
PY
posted_debits() {
  curl -sS "$LEDGER/v1/accounts/GB82WEST12345698765432?movements=0" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["postedDebitsMinor"])'
}
before="$(posted_debits)"
printf '  %-32s %s\n' "card transaction (15.00 EUR)" \
  "$(curl -sS -o /dev/null -w 'webhook answered %{http_code}' -X POST "$GATEWAY/v1/webhooks/card-transactions" \
      -H 'Content-Type: application/json' --data-binary @"$RUN_DIR/demo-webhook.json")"
for _ in $(seq 1 100); do
  (( $(posted_debits) > before )) && break
  sleep 0.2
done

echo "The payer's account in the ledger ($LEDGER/v1/accounts/GB82WEST12345698765432):"
curl -sS "$LEDGER/v1/accounts/GB82WEST12345698765432?movements=3" | python3 -c '
import json, sys
a = json.load(sys.stdin)
print("  available {:,.2f} {}, held {:,.2f}, posted debits {:,.2f}".format(
    a["availableMinor"] / 100, a["currency"], a["pendingDebitsMinor"] / 100, a["postedDebitsMinor"] / 100))
for m in a["movements"]:
    print("  {} {:<12} {:<6} {:>10,.2f}  payment {}".format(
        m["at"][:19], m["kind"], m["direction"], m["amountMinor"] / 100, m["paymentId"]))
'

echo "The ledger's invariants (cbs-debit ledger check):"
"$DEVSTACK_ROOT/target/debug/cbs-debit" ledger check | sed 's/^/  /'

# A load through the whole pipeline, followed to its final states.
echo
echo "A load of ${PAYSTREAM_DEMO_LOAD:-2000} payments (paystream load):"
"$DEVSTACK_ROOT/target/debug/paystream" load --count "${PAYSTREAM_DEMO_LOAD:-2000}" | sed 's/^/  /'

# The whole life of the settled and the reversed payment, from the audit log.
for label in "clean payment" "rejected by the rail"; do
  for id in "${ids[@]}"; do
    [[ "${labels[$id]}" == "$label" ]] || continue
    for _ in $(seq 1 50); do
      "$DEVSTACK_ROOT/target/debug/paystream" trace "$id" --json 2>/dev/null | grep -q '"notification.sent"' && break
      sleep 0.2
    done
    echo
    echo "paystream trace $id ($label):"
    "$DEVSTACK_ROOT/target/debug/paystream" trace "$id" | sed 's/^/  /'
  done
done

echo
echo "Where to look: logs in $LOG_DIR (JSON lines, one file per process);"
echo "metrics on /metrics of each service (gateway :8080, validation :8082, cbs-debit :8083,"
echo "rtgs-gateway :8084, audit :8085, notifications :8086); the rail's and the provider's own"
echo "records on the sandbox (:8090/admin/rtgs/report, :8090/admin/notify/report);"
echo "'paystream trace <paymentId>', 'paystream lag', 'paystream ledger check' any time."
