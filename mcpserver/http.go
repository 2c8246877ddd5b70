package mcpserver

import (
	"net/http"
	"net/http/httptest"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Path is where the streamable HTTP transport is served.
const Path = "/mcp"

// Handler serves the streamable HTTP transport, each request behind the
// REST API's own authentication: a request without a valid credential
// (when the API has keys) is answered as the API answers it, 401 (or 429
// past the limit of wrong credentials) with a problem, before any MCP
// exchange. Each tool call then sends that request's credential with its
// REST request, which the API checks again with its scopes.
//
// It is stateless: each request is served on its own, with no session
// kept between requests, so any server of a deployment can answer any
// request.
func (s *Server) Handler() http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true, Logger: s.log})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refused := s.authenticate(r); refused != nil {
			for k, v := range refused.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(refused.Code)
			_, _ = w.Write(refused.Body.Bytes())
			return
		}
		h.ServeHTTP(w, r)
	})
}

// authenticate asks the API whether r's credential is accepted, by
// sending it, from r's address, to a path of no route (Path): the API
// authenticates every request, routed or not, before it finds out. The
// API's 401 or 429 is returned to be passed on; nil lets r through (an
// accepted credential is answered 404, or 403 for a key without the read
// scope, which the tools' own requests meet again).
func (s *Server) authenticate(r *http.Request) *httptest.ResponseRecorder {
	probe, err := http.NewRequestWithContext(r.Context(), http.MethodGet, Path, nil)
	if err != nil {
		rec := httptest.NewRecorder()
		http.Error(rec, "bad request", http.StatusBadRequest)
		return rec
	}
	probe.RemoteAddr = r.RemoteAddr
	for _, h := range []string{"Authorization", "X-Request-Id", "X-Forwarded-For", "X-Real-Ip"} {
		if v := r.Header.Values(h); len(v) > 0 {
			probe.Header[h] = v
		}
	}
	rec := httptest.NewRecorder()
	s.api.ServeHTTP(rec, probe)
	if rec.Code == http.StatusUnauthorized || rec.Code == http.StatusTooManyRequests {
		return rec
	}
	return nil
}

// Front serves Path with mcp and every other path with api: the API with
// its MCP face, for one http.Server.
func Front(api, mcp http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == Path {
			mcp.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}
