package api

import (
	"net/http"
	"strings"
	"testing"
)

// A DELETE of a message with a cascade other than derived is a 422 that
// names the field, before any command runs (the fakes have none).
func TestCascadeTakesDerivedAlone(t *testing.T) {
	for _, target := range []string{"/v1/messages/m1?cascade=all", "/v1/messages/m1?cascade=derived,all&erase=true"} {
		rec := serve(t, &fakeQueries{}, http.MethodDelete, target)
		if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `"field":"cascade"`) {
			t.Errorf("DELETE %s: %d %s; want a 422 naming cascade", target, rec.Code, rec.Body)
		}
	}
}
