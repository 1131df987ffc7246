#!/bin/sh
# Post {"text", "event": "failed", "unit", "host", "time"} to $RETRAIN_WEBHOOK: what systemd's
# OnFailure= runs (dl-pipeline-notify@.service). The URL goes to curl on its standard input, not
# its command line, so it never shows in `ps`; curl gives up after 10 s and never prints it.
set -eu
unit="${1:-dl-pipeline-retrain.service}"
if [ -z "${RETRAIN_WEBHOOK:-}" ]; then
    echo "notify-failure: RETRAIN_WEBHOOK is not set; nothing sent" >&2
    exit 0
fi
host="$(hostname)"
now="$(date -u +%Y-%m-%dT%H:%M:%S+00:00)"
body=$(printf '{"text": "%s failed on %s (see journalctl -u %s)", "event": "failed", "unit": "%s", "model": null, "versions": {}, "reason": "systemd unit failed", "host": "%s", "time": "%s"}' \
    "$unit" "$host" "$unit" "$unit" "$host" "$now")
printf 'url = "%s"\n' "$RETRAIN_WEBHOOK" | curl --config - --silent --show-error --fail \
    --max-time 10 --proto =https,http --header 'Content-Type: application/json' \
    --data "$body" --output /dev/null || {
    echo "notify-failure: the webhook did not take the alert (curl exit $?)" >&2
    exit 1
}
echo "notify-failure: sent the failure of $unit"
