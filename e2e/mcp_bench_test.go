package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/arq-memory/arq/internal/testserver"
)

// BenchmarkMCPContext reads a session's context window (200 messages,
// the default budget, warm: the cache answers) through REST and through
// the MCP context tool over /mcp, in one process: what the MCP face adds,
// client and server together.
func BenchmarkMCPContext(b *testing.B) {
	s := testserver.Start(b, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "bench", "name": "B"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	for i := range 2 {
		batch := make([]map[string]any, 100)
		for j := range batch {
			batch[j] = map[string]any{"role": []string{"user", "assistant"}[j%2], "content": strings.Repeat("lorem ipsum dolor ", 8+i)}
		}
		s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": batch}))
	}
	b.Run("rest", func(b *testing.B) {
		for b.Loop() {
			res, err := http.Get(s.Base + "/v1/sessions/" + sid + "/context?query=lorem")
			if err != nil || res.StatusCode != 200 {
				b.Fatal(err, res.Status)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
	b.Run("mcp", func(b *testing.B) {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench"}, nil).Connect(context.Background(),
			&mcp.StreamableClientTransport{Endpoint: s.Base + "/mcp", DisableStandaloneSSE: true}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		for b.Loop() {
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "context", Arguments: map[string]any{"session_id": sid, "query": "lorem"}})
			if err != nil || res.IsError {
				b.Fatal(err, res)
			}
		}
	})
}
