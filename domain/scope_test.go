package domain_test

import (
	"testing"

	"github.com/arq-memory/arq/domain"
)

// A scope reaches what its tenant owns, narrowed by its user and session;
// the zero scope (the system's) reaches every tenant.
func TestScopeReaches(t *testing.T) {
	msg := domain.Owner{Tenant: "acme", UserID: "u1", SessionID: "s1"}
	memory := domain.Owner{Tenant: "acme", UserID: "u1"}
	for _, c := range []struct {
		name  string
		scope domain.Scope
		owner domain.Owner
		want  bool
	}{
		{"the system", domain.Scope{}, msg, true},
		{"its tenant", domain.Scope{Tenant: "acme"}, msg, true},
		{"another tenant", domain.Scope{Tenant: "other"}, msg, false},
		{"its user", domain.Scope{Tenant: "acme", UserID: "u1"}, memory, true},
		{"another user", domain.Scope{Tenant: "acme", UserID: "u2"}, memory, false},
		{"its user in another tenant", domain.Scope{Tenant: "other", UserID: "u1"}, memory, false},
		{"its session", domain.Scope{Tenant: "acme", UserID: "u1", SessionID: "s1"}, msg, true},
		{"another session", domain.Scope{Tenant: "acme", UserID: "u1", SessionID: "s2"}, msg, false},
		{"a session's token and its user's memory", domain.Scope{Tenant: "acme", UserID: "u1", SessionID: "s1"}, memory, false},
	} {
		if got := c.scope.Reaches(c.owner); got != c.want {
			t.Errorf("%s: %+v reaches %+v: %v, want %v", c.name, c.scope, c.owner, got, c.want)
		}
	}
	if (domain.Scope{Tenant: "acme"}).Narrowed() || !(domain.Scope{Tenant: "acme", UserID: "u1"}).Narrowed() {
		t.Error("only a scope with a user or session is narrowed")
	}
}
