"""Throughput and CPU per request of two builds of arq, side by side: the
message append (POST /v1/sessions/{id}/messages, read-your-writes) and the
context read (GET /v1/sessions/{id}/context, a query no one asked before),
each under wrk at 1 and 32 connections, runs alternating between the two
builds (a, b, b, a, ...) so that the machine's drift falls on both.

CPU per request is counted from /proc: the server process's user and system
time, and that of the Postgres backends serving its database (their process
titles name it), over each wrk run, divided by the requests it completed.
The Redis server's is printed apart: it is shared with whatever else runs.
So is how many cores everything else kept busy meanwhile (all the
machine's CPU time but the server's, its backends', Redis's and wrk's,
so Postgres's own WAL writer and checkpointer too): on a shared machine,
what else ran. A run that gets any answer but a 2xx fails. Each run
starts once the database's backends have stayed the same for a second
(the previous run's cut-short requests may close connections); a backend
that still exits during a run is left out of its count, and the line
says so (see procstat.py, which search.py shares).

Each run measures its anchors too, by pgbench on the same database: a
primary-key SELECT of a message beside the context read, a single-row
INSERT beside the append. The summary at the end gives, per build, the
medians of what issue 20 targets: the append's throughput as a share of
the INSERT's and its CPU per request, the context read's CPU per request
and its p99 as a multiple of the SELECT's.

Needs: Go, Postgres and Redis as for the tests, python3 and wrk. From the
repository root:

    python3 e2e/testdata/loadtest/cost.py BASE_COMMIT [rounds] [--auth-a MODE] [--auth-b MODE]
        [--only context|append] [--port N]

builds BASE_COMMIT (a, in a temporary worktree) and the working tree (b),
and prints one line per run and measure. --only runs the context read or
the append alone (with its anchor); --port serves on another port and
names the databases after it, so that two people sharing the machine can
measure at once; --env-a and --env-b add settings to one build's server
(e.g. --env-b ARQ_EXTRACTOR=chat --env-b ARQ_EXTRACTOR_URL=... with
fakellm.py serving, to measure the append with extraction on). How each build is called, its MODE:

- open (the default): no ARQ_ADMIN_KEY, the API runs open, no limits;
- key: ARQ_ADMIN_KEY set, and everything sent with an API key (read and
  write) the admin key makes; a build with rate limits has ARQ_RATE_LIMIT
  and its burst at RATE, far above the load, so each request is counted
  and none refused;
- tenant: the same with a tenant of its own (rate_limit and rate_burst
  RATE) made by the admin key, and a key of that tenant, which makes the
  user and the sessions; the run checks that its answers carry the
  tenant's limit.
"""
import argparse, functools, os, random, shutil, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procstat  # noqa: E402
from procstat import PG, measure, pgbench, sh  # noqa: E402

args = argparse.ArgumentParser(description="two builds of arq side by side under wrk")
args.add_argument("base", help="the commit to build as a")
args.add_argument("rounds", nargs="?", type=int, default=2, help="rounds of a b (then b a, ...)")
args.add_argument("--auth-a", choices=("open", "key", "tenant"), default="open", help="how a is called")
args.add_argument("--auth-b", choices=("open", "key", "tenant"), default="open", help="how b is called")
args.add_argument("--only", choices=("context", "append"), help="run only this measure (and its anchor)")
args.add_argument("--port", type=int, default=18082, help="the port the builds serve on")
args.add_argument("--env-a", action="append", default=[], metavar="KEY=VALUE", help="a setting of a's server (repeatable)")
args.add_argument("--env-b", action="append", default=[], metavar="KEY=VALUE", help="a setting of b's server (repeatable)")
args = args.parse_args()
BASE, ROUNDS = args.base, args.rounds
AUTH = {"a": args.auth_a, "b": args.auth_b}
EXTRA = {label: dict(kv.split("=", 1) for kv in kvs) for label, kvs in (("a", args.env_a), ("b", args.env_b))}
ADMIN_KEY = "cost-admin-key-not-a-secret"
RATE = 1000000
PORT = args.port
# The default port keeps the databases' names of old.
DB_SUFFIX = "" if PORT == 18082 else "_%d" % PORT
API = "http://127.0.0.1:%d/v1" % PORT
work = tempfile.mkdtemp()
here = os.path.dirname(os.path.abspath(__file__))


def post(path, body, headers={}):
    return procstat.post(API, path, body, headers)


def serve_env(mode):
    """The server's settings for an auth mode (a build ignores those it
    does not know)."""
    if mode == "open":
        return {}
    return {"ARQ_ADMIN_KEY": ADMIN_KEY, "ARQ_RATE_LIMIT": str(RATE), "ARQ_RATE_LIMIT_BURST": str(RATE)}


def credential(label, mode):
    """Makes what mode calls with, on the server just started, and returns
    the headers every request then carries."""
    if mode == "open":
        return {}
    admin = {"Authorization": "Bearer " + ADMIN_KEY}
    key = {"name": "cost-" + label, "scopes": ["read", "write"]}
    if mode == "tenant":
        post("/admin/tenants", {"id": "cost-" + label, "name": "Cost", "rate_limit": RATE, "rate_burst": RATE}, admin)
        key["tenant"] = "cost-" + label
    headers = {"Authorization": "Bearer " + post("/admin/keys", key, admin)["key"]}
    with urllib.request.urlopen(urllib.request.Request(API + "/users?limit=1", headers=headers)) as r:
        limit = r.headers.get("RateLimit-Limit")
    if mode == "tenant" and limit != str(RATE):
        raise SystemExit("%s: a tenant's key is answered with RateLimit-Limit %r, not %d" % (label, limit, RATE))
    print("%s: %s, RateLimit-Limit %s" % (label, key.get("tenant", "a key of no tenant"), limit), flush=True)
    return headers


