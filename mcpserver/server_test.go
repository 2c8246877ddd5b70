package mcpserver

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// recorded is what the API behind the server received.
type recorded struct {
	mu    sync.Mutex
	calls []string
}

// connect serves a Server over in-memory transports, its API answering
// with answer, and returns the client's session.
func connect(t *testing.T, key string, answer func(w http.ResponseWriter, r *http.Request)) (*mcp.ClientSession, *recorded) {
	t.Helper()
	rec := &recorded{}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.calls = append(rec.calls, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("If-Match")+" "+r.Header.Get("Authorization")+" "+string(body)))
		rec.mu.Unlock()
		answer(w, r)
	})
	ctx, cancel := context.WithCancel(context.Background())
	serverT, clientT := mcp.NewInMemoryTransports()
	done := make(chan error, 1)
	go func() { done <- New(api, Options{Key: key}).Run(ctx, serverT) }()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t"}, nil).Connect(ctx, clientT, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return cs, rec
}

// A tool call is its REST request: ids in the path (escaped), the other
// arguments as the body, expected_version as If-Match, the key as the
// bearer credential.
func TestToolCallIsItsRESTRequest(t *testing.T) {
	cs, rec := connect(t, "k1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"m 1","version":2}`)
	})
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "update_memory",
		Arguments: map[string]any{"memory_id": "m 1", "expected_version": 1, "content": "c"}})
	if err != nil || res.IsError {
		t.Fatalf("update_memory: %v %+v", err, res)
	}
	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "forget_memory", Arguments: map[string]any{"memory_id": "m1", "erase": true}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`PATCH /v1/memories/m%201 "1" Bearer k1 {"content":"c"}`, `DELETE /v1/memories/m1?erase=true  Bearer k1`}
	if strings.Join(rec.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("the API received:\n%s\nwant:\n%s", strings.Join(rec.calls, "\n"), strings.Join(want, "\n"))
	}
}

// A problem, an error answer that is none, or a redirect is a tool error;
// a missing id, an id no resource can have and an expected_version below
// 1 are refused without a request, as REST would refuse them.
func TestErrorsAreToolErrors(t *testing.T) {
	cs, rec := connect(t, "", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/memories/r1/history" {
			// A redirect (a proxy sending http to https, say) did not
			// do what the tool asked.
			w.Header().Set("Location", "https://elsewhere/v1/memories/r1/history")
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/history") {
			http.Error(w, "upstream down", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, `{"type":"https://arq.dev/problems/invalid","title":"Invalid input","status":422,"detail":"some fields are invalid","errors":[{"field":"content","message":"is required"}]}`)
	})
	for _, c := range []struct {
		tool string
		args map[string]any
		text string
	}{
		{"remember", map[string]any{"user_id": "u1", "type": "semantic"}, "Invalid input (422): some fields are invalid\n- content: is required"},
		{"memory_history", map[string]any{"memory_id": "m1"}, "Bad Gateway (502): upstream down"},
		{"recall", map[string]any{"query": "q"}, "Invalid input (422): some fields are invalid\n- user_id: is required"},
		{"memory_history", map[string]any{"memory_id": "r1"}, "Temporary Redirect (307)"},
		{"forget_memory", map[string]any{"memory_id": "m1/"}, `Not found (404): not found: no resource has the memory_id "m1/"`},
		{"update_memory", map[string]any{"memory_id": "m1", "expected_version": 0, "content": "c"},
			"Invalid input (422): some fields are invalid\n- expected_version: must be 1 or more"},
	} {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if len(res.Content) == 1 {
			got = res.Content[0].(*mcp.TextContent).Text
		}
		p, _ := res.StructuredContent.(map[string]any)
		if !res.IsError || got != c.text || p["status"] == nil {
			t.Errorf("%s: error %v, text %q, structured %v; want the text %q", c.tool, res.IsError, got, res.StructuredContent, c.text)
		}
	}
	if len(rec.calls) != 3 {
		t.Errorf("the API received %d requests, want 3 (none for a missing or impossible id, or a version below 1): %v", len(rec.calls), rec.calls)
	}
}
