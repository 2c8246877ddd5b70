package mcpserver

import (
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/arq-memory/arq/api"
)

// Path is where the streamable HTTP transport is served.
const Path = "/mcp"

// remoteHeader carries, from Handler to the tool calls of the request, the
// caller's address, once the front door has counted the request: a
// request's own copy is removed first, so no client can set it.
const remoteHeader = "X-Arq-Mcp-Remote-Addr"

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
			MaxRequestBodyBytes: s.bodyLimit(),
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
		r.Header.Del(remoteHeader)
		checked := s.authenticate(r)
		w.Header().Set("X-Request-ID", checked.Header().Get("X-Request-ID"))
		if checked.Code != http.StatusNoContent {
			for k, v := range checked.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(checked.Code)
			_, _ = w.Write(checked.Body.Bytes())
			return
		}
		// The API's CORS headers for the request's origin, if it has
		// any, go on the MCP answer.
		for k, v := range checked.Header() {
			if strings.HasPrefix(k, "Access-Control-") || k == "Vary" {
				w.Header()[k] = v
			}
		}
		r.Header.Set(remoteHeader, r.RemoteAddr)
		h.ServeHTTP(w, r)
	})
}

// authenticate asks the API whether r's credential is accepted, as on any
// of its requests (api.CheckCredential), and returns its answer: 204 lets
// r through (with the CORS headers for its origin, if any); any other
// (401, or 429 past the limit of wrong credentials, 403 for an origin not
// allowed) is to be passed on. The check is also the access log line and
// the metric of the MCP request.
func (s *Server) authenticate(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	probe, err := http.NewRequestWithContext(r.Context(), http.MethodPost, Path, http.NoBody)
	if err != nil {
		http.Error(rec, "bad request", http.StatusBadRequest)
		return rec
	}
	probe.RemoteAddr = r.RemoteAddr
	probe.Host = r.Host // the CORS check tells a same-origin request by it
	for _, h := range []string{"Authorization", "Origin", "X-Request-Id", "X-Forwarded-For", "X-Real-Ip"} {
		if v := r.Header.Values(h); len(v) > 0 {
			probe.Header[h] = v
		}
	}
	s.api.ServeHTTP(rec, api.CheckCredential(probe))
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

// bodyLimit is the largest request /mcp reads: the API's body limit and
// room for the JSON-RPC envelope around a tool call's arguments; 0 (the
// SDK's own) when the server was given none.
func (s *Server) bodyLimit() int64 {
	if s.maxBody <= 0 {
		return 0
	}
	return s.maxBody + 64<<10
}
