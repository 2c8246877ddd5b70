package api

import (
	"bytes"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// Document is what GET /openapi.json answers, byte for byte.
func TestDocumentIsTheServedDocument(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	engine := engine(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rec := httptest.NewRecorder()
	engine.ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	doc, err := Document()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), doc) {
		t.Fatalf("GET /openapi.json: %d, %d bytes; Document: %d bytes, equal %v", rec.Code, rec.Body.Len(), len(doc), bytes.Equal(rec.Body.Bytes(), doc))
	}
}

// The reference and its script answer without a key when keys are on,
// under a Content-Security-Policy, and revalidate by ETag.
func TestDocsArePublicWithAPolicy(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	engine := engine(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), AdminKey: "admin-secret"})
	for path, want := range map[string]string{
		"/docs":                     `<redoc spec-url="/openapi.json"`,
		"/docs/redoc.standalone.js": "redoc.standalone.js.LICENSE.txt",
	} {
		rec := httptest.NewRecorder()
		engine.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			t.Fatalf("GET %s without a key: %d, body has %q: %v", path, rec.Code, want, strings.Contains(rec.Body.String(), want))
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		etag := rec.Header().Get("ETag")
		again := httptest.NewRecorder()
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("If-None-Match", etag)
		engine.ServeHTTP(again, req)
		if etag == "" || again.Code != 304 {
			t.Errorf("GET %s with If-None-Match %s: %d, want 304", path, etag, again.Code)
		}
	}
	rec := httptest.NewRecorder()
	engine.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/users", nil))
	if rec.Code != 401 {
		t.Errorf("GET /v1/users without a key: %d, want 401 (keys are on)", rec.Code)
	}
}
