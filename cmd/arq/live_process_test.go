package main

import (
	"testing"

	"github.com/arq-memory/arq/internal/testdb"
)

// An SSE client receives a message appended by another arq process: a
// real `arq serve` started as a separate program, over the same database
// and Redis, both ways.
func TestSessionStreamAcrossArqProcesses(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	inTest := startServerOn(t, url, nil)
	p := startArq(t, url, []string{"ARQ_HTTP_ADDR=127.0.0.1:0", "ARQ_DB_MAX_CONNS=8"}, "serve")
	other := &server{t: t, base: "http://" + p.servingAddr(t), url: url}

	uid := inTest.must(201, inTest.do("POST", "/v1/users", map[string]any{"external_id": "pp", "name": "PP"})).str("id")
	sid := inTest.must(201, inTest.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).str("id")

	// A client of the in-test server, a message through the subprocess.
	here := inTest.subscribe(t, "/v1/sessions/"+sid+"/stream")
	mid := other.must(201, other.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "from the arq subprocess"})).str("id")
	ev := await(t, here, "message appended through the subprocess", func(ev sseEvent) bool { return dataField(ev, "message_id") == mid })
	if ev.event != "message.appended" || dataField(ev, "content") != "from the arq subprocess" || ev.id == "" {
		t.Fatalf("event on the in-test server: %+v", ev)
	}

	// And the other way: a client of the subprocess, a message through
	// the in-test server.
	there := other.subscribe(t, "/v1/sessions/"+sid+"/stream")
	back := inTest.must(201, inTest.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "assistant", "content": "from the test process"})).str("id")
	ev = await(t, there, "message appended through the in-test server", func(ev sseEvent) bool { return dataField(ev, "message_id") == back })
	if ev.event != "message.appended" || dataField(ev, "content") != "from the test process" || ev.id == "" {
		t.Fatalf("event on the subprocess: %+v", ev)
	}
	select {
	case err := <-p.exited:
		t.Fatalf("arq serve exited: %v\n%s", err, p.stderr.String())
	default:
	}
}
