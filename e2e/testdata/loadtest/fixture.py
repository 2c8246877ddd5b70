"""Loads the context-window fixture through the API of a running arq serve:
one user with a session of 10,000 messages (10-40 words) and 10,000
memories (5-30 words), words drawn by a Zipf law from 5,000 made-up words,
as cmd/arq/context_bench_test.go does. Writes fixture.json (ids, a warm
query, words for cold queries) to the current directory.

Usage: python3 fixture.py http://127.0.0.1:18081/v1
"""
import json, random, urllib.request, concurrent.futures, sys
API = sys.argv[1]
random.seed(3)
syll = "ka lo mi ne ru sa te vo ba di fe gu ho ji ku la me no pi re si tu ve wa yo za".split()
vocab, seen = [], set()
while len(vocab) < 5000:
    w = "".join(random.choice(syll) for _ in range(random.randint(2, 4)))
    if w not in seen:
        seen.add(w); vocab.append(w)
weights = [1 / (i + 2) ** 1.1 for i in range(len(vocab))]
def text(n): return " ".join(random.choices(vocab, weights, k=n))
def post(path, body, headers={}):
    req = urllib.request.Request(API + path, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(req) as r: return json.loads(r.read() or b"{}")
uid = post("/users", {"external_id": "wrk", "name": "W"})["id"]
sid = post("/users/%s/sessions" % uid, {})["id"]
for i in range(100):
    post("/sessions/%s/messages" % sid, {"messages": [{"role": ["user", "assistant"][j % 2], "content": text(10 + random.randint(0, 29))} for j in range(100)]}, {"Prefer": "respond-async"})
bodies = [{"type": "semantic", "content": text(5 + random.randint(0, 24)), "importance": round(random.random(), 2)} for _ in range(10000)]
with concurrent.futures.ThreadPoolExecutor(16) as ex:
    list(ex.map(lambda b: post("/users/%s/memories" % uid, b, {"Prefer": "respond-async"}), bodies))
post("/sessions/%s/messages" % sid, {"role": "user", "content": "what about the garden and the river"})
json.dump({"uid": uid, "sid": sid, "words": vocab[100:1100], "q": vocab[300] + "+" + vocab[700]}, open("fixture.json", "w"))
print(uid, sid)
