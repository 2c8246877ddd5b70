"""A model that answers at once, for load runs with extraction on: an
OpenAI-compatible chat completions endpoint (stdlib only) that answers
the extraction's two steps, told apart by the JSON schema they ask for.

- memory_candidates: one candidate, the same for every conversation;
- memory_decisions: "none" for a candidate whose text a known memory has,
  "add" otherwise (so each user gets the memory once, then knows it).

Anything else gets a short text. The Go tests have their own, richer one
(internal/fakellm); this one runs as its own process beside a server that
wrk loads, so that its CPU is not counted as the server's.

    python3 e2e/testdata/loadtest/fakellm.py PORT
"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CANDIDATE = {"type": "semantic", "content": "User gardens by the river", "importance": 0.5, "tags": ["garden"]}


def answer(req):
    schema = ((req.get("response_format") or {}).get("json_schema") or {}).get("name")
    if schema == "memory_candidates":
        return {"candidates": [CANDIDATE]}
    if schema == "memory_decisions":
        shown = json.loads(req["messages"][-1]["content"])
        out = []
        for c in shown["candidates"]:
            known = any(k["content"] == c["content"] for k in c["known"])
            out.append({"candidate": c["candidate"], "action": "none" if known else "add", "target": "",
                        "memory": {k: c[k] for k in ("type", "content", "importance", "tags")},
                        "reason": "known" if known else "new"})
        return {"decisions": out}
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        a = answer(req)
        content = json.dumps(a) if a is not None else "Fine."
        body = json.dumps({"choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
