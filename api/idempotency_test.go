package api

import (
	"testing"

	"github.com/arq-memory/arq/eventstore"
)

// A claim is taken for abandoned only once no append of the request that
// took it can still commit: the request's bound and an append's bound fit
// in the claim's minute. (A guard for whoever changes one of them.)
func TestAbandonedClaimsOutliveTheirRequestsAppends(t *testing.T) {
	if idempotentRequestLimit <= 0 || idempotentRequestLimit+eventstore.AppendLimit >= idempotencyPending {
		t.Fatalf("request bound %s + append bound %s must stay under the claim's %s",
			idempotentRequestLimit, eventstore.AppendLimit, idempotencyPending)
	}
}
