package mcpserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkContextToolOverHTTP is the context tool's cost in the MCP face
// alone: the API behind it answers a window of 60 messages from memory.
func BenchmarkContextToolOverHTTP(b *testing.B) {
	var msgs []string
	for i := range 60 {
		msgs = append(msgs, fmt.Sprintf(`{"id":"m%d","role":"user","seq":%d,"content":"%s","cost":50}`, i, i, strings.Repeat("word ", 40)))
	}
	window := `{"session_id":"s","max_tokens":4096,"messages":[` + strings.Join(msgs, ",") + `],"memories":[],"total_tokens":3000}`
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == Path {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, window)
	})
	srv := httptest.NewServer(Front(api, New(api, Options{}).Handler()))
	defer srv.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "b"}, nil).Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: srv.URL + Path, DisableStandaloneSSE: true}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cs.Close()
	b.ResetTimer()
	for b.Loop() {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "context", Arguments: map[string]any{"session_id": "s", "query": "q"}})
		if err != nil || res.IsError {
			b.Fatal(err, res)
		}
	}
}
