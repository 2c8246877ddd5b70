// Command mcpload measures a session's context read through ARQ's two
// faces from a process of its own: the REST read (GET
// /v1/sessions/{id}/context) and the MCP context tool (tools/call over the
// streamable HTTP transport at /mcp, one MCP client a connection), at a
// number of concurrent clients for a while, and prints one JSON line:
// calls, errors, calls a second, p50 and p99 in ms.
//
//	mcpload -base URL -key KEY setup              makes the fixture, prints {"uid","sid"}
//	mcpload -base URL -key KEY -sid ID -face rest|mcp -c N -d 10s [-cold]
//
// See bench_mcp.py beside it, which runs it and counts the CPU.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	base := flag.String("base", "http://127.0.0.1:18090", "the server")
	key := flag.String("key", "", "the API key")
	sid := flag.String("sid", "", "the session")
	face := flag.String("face", "rest", "rest or mcp")
	clients := flag.Int("c", 1, "concurrent clients")
	d := flag.Duration("d", 10*time.Second, "how long")
	cold := flag.Bool("cold", false, "a query no one asked before, each call (default: one query again and again)")
	flag.Parse()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients + 4, MaxConnsPerHost: *clients + 4}}
	l := loader{base: *base, key: *key, http: hc}
	var err error
	if flag.Arg(0) == "setup" {
		err = l.setup()
	} else {
		err = l.run(*face, *sid, *clients, *d, *cold)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcpload:", err)
		os.Exit(1)
	}
}

type loader struct {
	base, key string
	http      *http.Client
}

// words are the fixture's vocabulary, which queries draw from.
var words = func() []string {
	r := rand.New(rand.NewPCG(3, 3))
	syll := strings.Fields("ka lo mi ne ru sa te vo ba di fe gu ho ji ku la me no pi re si tu ve wa yo za")
	var out []string
	for range 2000 {
		var b strings.Builder
		for range 2 + r.IntN(3) {
			b.WriteString(syll[r.IntN(len(syll))])
		}
		out = append(out, b.String())
	}
	return out
}()

func text(r *rand.Rand, n int) string {
	out := make([]string, n)
	for i := range out {
		// Roughly Zipf: low indexes far more often.
		out[i] = words[int(float64(len(words))*r.Float64()*r.Float64()*r.Float64())]
	}
	return strings.Join(out, " ")
}

func (l loader) do(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, l.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if l.key != "" {
		req.Header.Set("Authorization", "Bearer "+l.key)
	}
	res, err := l.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// setup makes one user with a session of 1,000 messages (10-40 words)
// and 2,000 memories (5-30 words).
func (l loader) setup() error {
	r := rand.New(rand.NewPCG(1, 2))
	var user, session struct{ ID string }
	if err := l.do("POST", "/v1/users", map[string]any{"external_id": "mcpload", "name": "Load"}, &user); err != nil {
		return err
	}
	if err := l.do("POST", "/v1/users/"+user.ID+"/sessions", map[string]any{}, &session); err != nil {
		return err
	}
	for i := range 10 {
		var msgs []map[string]any
		for j := range 100 {
			msgs = append(msgs, map[string]any{"role": []string{"user", "assistant"}[(i+j)%2], "content": text(r, 10+r.IntN(31))})
		}
		if err := l.do("POST", "/v1/sessions/"+session.ID+"/messages", map[string]any{"messages": msgs}, nil); err != nil {
			return err
		}
	}
	bodies := make(chan map[string]any)
	go func() {
		for range 2000 {
			bodies <- map[string]any{"type": "semantic", "content": text(r, 5+r.IntN(26)), "importance": float64(r.IntN(100)) / 100}
		}
		close(bodies)
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for b := range bodies {
				if err := l.do("POST", "/v1/users/"+user.ID+"/memories", b, nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]string{"uid": user.ID, "sid": session.ID})
}

// bearer adds the API key to every request of the MCP client.
type bearer struct {
	key  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.key != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.key)
	}
	return b.next.RoundTrip(r)
}

// run reads the session's context from clients at once for d, each
// client one call after the other, and prints what it measured.
func (l loader) run(face, sid string, clients int, d time.Duration, cold bool) error {
	ctx := context.Background()
	call := make([]func(q string) error, clients)
	for i := range call {
		switch face {
		case "rest":
			call[i] = func(q string) error {
				return l.do("GET", "/v1/sessions/"+sid+"/context?query="+url.QueryEscape(q), nil, nil)
			}
		case "mcp":
			tr := &mcp.StreamableClientTransport{Endpoint: l.base + "/mcp", DisableStandaloneSSE: true,
				HTTPClient: &http.Client{Transport: bearer{l.key, l.http.Transport}}}
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "mcpload", Version: "1"}, nil).Connect(ctx, tr, nil)
			if err != nil {
				return fmt.Errorf("connect: %w", err)
			}
			defer cs.Close()
			call[i] = func(q string) error {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "context", Arguments: map[string]any{"session_id": sid, "query": q}})
				if err == nil && res.IsError {
					err = errors.New(res.Content[0].(*mcp.TextContent).Text)
				}
				return err
			}
		default:
			return fmt.Errorf("face %q: want rest or mcp", face)
		}
	}
	warm := words[300] + " " + words[700]
	// Each run's cold queries are its own: one run's never answered from
	// the cache by an earlier run's.
	salt := time.Now().UnixNano()
	var counter atomic.Int64
	var errCount atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, clients)
	end := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			for time.Now().Before(end) {
				q := warm
				if cold {
					n := counter.Add(1)
					q = fmt.Sprintf("%s %s x%dx%d", words[n%1000+100], words[(n/7)%1000+100], salt, n)
				}
				t0 := time.Now()
				if err := call[i](q); err != nil {
					errCount.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(float64(len(all))*p))].Microseconds()) / 1000
	}
	out := map[string]any{"face": face, "c": clients, "calls": len(all), "errors": errCount.Load(),
		"rps": float64(len(all)) / elapsed.Seconds(), "p50": pct(0.50), "p99": pct(0.99)}
	if e := firstErr.Load(); e != nil {
		out["first_error"] = e
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
