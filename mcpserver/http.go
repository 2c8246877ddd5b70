package mcpserver

import (
	"net/http"
	"net/http/httptest"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/arq-memory/arq/api"
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
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true, Logger: sdkLog(s.log),
			// The SDK refuses a request that reaches a loopback address
			// under another host's name, against DNS rebinding of an
			// unguarded local server. Here it would refuse every request
			// a reverse proxy on the same machine forwards, and guard
			// nothing the REST API beside it leaves open: /mcp is behind
			// the API's keys, and as open as REST when it has none.
			DisableLocalhostProtection: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			s.api.ServeHTTP(w, r) // a CORS preflight, answered as the API's are
			return
		}
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

// authenticate asks the API whether r's credential is accepted, as on any
// of its requests (api.CheckCredential). The API's refusal (401, or 429
// past the limit of wrong credentials) is returned to be passed on; nil
// lets r through. The check is also the access log line and the metric of
// the MCP request.
func (s *Server) authenticate(r *http.Request) *httptest.ResponseRecorder {
	probe, err := http.NewRequestWithContext(r.Context(), http.MethodPost, Path, nil)
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
	s.api.ServeHTTP(rec, api.CheckCredential(probe))
	if rec.Code == http.StatusNoContent {
		return nil
	}
	return rec
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
