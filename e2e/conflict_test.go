package e2e

import (
	"fmt"
	"github.com/arq-memory/arq/internal/testserver"
	"strings"
	"sync"
	"testing"

	"github.com/arq-memory/arq/eventstore"
)

// patchAll sends n PATCHes of path, conc at a time, taking turns over
// servers, none with If-Match; body(i) is the i-th one's body. It fails
// the test unless every one answers 200, and returns the latest log
// position they answered (a read at it holds all of them).
func patchAll(t *testing.T, servers []*testserver.Server, path string, n, conc int, body func(i int) map[string]any) string {
	t.Helper()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		latest eventstore.Cursor
	)
	slots := make(chan struct{}, conc)
	for i := range n {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			s := servers[i%len(servers)]
			r := s.MustGo(200, s.Do("PATCH", path, body(i)))
			pos, err := eventstore.ParseCursor(r.Header.Get("X-Arq-Position"))
			if err != nil {
				t.Errorf("PATCH %s answered position %q: %v", path, r.Header.Get("X-Arq-Position"), err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if latest.Less(pos) {
				latest = pos
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return latest.String()
}

// wantVersion fails the test unless the entity at path, read at position
// pos, is at version want and its field is one of the PATCHed values.
func wantVersion(t *testing.T, s *testserver.Server, path, pos string, want int, field, prefix string) {
	t.Helper()
	got := s.Must(200, s.Do("GET", path, nil, "X-Arq-Min-Position", pos))
	if int(got.Num("version")) != want || !strings.HasPrefix(got.Str(field), prefix) {
		t.Fatalf("%s after the PATCHes: %s, want version %d (each PATCH one change) and a %s from them", path, got.Body, want, field)
	}
}

// Many clients changing one memory, or one user, at once and without
// If-Match all succeed, each change once: the server resolves its own
// version conflicts. A stale If-Match is still refused with 412.
func TestConcurrentPatchesWithoutIfMatch(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "busy", "name": "Busy"})).Str("id")
	mem := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "first"})).Str("id")
	const n, conc = 48, 24

	pos := patchAll(t, []*testserver.Server{s}, "/v1/memories/"+mem, n, conc, func(i int) map[string]any {
		return map[string]any{"content": fmt.Sprintf("content %d", i)}
	})
	wantVersion(t, s, "/v1/memories/"+mem, pos, 1+n, "content", "content ")
	pos = patchAll(t, []*testserver.Server{s}, "/v1/users/"+uid, n, conc, func(i int) map[string]any {
		return map[string]any{"name": fmt.Sprintf("Busy %d", i)}
	})
	wantVersion(t, s, "/v1/users/"+uid, pos, 1+n, "name", "Busy ")

	// With If-Match naming the version all of them saw, one wins and the
	// others are told their precondition failed.
	var wg sync.WaitGroup
	statuses := make(chan int, conc)
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- s.Do("PATCH", "/v1/memories/"+mem, map[string]any{"content": fmt.Sprintf("matched %d", i)}, "If-Match", fmt.Sprintf(`"%d"`, 1+n)).Status
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if count[200] != 1 || count[412] != conc-1 {
		t.Fatalf("PATCHes with one If-Match answered %v, want one 200 and %d 412", count, conc-1)
	}
}

// Two servers on one database changing one memory and one user at once,
// without If-Match: every PATCH succeeds, each change once, although
// each server's writes race the other's.
func TestConcurrentPatchesOnTwoServers(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	other := testserver.StartOn(t, s.URL, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "shared", "name": "Shared"})).Str("id")
	mem := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "first"})).Str("id")
	const n, conc = 24, 8
	servers := []*testserver.Server{s, other}

	pos := patchAll(t, servers, "/v1/memories/"+mem, n, conc, func(i int) map[string]any {
		return map[string]any{"content": fmt.Sprintf("content %d", i)}
	})
	wantVersion(t, s, "/v1/memories/"+mem, pos, 1+n, "content", "content ")
	pos = patchAll(t, servers, "/v1/users/"+uid, n, conc, func(i int) map[string]any {
		return map[string]any{"name": fmt.Sprintf("Shared %d", i)}
	})
	wantVersion(t, other, "/v1/users/"+uid, pos, 1+n, "name", "Shared ")
}
