#!/bin/bash
# Context reads under a load tool, beside a primary-key SELECT measured in
# the same run (see BENCHMARKS.md, "Context windows under wrk").
#
# Needs: Go, Postgres and Redis as for the tests, python3, wrk and pgbench.
# From the repository root:   e2e/testdata/loadtest/run.sh [rounds]
# It builds arq, serves a fresh database arq_loadtest on 127.0.0.1:18081,
# loads the fixture, waits until the background work it causes (context
# snapshots of 5,000 assistant messages, summaries) is done, then runs
# each round: pgbench and wrk (warm: one query again and again; cold: a
# query no one asked before, each request) at 1 and 32 connections, 10 s
# each. The database is dropped at the end.
set -euo pipefail
ROUNDS=${1:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
DB=arq_loadtest
PG="psql -U postgres -h 127.0.0.1 -v ON_ERROR_STOP=1 -qAt"
go build -o "$WORK/arq" ./cmd/arq
$PG -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres
ARQ_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB?sslmode=disable" ARQ_HTTP_ADDR=127.0.0.1:18081 ARQ_LOG_LEVEL=warn \
  "$WORK/arq" serve > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; $PG -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres; rm -rf "$WORK"' EXIT
for i in $(seq 1 60); do curl -sf 127.0.0.1:18081/healthz > /dev/null && break; sleep 1; done
cd "$WORK"
python3 "$HERE/fixture.py" http://127.0.0.1:18081/v1 > /dev/null
echo "waiting for the background work on the fixture to end" >&2
for i in $(seq 1 600); do
  [ "$($PG -d $DB -c 'SELECT count(*) FROM snapshots_due')" = 0 ] && break; sleep 1
done
$PG -d $DB -c ANALYZE
python3 - <<'PY'
import json
f = json.load(open("fixture.json"))
words = ",".join('"%s"' % w for w in f["words"])
open("cold.lua", "w").write("""
local words = {%s}
local counter, salt = 0, ""
init = function(args) salt = string.gsub(tostring({}), "[^%%w]", "") end
request = function()
  counter = counter + 1
  local q = words[(counter %% #words) + 1] .. "+" .. words[(math.floor(counter / 7) %% #words) + 1] .. "+" .. salt .. counter
  return wrk.format("GET", "/v1/sessions/%s/context?query=" .. q)
end
""" % (words, f["sid"]))
open("warm.url", "w").write("http://127.0.0.1:18081/v1/sessions/%s/context?query=%s" % (f["sid"], f["q"]))
PY
echo "SELECT content FROM messages WHERE id = '$($PG -d $DB -c 'SELECT id FROM messages ORDER BY seq LIMIT 1')';" > pk.sql
URL=$(cat warm.url)
curl -sf -o /dev/null "$URL"
for r in $(seq 1 "$ROUNDS"); do
  echo "=== round $r"
  for c in 1 32; do
    j=$([ $c = 1 ] && echo 1 || echo 2)
    rm -f pgbench_log.*
    pgbench -h 127.0.0.1 -U postgres -n -c $c -j $j -T 10 -f pk.sql -l $DB > pgbench.txt 2>&1
    python3 - $c <<'PY'
import glob, sys
lat = sorted(int(l.split()[2]) for f in glob.glob("pgbench_log.*") for l in open(f))
tps = [l for l in open("pgbench.txt") if l.startswith("tps")][0].split()[2]
print("pk-select c=%s: p50 %.3f ms, p99 %.3f ms, %.0f req/s" % (sys.argv[1], lat[len(lat) // 2] / 1000, lat[int(len(lat) * 0.99)] / 1000, float(tps)))
PY
    echo "warm c=$c: $(wrk -t$j -c$c -d10s --latency "$URL" | grep -E '^ +(50|99)%|Requests/sec|Non-2xx' | tr -s ' ' | tr '\n' ' ')"
    echo "cold c=$c: $(wrk -t$j -c$c -d10s --latency -s cold.lua http://127.0.0.1:18081 | grep -E '^ +(50|99)%|Requests/sec|Non-2xx' | tr -s ' ' | tr '\n' ' ')"
  done
done
