"""Counting what a run of a load tool costs, from /proc: the CPU time of
the server process, of the Postgres backends serving its database (their
process titles name it), of Redis and of everything else, over each run,
per request; and what both load scripts do around it: build two commits,
serve a fresh database, post JSON. Shared by cost.py and search.py."""
import json, os, resource, shutil, socket, subprocess, tempfile, time, urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def build(base, work):
    """Builds base (in a temporary worktree) as work/arq-a and the working
    tree as work/arq-b."""
    wt = os.path.join(work, "base")
    sh("git", "worktree", "add", "--detach", wt, base)
    try:
        sh("go", "build", "-o", os.path.join(work, "arq-a"), "./cmd/arq", cwd=wt)
    finally:
        sh("git", "worktree", "remove", "--force", wt)
    sh("go", "build", "-o", os.path.join(work, "arq-b"), "./cmd/arq")


def post(api, path, body, headers={}):
    """POSTs body as JSON to api + path and returns the answer's JSON."""
    req = urllib.request.Request(api + path, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})
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


def redis():
    out = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def machine():
    """The CPU time every process spent (clock ticks): user, nice, system,
    irq, softirq and steal."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return f[0] + f[1] + f[2] + f[5] + f[6] + f[7]


def children():
    """The CPU time of the processes this one waited for (wrk), in ticks."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * TICK


def backends(db):
    out = subprocess.run(["pgrep", "-f", "postgres: .* %s " % db], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def settle(db):
    """Waits (up to 5 s) until the database's backends stay the same for a
    second. The end of a wrk run cuts its last requests short; a build
    whose pool closes the connections that sent a cancel request (see
    internal/pgcancel) closes them just after, and a backend that exits
    during the next run would take the CPU it spent before it out of
    that run's count."""
    last, since, end = None, time.time(), time.time() + 5
    while time.time() < end:
        now = set(backends(db))
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= 1:
            return
        time.sleep(0.1)


def latency(out, pct):
    """wrk's --latency percentile pct (50, 99) in ms."""
    for l in out.splitlines():
        f = l.split()
        if len(f) == 2 and f[0] == "%d%%" % pct:
            v = f[1]
            for unit, scale in (("us", 0.001), ("ms", 1), ("s", 1000)):
                if v.endswith(unit) and v[:-len(unit)].replace(".", "").isdigit():
                    return float(v[:-len(unit)]) * scale
    return float("nan")


def measure(server, db, label, name, c, args, seconds=10):
    """Runs wrk with args at c connections against server (its pid),
    whose database is db, prints one line of throughput, latency and CPU
    per request (the server's, its Postgres backends', Redis's apart),
    and returns them as a dict. Fails on any answer but a 2xx."""
    settle(db)
    pids = backends(db)
    s0, p0, r0, m0, w0, t0 = cpu([server]), {p: cpu([p]) for p in pids}, cpu(redis()), machine(), children(), time.time()
    out = sh("wrk", "-t%d" % min(c, 2), "-c%d" % c, "-d%ds" % seconds, "--latency", *args)
    s1, r1, m1, w1, t1 = cpu([server]), cpu(redis()), machine(), children(), time.time()
    # A backend gone by now took what it spent with it: it counts for
    # nothing (not minus its whole life) and the line says so.
    after = backends(db)
    p1 = sum(cpu([p]) - p0.get(p, 0) for p in after)
    gone = len(set(pids) - set(after))
    rps = float([l for l in out.splitlines() if l.startswith("Requests/sec")][0].split()[1])
    n = rps * seconds
    bad = [l.strip() for l in out.splitlines() if "Non-2xx" in l or "Socket errors" in l]
    if gone:
        bad.append("(%d backends gone, their CPU uncounted)" % gone)
    others = (m1 - m0 - (s1 - s0) - p1 - (r1 - r0) - (w1 - w0)) / TICK / (t1 - t0)
    r = {"label": label, "name": name, "c": c, "rps": rps, "p50": latency(out, 50), "p99": latency(out, 99),
         "server": (s1 - s0) * 1000 / TICK / n, "postgres": p1 * 1000 / TICK / n, "redis": (r1 - r0) * 1000 / TICK / n,
         "others": others}
    print("%s %-14s c=%-2d %8.0f req/s  p50 %6.2f p99 %6.2f ms  server %.3f ms CPU/req  postgres %.3f ms CPU/req  (redis %.3f, others %.2f cores) %s" % (
        label, name, c, rps, r["p50"], r["p99"], r["server"], r["postgres"], r["redis"], others, " ".join(bad)), flush=True)
    if any("Non-2xx" in l for l in bad):
        raise SystemExit("%s %s c=%d: answers other than 2xx:\n%s" % (label, name, c, out))
    return r


def pgbench(db, label, name, c, script, seconds=10):
    """Runs pgbench with script (SQL text) at c connections on db, the
    physical anchor of a run: prints and returns its throughput and
    latency percentiles, and the CPU per transaction of its backends."""
    path = os.path.join(tempfile.mkdtemp(), "bench.sql")
    open(path, "w").write(script)
    logdir = os.path.dirname(path)
    m0 = machine()
    out = sh("pgbench", "-h", "127.0.0.1", "-U", "postgres", "-n", "-c", str(c), "-j", str(min(c, 2)), "-T", str(seconds),
             "-f", path, "-l", "--log-prefix", os.path.join(logdir, "log"), db)
    m1 = machine()
    lat = sorted(int(l.split()[2]) for f in os.listdir(logdir) if f.startswith("log") for l in open(os.path.join(logdir, f)))
    shutil.rmtree(logdir)
    tps = float([l for l in out.splitlines() if l.startswith("tps")][0].split()[2])
    r = {"label": label, "name": name, "c": c, "rps": tps, "p50": lat[len(lat) // 2] / 1000, "p99": lat[int(len(lat) * 0.99)] / 1000,
         "machine": (m1 - m0) * 1000 / TICK / (tps * seconds)}
    print("%s %-14s c=%-2d %8.0f tx/s   p50 %6.2f p99 %6.2f ms  (all the machine's CPU %.3f ms/tx)" % (
        label, name, c, tps, r["p50"], r["p99"], r["machine"]), flush=True)
    return r


PG = ["psql", "-U", "postgres", "-h", "127.0.0.1", "-qAt", "-v", "ON_ERROR_STOP=1"]


def serve(binary, db, port, env, log):
    """Starts binary serving a fresh database db on port, with env added
    to the settings, its errors appended to log; returns the process once
    /healthz answers."""
    sh(*PG, "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, "postgres")
    env = dict(os.environ, ARQ_DATABASE_URL="postgres://postgres@127.0.0.1:5432/%s?sslmode=disable" % db,
               ARQ_HTTP_ADDR="127.0.0.1:%d" % port, ARQ_LOG_LEVEL="warn",
               ARQ_MASTER_KEY="dGVzdHMtb25seS1tYXN0ZXIta2V5LTMyLWJ5dGVzISE=", **env)
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit("something listens on port %d already" % port)
    srv = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=open(log, "a"))
    for _ in range(60):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port)
            break
        except OSError:
            time.sleep(1)
    return srv


def stop(srv, db):
    """Stops a server serve started and drops its database."""
    srv.terminate()
    srv.wait()
    sh(*PG, "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, "postgres")


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def pick(results, label, name, c, key):
    """key of each run in results of build label, measure name, at c
    connections."""
    return [r[key] for r in results if r["label"] == label and r["name"] == name and r["c"] == c]
