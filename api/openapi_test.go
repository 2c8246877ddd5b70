package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
)

// The OpenAPI document served at /openapi.json and the router list the same
// routes: a route added without documentation, or documented without a
// handler, fails here.
func TestOpenAPIDocumentListsEveryRoute(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	engine := engine(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	param := regexp.MustCompile(`:([A-Za-z_]+)`)
	var routed []string
	for _, r := range engine.Routes() {
		routed = append(routed, r.Method+" "+param.ReplaceAllString(r.Path, "{$1}"))
	}

	rec := httptest.NewRecorder()
	engine.ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /openapi.json: %d %s", rec.Code, rec.Body)
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("decode document: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	var documented []string
	for path, item := range doc.Paths {
		for method, op := range item {
			if method == "parameters" {
				continue
			}
			if _, ok := op["responses"]; !ok {
				t.Errorf("%s %s has no responses", method, path)
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(routed)
	slices.Sort(documented)
	for _, r := range routed {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in the OpenAPI document", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routed, d) {
			t.Errorf("documented %s has no route", d)
		}
	}
	if len(routed) == 0 {
		t.Error("the router has no routes")
	}
}

// The document is valid OpenAPI 3 as kin-openapi reads it, with every
// $ref resolved: a schema made wrongly from a type fails here.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	raw, err := openAPIDocument()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	ids := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" || ids[op.OperationID] {
				t.Errorf("%s %s: operationId %q is empty or taken", method, path, op.OperationID)
			}
			ids[op.OperationID] = true
		}
	}
	// Fields an answer may carry as null are nullable.
	for _, f := range []struct{ schema, field string }{
		{"Memory", "expires_at"}, {"Memory", "source_session_id"}, {"Memory", "source_message_id"},
		{"Session", "expires_at"}, {"ContextWindow", "summary"}, {"Tenant", "rate_limit"},
	} {
		p := doc.Components.Schemas[f.schema].Value.Properties[f.field]
		if p == nil || !p.Value.Nullable {
			t.Errorf("%s.%s is not nullable", f.schema, f.field)
		}
	}
}
