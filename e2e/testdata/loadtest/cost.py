"""Throughput and CPU per request of two builds of arq, side by side: the
message append (POST /v1/sessions/{id}/messages, read-your-writes) and the
context read (GET /v1/sessions/{id}/context, a query no one asked before),
each under wrk at 1 and 32 connections, runs alternating between the two
builds (a, b, b, a, ...) so that the machine's drift falls on both.

CPU per request is counted from /proc: the server process's user and system
time, and that of the Postgres backends serving its database (their process
titles name it), over each wrk run, divided by the requests it completed.

Needs: Go, Postgres and Redis as for the tests, python3 and wrk. From the
repository root:

    python3 e2e/testdata/loadtest/cost.py BASE_COMMIT [rounds]

builds BASE_COMMIT (in a temporary worktree) and the working tree, and
prints one line per run and measure.
"""
import json, os, random, shutil, subprocess, sys, tempfile, time, urllib.request

BASE = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
PORT = 18082
API = "http://127.0.0.1:%d/v1" % PORT
PG = ["psql", "-U", "postgres", "-h", "127.0.0.1", "-qAt", "-v", "ON_ERROR_STOP=1"]
TICK = os.sysconf("SC_CLK_TCK")
work = tempfile.mkdtemp()
here = os.path.dirname(os.path.abspath(__file__))


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def build():
    wt = os.path.join(work, "base")
    sh("git", "worktree", "add", "--detach", wt, BASE)
    try:
        sh("go", "build", "-o", os.path.join(work, "arq-a"), "./cmd/arq", cwd=wt)
    finally:
        sh("git", "worktree", "remove", "--force", wt)
    sh("go", "build", "-o", os.path.join(work, "arq-b"), "./cmd/arq")


def post(path, body, headers={}):
    req = urllib.request.Request(API + path, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"{}")


def cpu(pids):
    total = 0
    for pid in pids:
        try:
            f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])  # utime, stime
        except OSError:
            pass
    return total


def backends(db):
    out = subprocess.run(["pgrep", "-f", "postgres: .* %s " % db], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def measure(server, db, label, name, c, args):
    pids = backends(db)
    s0, p0 = cpu([server]), {p: cpu([p]) for p in pids}
    out = sh("wrk", "-t%d" % min(c, 2), "-c%d" % c, "-d10s", *args)
    s1 = cpu([server])
    p1 = sum(cpu([p]) - p0.get(p, 0) for p in set(pids) | set(backends(db)))
    rps = float([l for l in out.splitlines() if l.startswith("Requests/sec")][0].split()[1])
    n = rps * 10
    bad = [l.strip() for l in out.splitlines() if "Non-2xx" in l or "Socket errors" in l]
    print("%s %-14s c=%-2d %8.0f req/s  server %.3f ms CPU/req  postgres %.3f ms CPU/req %s" % (
        label, name, c, rps, (s1 - s0) * 1000 / TICK / n, p1 * 1000 / TICK / n, " ".join(bad)), flush=True)


def run(label):
    db = "arq_cost_" + label
    sh(*PG, "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, "postgres")
    env = dict(os.environ, ARQ_DATABASE_URL="postgres://postgres@127.0.0.1:5432/%s?sslmode=disable" % db,
               ARQ_HTTP_ADDR="127.0.0.1:%d" % PORT, ARQ_LOG_LEVEL="warn",
               ARQ_MASTER_KEY="dGVzdHMtb25seS1tYXN0ZXIta2V5LTMyLWJ5dGVzISE=")
    srv = subprocess.Popen([os.path.join(work, "arq-" + label), "serve"], env=env,
                           stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, label + ".log"), "a"))
    try:
        for _ in range(60):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/healthz" % PORT)
                break
            except OSError:
                time.sleep(1)
        random.seed(7)
        words = ["w%d" % i for i in range(2000)]
        text = lambda n: " ".join(random.choices(words, k=n))
        uid = post("/users", {"external_id": "cost-" + label, "name": "Cost"})["id"]
        sids = [post("/users/%s/sessions" % uid, {"title": "t"})["id"] for _ in range(64)]
        ctx = sids[0]
        for i in range(10):
            post("/sessions/%s/messages" % ctx, {"messages": [{"role": ["user", "assistant"][j % 2], "content": text(20)} for j in range(100)]})
        for i in range(500):
            post("/users/%s/memories" % uid, {"type": "semantic", "content": text(12), "importance": 0.5}, {"Prefer": "respond-async"})
        for _ in range(300):
            if sh(*PG, "-d", db, "-c", "SELECT count(*) FROM snapshots_due").strip() == "0":
                break
            time.sleep(1)
        sh(*PG, "-d", db, "-c", "ANALYZE")
        lua = os.path.join(work, "append.lua")
        open(lua, "w").write("""
local sids = {%s}
local n = 0
request = function()
  n = n + 1
  local body = '{"role":"user","content":"an ordinary message of some twenty words, about the garden, the river and what to plant there next spring ' .. n .. '"}'
  return wrk.format("POST", "/v1/sessions/" .. sids[(n %% #sids) + 1] .. "/messages", {["Content-Type"] = "application/json"}, body)
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
        for c in (1, 32):
            measure(srv.pid, db, label, "context-cold", c, ["-s", cold, "http://127.0.0.1:%d" % PORT])
        for c in (1, 32):
            measure(srv.pid, db, label, "append", c, ["-s", lua, "http://127.0.0.1:%d" % PORT])
    finally:
        srv.terminate()
        srv.wait()
        sh(*PG, "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, "postgres")


try:
    build()
    print("a = %s, b = the working tree" % BASE, flush=True)
    for r in range(ROUNDS):
        for label in (("a", "b") if r % 2 == 0 else ("b", "a")):
            run(label)
finally:
    shutil.rmtree(work)
