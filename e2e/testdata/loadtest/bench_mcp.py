"""The MCP context tool beside the REST context read, in the same run:
latency and CPU per call at 1 and 32 clients (see BENCHMARKS.md, "MCP").

The load comes from a process of its own, mcpload (Go, beside this
script): REST is GET /v1/sessions/{id}/context?query=, MCP is tools/call
of the context tool over the streamable HTTP transport at /mcp (one MCP
client a connection), which the server serves as the same REST read
in-process and then renders as text too. Every call carries an API key
(read, write) the admin key makes; the rate limit is far above the load,
so each request is counted and none refused.

CPU per call is counted from /proc as cost.py counts it: the server
process's user and system time, and that of the Postgres backends
serving its database, over each run, divided by the calls it completed;
Redis's and the load generator's apart (an MCP client decodes far more
than a REST one, on the same cores), and how many cores everything else
on the machine kept busy meanwhile.

The fixture: one user, a session of 1,000 messages (10-40 words) and
2,000 memories (5-30 words). Warm: one query again and again (the cache
answers); cold: a query no one asked before, each call.

Needs: Go, Postgres and Redis as for the tests, python3. From the
repository root:

    python3 e2e/testdata/loadtest/bench_mcp.py [rounds] [--port N] [--seconds S]

It builds arq and mcpload, serves a fresh database arq_mcpbench_PORT on
127.0.0.1:PORT (18090 by default), and drops it at the end.
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procstat  # noqa: E402
from procstat import PG, TICK, backends, children, cpu, machine, redis, settle, sh  # noqa: E402

args = argparse.ArgumentParser(description="the MCP context tool beside the REST context read")
args.add_argument("rounds", nargs="?", type=int, default=2)
args.add_argument("--port", type=int, default=18090)
args.add_argument("--seconds", type=int, default=10)
a = args.parse_args()

ADMIN_KEY, RATE = "mcpbench-admin", 1000000
work = tempfile.mkdtemp()
db = "arq_mcpbench_%d" % a.port
base = "http://127.0.0.1:%d" % a.port
sh("go", "build", "-o", os.path.join(work, "arq"), "./cmd/arq")
sh("go", "build", "-o", os.path.join(work, "mcpload"), "./e2e/testdata/loadtest/mcpload")
srv = procstat.serve(os.path.join(work, "arq"), db, a.port,
                     {"ARQ_ADMIN_KEY": ADMIN_KEY, "ARQ_RATE_LIMIT": str(RATE), "ARQ_RATE_LIMIT_BURST": str(RATE),
                      "ARQ_LOG_SIGNING_KEY_FILE": os.path.join(work, "log.key")},
                     os.path.join(work, "serve.log"))
results = []
try:
    key = procstat.post(base + "/v1", "/admin/keys", {"name": "mcpbench", "scopes": ["read", "write"]},
                        {"Authorization": "Bearer " + ADMIN_KEY})["key"]
    load = [os.path.join(work, "mcpload"), "-base", base, "-key", key]
    sid = json.loads(sh(*load, "setup"))["sid"]
    print("fixture loaded; waiting for the background work on it to end", file=sys.stderr, flush=True)
    for _ in range(600):
        if sh(*PG, "-d", db, "-c", "SELECT count(*) FROM snapshots_due").strip() == "0":
            break
        time.sleep(1)
    sh(*PG, "-d", db, "-c", "ANALYZE")

    def measure(face, c, query):
        settle(db)
        pids = backends(db)
        s0, p0, r0, w0, m0, t0 = cpu([srv.pid]), {p: cpu([p]) for p in pids}, cpu(redis()), children(), machine(), time.time()
        flags = ["-sid", sid, "-face", face, "-c", str(c), "-d", "%ds" % a.seconds] + (["-cold"] if query == "cold" else [])
        out = json.loads(sh(*load, *flags))
        s1, r1, w1, m1, t1 = cpu([srv.pid]), cpu(redis()), children(), machine(), time.time()
        after = backends(db)
        p1 = sum(cpu([p]) - p0.get(p, 0) for p in after)
        gone = len(set(pids) - set(after))
        n = out["calls"]
        others = (m1 - m0 - (s1 - s0) - p1 - (r1 - r0) - (w1 - w0)) / TICK / (t1 - t0)
        r = dict(out, query=query, server=(s1 - s0) * 1000 / TICK / n, postgres=p1 * 1000 / TICK / n, redis=(r1 - r0) * 1000 / TICK / n,
                 load=(w1 - w0) * 1000 / TICK / n, others=others)
        print("%-4s %-4s c=%-2d %7.0f calls/s  p50 %6.2f p99 %6.2f ms  server %.3f  postgres %.3f ms CPU/call  (redis %.3f, load generator %.3f; others %.2f cores)%s%s" % (
            face, query, c, r["rps"], r["p50"], r["p99"], r["server"], r["postgres"], r["redis"], r["load"], others,
            "  (%d backends gone, uncounted)" % gone if gone else "",
            "  ERRORS %d: %s" % (out["errors"], out.get("first_error")) if out["errors"] else ""), flush=True)
        if out["errors"]:
            raise SystemExit("errors in the run")
        return r

    for rnd in range(a.rounds):
        print("=== round %d" % (rnd + 1), flush=True)
        for query in ("warm", "cold"):
            for c in (1, 32):
                faces = ("rest", "mcp") if rnd % 2 == 0 else ("mcp", "rest")
                for face in faces:
                    results.append(measure(face, c, query))
    print("=== medians")
    for query in ("warm", "cold"):
        for c in (1, 32):
            for face in ("rest", "mcp"):
                pick = [r for r in results if r["face"] == face and r["c"] == c and r["query"] == query]
                med = lambda k: procstat.median([r[k] for r in pick])
                print("%-4s %-4s c=%-2d %7.0f calls/s  p50 %6.2f p99 %6.2f ms  CPU %.3f ms/call (server %.3f + postgres %.3f)  load generator %.3f ms/call" % (
                    face, query, c, med("rps"), med("p50"), med("p99"), med("server") + med("postgres"), med("server"), med("postgres"), med("load")))
finally:
    procstat.stop(srv, db)
    shutil.rmtree(work)
