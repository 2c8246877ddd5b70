"""Search with embeddings, two builds of arq side by side: the memory
search (POST /v1/users/{id}/memories/search) with a query embedding, under
wrk at 1 and 32 connections, runs alternating between the two builds (a,
b, b, a, ...) so that the machine's drift falls on both.

Each run serves a fresh database per case, with ARQ_EMBEDDING_DIM set to
the case's dimension (the dimension is per deployment): a user with 200
memories of 384 dimensions (small), and one with 5,000 of 1,536 (large).
The memories carry client-supplied embeddings, clustered as embeddings of
texts on a few topics are: 20 random centres (each number N(0, 1)), each
memory a centre plus noise N(0, 0.6) in each dimension (cosine about 0.73
within a cluster, 0 between). The queries are 16 more points of the same
clusters, sent in turn, with no text (the vector ranking alone, whose
scores are 1/(60 + rank)).

CPU per request is counted from /proc by procstat.py (the server process
and the Postgres backends of its database, over each wrk run, per
request), with Redis's and the rest of the machine's printed apart. Each
run also checks recall@10: for 8 queries, the API's first 10 ids against
the 10 nearest by exact cosine, computed here.

Needs: Go, Postgres and Redis as for the tests, python3 and wrk. From the
repository root:

    python3 e2e/testdata/loadtest/search.py BASE_COMMIT [rounds] [--cases small,large]

builds BASE_COMMIT (a, in a temporary worktree) and the working tree (b),
prints one line per run and measure, and a summary of medians per build.
"""
import argparse, functools, json, math, operator, os, random, shutil, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procstat  # noqa: E402
from procstat import PG, measure, sh  # noqa: E402

CASES = {"small": (200, 384), "large": (5000, 1536)}
args = argparse.ArgumentParser(description="search with embeddings, two builds of arq side by side under wrk")
args.add_argument("base", help="the commit to build as a")
args.add_argument("rounds", nargs="?", type=int, default=2, help="rounds of a b (then b a, ...)")
args.add_argument("--cases", default="small,large", help="which of %s, comma-separated" % ",".join(CASES))
args = args.parse_args()
BASE, ROUNDS = args.base, args.rounds
PORT = 18083
API = "http://127.0.0.1:%d/v1" % PORT
work = tempfile.mkdtemp()


def post(path, body, headers={}):
    return procstat.post(API, path, body, headers)


def clustered(n, dim, k=20, seed=11):
    """n + 16 vectors around k centres: the memories, then the queries."""
    rnd = random.Random(seed)
    centres = [[rnd.gauss(0, 1) for _ in range(dim)] for _ in range(k)]
    out = []
    for _ in range(n + 16):
        c = centres[rnd.randrange(k)]
        out.append([round(x + rnd.gauss(0, 0.6), 4) for x in c])
    return out[:n], out[n:]


def nearest(q, embs, k=10):
    qn = math.sqrt(sum(x * x for x in q))
    sims = [(sum(map(operator.mul, q, e)) / (qn * math.sqrt(sum(map(operator.mul, e, e)))), i) for i, e in enumerate(embs)]
    return [i for _, i in sorted(sims, reverse=True)[:k]]


