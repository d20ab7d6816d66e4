#!/usr/bin/env bash
# Runs the steps of README.md in order and checks each answer, like Envoy's sandboxes'
# verify-common.sh: every step is logged, a failed check prints the answer it got and the logs of
# every container, and the sandbox is always torn down (trap on EXIT).
#
#   envoy/sandbox/verify.sh          (needs Docker with Compose v2, curl, Node.js >= 20)
#
# Keep the commands here and in README.md identical: test/envoy/sandbox.test.ts compares them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

FAILED=0

run_log () {
    local message="$1"; shift
    printf '\n\033[1m>>> %s\033[0m\n' "$message"
    printf '$ %s\n' "$*"
}

fail () {
    printf '\033[31mFAIL: %s\033[0m\n' "$*" >&2
    FAILED=1
    exit 1
}

dump_logs () {
    printf '\n>>> container status and logs\n' >&2
    docker compose ps >&2 || true
    docker compose logs --no-color >&2 || true
}

cleanup () {
    local rc=$?
    if [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
        dump_logs
    fi
    printf '\n>>> tear down\n'
    docker compose down --volumes --remove-orphans || true
    exit "$rc"
}
trap cleanup EXIT

# responds_with EXPECTED COMMAND...: the output of COMMAND contains EXPECTED (fixed string).
responds_with () {
    local expected="$1"; shift
    local out
    printf '$ %s\n' "$*"
    out="$("$@" 2>&1)" || fail "command failed: $*"$'\n'"$out"
    if ! grep -qF -- "$expected" <<< "$out"; then
        fail "expected '$expected' in the answer of: $*"$'\n'"$out"
    fi
    printf '  ok: %s\n' "$expected"
}

# responds_without UNEXPECTED COMMAND...: the output of COMMAND does not contain UNEXPECTED.
responds_without () {
    local unexpected="$1"; shift
    local out
    printf '$ %s\n' "$*"
    out="$("$@" 2>&1)" || fail "command failed: $*"$'\n'"$out"
    if grep -qF -- "$unexpected" <<< "$out"; then
        fail "did not expect '$unexpected' in the answer of: $*"$'\n'"$out"
    fi
    printf '  ok: no %s\n' "$unexpected"
}

# eventually_responds_with SECONDS EXPECTED COMMAND...: retry COMMAND once a second until its
# output contains EXPECTED (mirrored requests are fire and forget: they arrive a little later).
eventually_responds_with () {
    local seconds="$1" expected="$2"; shift 2
    local out="" i
    printf '$ %s   (up to %ss)\n' "$*" "$seconds"
    for ((i = 0; i < seconds; i++)); do
        if out="$("$@" 2>&1)" && grep -qF -- "$expected" <<< "$out"; then
            printf '  ok: %s\n' "$expected"
            return 0
        fi
        sleep 1
    done
    fail "no '$expected' within ${seconds}s from: $*"$'\n'"$out"
}

# field NAME COMMAND...: print the value of the "NAME=value" line in the output of COMMAND.
field () {
    local name="$1"; shift
    "$@" | sed -n "s/^${name}=//p" | head -n 1
}

run_log "Step 1: build the filter"
npm --prefix ../.. run build
[ -f ../../build/filter.wasm ] || fail "../../build/filter.wasm was not built"

run_log "Step 2: start the sandbox"
docker compose up --build --detach --wait
eventually_responds_with 60 "LIVE" curl -s http://localhost:19901/ready
eventually_responds_with 60 "LIVE" curl -s http://localhost:29901/ready
eventually_responds_with 60 "200" curl -s -o /dev/null -w '%{http_code}' http://localhost:18080/readyz

run_log "Step 3: a GET through the test stack"
responds_with '"quote"' curl -s -H 'x-request-id: sandbox-quote-1' http://localhost:10000/api/quote
responds_with "call GET http://upstream:9000/quote 200 pass" curl -s http://localhost:13000/__seen/sandbox-quote-1
responds_with "call GET http://169.254.169.254/latest/meta-data/instance-id 200 -" curl -s http://localhost:13000/__seen/sandbox-quote-1
quote_sha="$(field body_sha256 curl -s http://localhost:13000/__seen/sandbox-quote-1)"
[ -n "$quote_sha" ] || fail "no body_sha256 for sandbox-quote-1 on the test app"

run_log "Step 4: the mirror stack got the same answer, from the record"
eventually_responds_with 30 "call GET http://upstream:9000/quote 200 hit" curl -s http://localhost:23000/__seen/sandbox-quote-1
responds_with "body_sha256=${quote_sha}" curl -s http://localhost:23000/__seen/sandbox-quote-1
responds_with "host=localhost:10000" curl -s http://localhost:23000/__seen/sandbox-quote-1
responds_without "-shadow" curl -s http://localhost:23000/__seen/sandbox-quote-1

run_log "Step 5: a POST with a body (buffered, replayed)"
responds_with '"order_id"' curl -s -H 'x-request-id: sandbox-order-1' -H 'content-type: application/json' -d '{"item":"book","qty":1}' http://localhost:10000/api/orders
responds_with "call POST http://upstream:9000/orders 201 pass" curl -s http://localhost:13000/__seen/sandbox-order-1
order_sha="$(field body_sha256 curl -s http://localhost:13000/__seen/sandbox-order-1)"
eventually_responds_with 30 "call POST http://upstream:9000/orders 201 hit" curl -s http://localhost:23000/__seen/sandbox-order-1
responds_with "body_sha256=${order_sha}" curl -s http://localhost:23000/__seen/sandbox-order-1

run_log "Step 6: the upstream saw only the test stack; metadata calls passed untouched"
responds_with "total=2" curl -s http://localhost:19000/__stats
responds_with "total=2" curl -s http://localhost:19100/__stats
responds_with "tagged=0" curl -s http://localhost:19100/__stats
responds_with "# TYPE" curl -s http://localhost:18080/metrics

run_log "Step 7: cache down — test traffic still served, mirror refused"
docker compose stop mirror-cache
responds_with '"quote"' curl -s -H 'x-request-id: sandbox-quote-2' http://localhost:10000/api/quote
responds_with "call GET http://upstream:9000/quote 200 -" curl -s http://localhost:13000/__seen/sandbox-quote-2
eventually_responds_with 30 "call GET http://upstream:9000/quote 503 unavailable" curl -s http://localhost:23000/__seen/sandbox-quote-2
responds_with "total=3" curl -s http://localhost:19000/__stats
docker compose start mirror-cache

run_log "Step 8: tear down"
docker compose down --volumes --remove-orphans
trap - EXIT
printf '\n\033[32mAll sandbox checks passed.\033[0m\n'