def run(label):
    db = "arq_cost_" + label + DB_SUFFIX
    srv = procstat.serve(os.path.join(work, "arq-" + label), db, PORT, {**serve_env(AUTH[label]), **EXTRA[label]}, os.path.join(work, label + ".log"))
    try:
        random.seed(7)
        words = ["w%d" % i for i in range(2000)]
        text = lambda n: " ".join(random.choices(words, k=n))
        auth = credential(label, AUTH[label])
        uid = post("/users", {"external_id": "cost-" + label, "name": "Cost"}, auth)["id"]
        sids = [post("/users/%s/sessions" % uid, {"title": "t"}, auth)["id"] for _ in range(64)]
        ctx = sids[0]
        for i in range(10):
            post("/sessions/%s/messages" % ctx, {"messages": [{"role": ["user", "assistant"][j % 2], "content": text(20)} for j in range(100)]}, auth)
        for i in range(500):
            post("/users/%s/memories" % uid, {"type": "semantic", "content": text(12), "importance": 0.5}, {"Prefer": "respond-async", **auth})
        for _ in range(300):
            if sh(*PG, "-d", db, "-c", "SELECT count(*) FROM snapshots_due").strip() == "0":
                break
            time.sleep(1)
        sh(*PG, "-d", db, "-c", "ANALYZE")
        lua = os.path.join(work, "append.lua")
        open(lua, "w").write("""
local sids = {%s}
local n = 0
local headers = {}
init = function(args)
  for k, v in pairs(wrk.headers) do headers[k] = v end  -- -H's too
  headers["Content-Type"] = "application/json"
end
request = function()
  n = n + 1
  local body = '{"role":"user","content":"an ordinary message of some twenty words, about the garden, the river and what to plant there next spring ' .. n .. '"}'
  return wrk.format("POST", "/v1/sessions/" .. sids[(n %% #sids) + 1] .. "/messages", headers, body)
end
""" % ",".join('"%s"' % s for s in sids[1:]))
        cold = os.path.join(work, "cold.lua")
        open(cold, "w").write("""
local words = {%s}
local n, salt = 0, ""
init = function(args) salt = string.gsub(tostring({}), "[^%%w]", "") end
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/sessions/%s/context?query=" .. words[(n %% #words) + 1] .. "+" .. salt .. n)
end
""" % (",".join('"%s"' % w for w in words[:200]), ctx))
        # Reads first, on the database as loaded: the appends leave
        # background work behind them (summaries of the sessions they
        # fill) that would fall on the reads' CPU.
        hs = [a for k, v in auth.items() for a in ("-H", "%s: %s" % (k, v))]
        # The anchors, in the same run: a primary-key SELECT of a message
        # and a single-row INSERT, by pgbench on the same database.
        mid = sh(*PG, "-d", db, "-c", "SELECT id FROM messages ORDER BY seq LIMIT 1").strip()
        sh(*PG, "-d", db, "-c", "CREATE TABLE anchor (id bigserial PRIMARY KEY, v text NOT NULL)")
        for c in (1, 32) if args.only in (None, "context") else ():
            results.append(pgbench(db, label, "pk-select", c, "SELECT content FROM messages WHERE id = '%s';\n" % mid))
            results.append(measure(srv.pid, db, label, "context-cold", c, ["-s", cold, *hs, "http://127.0.0.1:%d" % PORT]))
        for c in (1, 32) if args.only in (None, "append") else ():
            results.append(pgbench(db, label, "insert", c, "INSERT INTO anchor (v) VALUES ('an ordinary message of some twenty words');\n"))
            results.append(measure(srv.pid, db, label, "append", c, ["-s", lua, *hs, "http://127.0.0.1:%d" % PORT]))
    finally:
        procstat.stop(srv, db)


def summary():
    """The issue 20 targets per build: medians over its runs."""
    med, pick = procstat.median, functools.partial(procstat.pick, results)

    for label in ("a", "b"):
        runs = max(len(pick(label, "append", 1, "rps")), len(pick(label, "context-cold", 1, "rps")))
        if not runs:
            continue
        line = []
        for c in (1, 32) if pick(label, "append", 1, "rps") else ():
            ratio = [a / i for a, i in zip(pick(label, "append", c, "rps"), pick(label, "insert", c, "rps"))]
            cpu = [s + p for s, p in zip(pick(label, "append", c, "server"), pick(label, "append", c, "postgres"))]
            line.append("append c=%d: %.3f of INSERT, %.2f ms CPU" % (c, med(ratio), med(cpu)))
        for c in (1, 32) if pick(label, "context-cold", 1, "rps") else ():
            cpu = [s + p for s, p in zip(pick(label, "context-cold", c, "server"), pick(label, "context-cold", c, "postgres"))]
            p99 = [x / y for x, y in zip(pick(label, "context-cold", c, "p99"), pick(label, "pk-select", c, "p99"))]
            line.append("context-cold c=%d: %.2f ms CPU, p99 %.1f x pk-select's" % (c, med(cpu), med(p99)))
        print("%s (median of %d runs): %s" % (label, runs, "; ".join(line)), flush=True)


results = []
try:
    procstat.build(BASE, work)
    print("a = %s (%s), b = the working tree (%s)" % (BASE, AUTH["a"], AUTH["b"]), flush=True)
    for r in range(ROUNDS):
        for label in (("a", "b") if r % 2 == 0 else ("b", "a")):
            run(label)
    summary()
finally:
    shutil.rmtree(work)