def run(label, case):
    n, dim = CASES[case]
    db = "arq_search_" + label
    srv = procstat.serve(os.path.join(work, "arq-" + label), db, PORT, {"ARQ_EMBEDDING_DIM": str(dim)}, os.path.join(work, label + ".log"))
    try:
        embs, queries = DATA[case]
        random.seed(7)
        words = ["w%d" % i for i in range(2000)]
        uid = post("/users", {"external_id": "search-" + label, "name": "Search"})["id"]
        t0 = time.time()
        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(lambda e: post("/users/%s/memories" % uid, {
                "type": "semantic", "content": " ".join(random.choices(words, k=12)), "importance": 0.5, "embedding": e},
                {"Prefer": "respond-async"})["id"], embs))
        for _ in range(600):
            if sh(*PG, "-d", db, "-c", "SELECT count(*) FROM memories").strip() == str(n):
                break
            time.sleep(0.5)
        else:
            raise SystemExit("%s: the memories were not all projected" % label)
        sh(*PG, "-d", db, "-c", "ANALYZE")
        print("%s %s: %d memories of %d dimensions stored and projected in %.0f s" % (label, case, n, dim, time.time() - t0), flush=True)
        # Recall@10 of the API's ranking against the exact one.
        got = 0
        for q in queries[:8]:
            items = post("/users/%s/memories/search" % uid, {"embedding": q, "limit": 10})["items"]
            want = {ids[i] for i in nearest(q, embs)}
            got += len(want & {it["id"] for it in items})
        recall = got / 80
        print("%s %s: recall@10 %.3f (8 queries)" % (label, case, recall), flush=True)
        lua = os.path.join(work, "search.lua")
        open(lua, "w").write("""
local bodies = {%s}
local n = 0
local headers = {["Content-Type"] = "application/json"}
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/users/%s/memories/search", headers, bodies[(n %% #bodies) + 1])
end
""" % (",".join("'%s'" % json.dumps({"embedding": q, "limit": 20}) for q in queries), uid))
        # The first search of each build loads what it keeps; not measured.
        post("/users/%s/memories/search" % uid, {"embedding": queries[0]})
        # A search of the code before took over a second for the large
        # case: wrk waits up to a minute for an answer, and runs longer.
        for c in (1, 32):
            try:
                r = measure(srv.pid, db, label, "search-" + case, c, ["--timeout", "60s", "-s", lua, "http://127.0.0.1:%d" % PORT],
                            seconds=10 if case == "small" else 20)
            except SystemExit:
                # The code before answers 32 clients of the large case
                # with errors (its statements time out): said, not fatal.
                if label == "b":
                    raise
                print("%s search-%s c=%d: answers other than 2xx (above); not counted" % (label, case, c), flush=True)
                continue
            r["recall"] = recall
            results.append(r)
    finally:
        procstat.stop(srv, db)


def summary():
    """Medians per build and case, and b's over a's."""
    med, pick = procstat.median, functools.partial(procstat.pick, results)

    for case in cases:
        for c in (1, 32):
            name, line = "search-" + case, {}
            for label in ("a", "b"):
                cpu = [s + p for s, p in zip(pick(label, name, c, "server"), pick(label, name, c, "postgres"))]
                if not cpu:
                    continue
                line[label] = {"cpu": med(cpu), "server": med(pick(label, name, c, "server")), "postgres": med(pick(label, name, c, "postgres")),
                               "rps": med(pick(label, name, c, "rps")), "p50": med(pick(label, name, c, "p50")),
                               "p99": med(pick(label, name, c, "p99")), "recall": min(pick(label, name, c, "recall")), "runs": len(cpu)}
                v = line[label]
                print("%s %s c=%d (median of %d runs): %.0f req/s, p50 %.2f p99 %.2f ms, %.3f ms CPU/req (server %.3f, postgres %.3f), recall@10 %.3f (lowest)" % (
                    label, name, c, v["runs"], v["rps"], v["p50"], v["p99"], v["cpu"], v["server"], v["postgres"], v["recall"]), flush=True)
            if len(line) == 2:
                print("b/a %s c=%d: throughput %.2f, CPU/req %.2f, p99 %.2f" % (
                    name, c, line["b"]["rps"] / line["a"]["rps"], line["b"]["cpu"] / line["a"]["cpu"], line["b"]["p99"] / line["a"]["p99"]), flush=True)


cases = [c for c in args.cases.split(",") if c]
results = []
try:
    DATA = {c: clustered(*CASES[c]) for c in cases}
    procstat.build(BASE, work)
    print("a = %s, b = the working tree" % BASE, flush=True)
    for r in range(ROUNDS):
        for label in (("a", "b") if r % 2 == 0 else ("b", "a")):
            for case in cases:
                run(label, case)
    summary()
finally:
    shutil.rmtree(work)
