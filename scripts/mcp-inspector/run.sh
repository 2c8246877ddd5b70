#!/bin/bash
# Drives `arq mcp` with a third-party MCP client: the MCP inspector's
# command-line mode (@modelcontextprotocol/inspector, pinned in
# package-lock.json). It lists the tools, registers a user, starts a
# session, adds a message, reads the session's context (as text and
# structured), and checks that bad input is a tool error; then the same
# over HTTP at arq serve's /mcp. It exits non-zero at the first answer
# that is not what it should be.
#
# Needs: Go, node 20 and npm, Postgres (and Redis, optional) as for the
# tests. From anywhere:   scripts/mcp-inspector/run.sh
# It builds arq, makes a database arq_mcp_inspector on the local Postgres
# (PGHOST, PGUSER: 127.0.0.1, postgres), runs each step as one
# `arq mcp` process with an admin key (ARQ_ADMIN_KEY) it is given as
# ARQ_MCP_KEY, then drops the database and the key files it made.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d)
DB=arq_mcp_inspector
PGHOST=${PGHOST:-127.0.0.1}
PGUSER=${PGUSER:-postgres}
PG="psql -h $PGHOST -U $PGUSER -v ON_ERROR_STOP=1 -qAt"
trap '$PG -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres >/dev/null || true; rm -rf "$WORK"' EXIT

(cd "$ROOT" && go build -o "$WORK/arq" ./cmd/arq)
[ -x "$HERE/node_modules/.bin/mcp-inspector" ] || (cd "$HERE" && npm ci --no-audit --no-fund >&2)
$PG -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres >/dev/null
KEY=inspector-$RANDOM$RANDOM

# inspect runs one inspector call against a fresh `arq mcp` process; its
# stdout is the inspector's JSON answer.
inspect() {
  "$HERE/node_modules/.bin/mcp-inspector" --cli \
    -e "ARQ_DATABASE_URL=postgres://$PGUSER@$PGHOST:5432/$DB?sslmode=disable" \
    -e "ARQ_MASTER_KEY_FILE=$WORK/master.key" -e "ARQ_LOG_SIGNING_KEY_FILE=$WORK/log.key" \
    -e "ARQ_ADMIN_KEY=$KEY" -e "ARQ_MCP_KEY=$KEY" -e "ARQ_LOG_LEVEL=warn" \
    "$WORK/arq" mcp "$@"
}

# check reads an inspector answer on stdin and runs a Python expression
# over it (r); it prints what it names, or fails with the answer.
check() {
  python3 -c '
import json, sys
what, expr = sys.argv[1], sys.argv[2]
r = json.load(sys.stdin)
text = "".join(c.get("text", "") for c in r.get("content", []))
sc = r.get("structuredContent") or {}
try:
    out = eval(expr)
except Exception as e:
    out = None
if out in (None, False):
    sys.exit("FAIL %s: %s" % (what, json.dumps(r)[:2000]))
print(out if out is not True else "", end="")
print("ok   %s" % what, file=sys.stderr)
' "$@"
}

inspect --method tools/list | check "tools/list lists the tools" \
  'set(t["name"] for t in r["tools"]) >= {"user","start_session","add_message","remember","recall","context","update_memory","forget_memory","memory_history","memory_provenance"}'
USER_ID=$(inspect --method tools/call --tool-name user --tool-arg external_id=inspector-1 name=Inspector |
  check "user registers a user" 'not r.get("isError") and sc["id"]')
SESSION_ID=$(inspect --method tools/call --tool-name start_session --tool-arg "user_id=$USER_ID" title=inspection |
  check "start_session starts a session" 'not r.get("isError") and sc["id"]')
inspect --method tools/call --tool-name add_message --tool-arg "session_id=$SESSION_ID" role=user "content=Remember that I take my tea without sugar." |
  check "add_message adds a message" 'not r.get("isError") and sc["seq"] == 1' >/dev/null
inspect --method tools/call --tool-name remember --tool-arg "user_id=$USER_ID" type=semantic "content=Takes tea without sugar" |
  check "remember stores a memory" 'not r.get("isError") and sc["id"]' >/dev/null
inspect --method tools/call --tool-name context --tool-arg "session_id=$SESSION_ID" query=tea |
  check "context answers the window as text and structured" \
  'not r.get("isError") and "user: Remember that I take my tea without sugar." in text and "- (semantic) Takes tea without sugar" in text and len(sc["messages"]) == 1' >/dev/null
# The inspector exits 1 on a tool error, which is the answer wanted here.
{ inspect --method tools/call --tool-name remember --tool-arg "user_id=$USER_ID" type=nope content=tea importance=3 2>/dev/null || true; } |
  check "remember refuses bad input as REST does (422)" 'r.get("isError") and sc["status"] == 422 and "- type:" in text and "- importance:" in text' >/dev/null
echo "arq mcp answered the MCP inspector as it should" >&2

# The same server over HTTP: arq serve on a port of its own (PORT, 18093
# by default), the inspector at /mcp with the key as a bearer token.
PORT=${PORT:-18093}
ARQ_DATABASE_URL="postgres://$PGUSER@$PGHOST:5432/$DB?sslmode=disable" ARQ_HTTP_ADDR=127.0.0.1:$PORT \
  ARQ_MASTER_KEY_FILE=$WORK/master.key ARQ_LOG_SIGNING_KEY_FILE=$WORK/log.key ARQ_ADMIN_KEY=$KEY ARQ_LOG_LEVEL=warn \
  "$WORK/arq" serve 2>"$WORK/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; $PG -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres >/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 60); do curl -sf "127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.5; done
"$HERE/node_modules/.bin/mcp-inspector" --cli "http://127.0.0.1:$PORT/mcp" --transport http --header "Authorization: Bearer $KEY" \
  --method tools/call --tool-name user --tool-arg external_id=inspector-1 |
  check "/mcp finds the user over HTTP" "not r.get('isError') and sc['id'] == '$USER_ID'" >/dev/null
curl -s -o /dev/null -w '%{http_code} %{content_type}' -X POST "http://127.0.0.1:$PORT/mcp" -H 'Content-Type: application/json' \
  -H 'Accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' |
  grep -qx '401 application/problem+json' || { echo "FAIL /mcp without a key is not a 401 problem" >&2; exit 1; }
echo "ok   /mcp without a key is a 401 problem" >&2
echo "arq serve's /mcp answered the MCP inspector as it should" >&2
