package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testwait"
)

// gatedFetch is a Fetch that records each call's keys and answers
// "<key>@<call number>" only when the test opens its gate.
type gatedFetch struct {
	mu    sync.Mutex
	calls [][]string
	gates []chan struct{}
	err   error
	// opened lets every fetch from now on answer at once.
	opened bool
	// poison fails every fetch that asks for it; boom panics.
	poison, boom string
}

func (g *gatedFetch) fetch(ctx context.Context, keys []string) (map[string]string, error) {
	g.mu.Lock()
	n := len(g.calls)
	g.calls = append(g.calls, slices.Clone(keys))
	gate := make(chan struct{})
	if g.opened {
		close(gate)
	}
	g.gates = append(g.gates, gate)
	err, poison, boom := g.err, g.poison, g.boom
	g.mu.Unlock()
	select {
	case <-gate:
	case <-ctx.Done(): // as a query does
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k == poison && poison != "" {
			return nil, errors.New("refused " + k)
		}
		if k == boom && boom != "" {
			panic("fetch of " + k)
		}
	}
	out := map[string]string{}
	for _, k := range keys {
		if k != "missing" {
			out[k] = fmt.Sprintf("%s@%d", k, n)
		}
	}
	return out, nil
}

// openAll lets every fetch answer at once, those waiting and those to come.
func (g *gatedFetch) openAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.opened = true
	for _, gate := range g.gates {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}
}

// open lets call n answer, once it has started.
func (g *gatedFetch) open(t *testing.T, n int) []string {
	t.Helper()
	waitFor(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.gates) > n
	})
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.gates[n])
	keys := slices.Clone(g.calls[n])
	slices.Sort(keys)
	return keys
}

func (g *gatedFetch) started() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

// waitFor waits until cond, which cannot fail, holds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testwait.Eventually(t, 5*time.Second, "condition", func() (bool, error) { return cond(), nil })
}

func queued[K comparable, V any](l *Loader[K, V]) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}

type result struct {
	val string
	ok  bool
	err error
}

func load(l *Loader[string, string], ctx context.Context, key string) chan result {
	ch := make(chan result, 1)
	go func() {
		v, ok, err := l.Load(ctx, key)
		ch <- result{v, ok, err}
	}()
	return ch
}

func TestReadsArrivingDuringABatchShareTheNext(t *testing.T) {
	g := &gatedFetch{}
	l := NewLoader(g.fetch, 1, time.Second)
	first := load(l, context.Background(), "a")
	waitFor(t, func() bool { return g.started() == 1 })

	// While the first fetch is out, four reads of three keys queue.
	var later []chan result
	for _, k := range []string{"a", "b", "c", "b"} {
		later = append(later, load(l, context.Background(), k))
	}
	waitFor(t, func() bool { return queued(l) == 4 })
	if g.started() != 1 {
		t.Fatalf("a second fetch started while the only batch was busy")
	}
	if keys := g.open(t, 0); !slices.Equal(keys, []string{"a"}) {
		t.Fatalf("first fetch keys = %v", keys)
	}
	if r := <-first; r.val != "a@0" || !r.ok || r.err != nil {
		t.Fatalf("first read = %+v", r)
	}
	if keys := g.open(t, 1); !slices.Equal(keys, []string{"a", "b", "c"}) {
		t.Fatalf("second fetch keys = %v, want each queued key once", keys)
	}
	for i, want := range []string{"a@1", "b@1", "c@1", "b@1"} {
		// The read of "a" that came during fetch 0 is answered by fetch 1.
		if r := <-later[i]; r.val != want || !r.ok || r.err != nil {
			t.Fatalf("queued read %d = %+v, want %s", i, r, want)
		}
	}
	if n := g.started(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}

func TestBatchesRunUpToTheLimitAtOnce(t *testing.T) {
	g := &gatedFetch{}
	l := NewLoader(g.fetch, 2, time.Second)
	a := load(l, context.Background(), "a")
	waitFor(t, func() bool { return g.started() == 1 })
	b := load(l, context.Background(), "b")
	waitFor(t, func() bool { return g.started() == 2 })
	c := load(l, context.Background(), "c")
	waitFor(t, func() bool { return queued(l) == 1 })
	g.open(t, 1)
	if r := <-b; r.val != "b@1" {
		t.Fatalf("b = %+v", r)
	}
	if keys := g.open(t, 2); !slices.Equal(keys, []string{"c"}) {
		t.Fatalf("third fetch keys = %v", keys)
	}
	if r := <-c; r.val != "c@2" {
		t.Fatalf("c = %+v", r)
	}
	g.open(t, 0)
	if r := <-a; r.val != "a@0" {
		t.Fatalf("a = %+v", r)
	}
}

func TestMissingKeysAndErrors(t *testing.T) {
	g := &gatedFetch{}
	l := NewLoader(g.fetch, 1, time.Second)
	r := load(l, context.Background(), "missing")
	g.open(t, 0)
	if got := <-r; got.ok || got.err != nil {
		t.Fatalf("missing key = %+v, want not ok and no error", got)
	}

	boom := errors.New("boom")
	g.mu.Lock()
	g.err = boom
	g.mu.Unlock()
	r = load(l, context.Background(), "a")
	g.open(t, 1)
	if got := <-r; !errors.Is(got.err, boom) || got.ok {
		t.Fatalf("failed fetch = %+v, want its error", got)
	}
}

func TestACallerThatLeavesDoesNotWaitForItsBatch(t *testing.T) {
	g := &gatedFetch{}
	l := NewLoader(g.fetch, 1, time.Second)

	// A lone read fetches with its caller's context: it ends with it.
	ctx, cancel := context.WithCancel(context.Background())
	r := load(l, ctx, "a")
	waitFor(t, func() bool { return g.started() == 1 })
	cancel()
	if got := <-r; !errors.Is(got.err, context.Canceled) {
		t.Fatalf("lone read after its caller left = %+v", got)
	}

	// A queued read whose caller leaves returns at once, and its batch
	// leaves its key out.
	first := load(l, context.Background(), "b")
	waitFor(t, func() bool { return g.started() == 2 })
	ctx, cancel = context.WithCancel(context.Background())
	left := load(l, ctx, "c")
	stays := load(l, context.Background(), "d")
	waitFor(t, func() bool { return queued(l) == 2 })
	cancel()
	if got := <-left; !errors.Is(got.err, context.Canceled) {
		t.Fatalf("queued read after its caller left = %+v", got)
	}
	g.open(t, 1)
	if got := <-first; got.val != "b@1" {
		t.Fatalf("b = %+v", got)
	}
	if keys := g.open(t, 2); !slices.Equal(keys, []string{"d"}) {
		t.Fatalf("next fetch keys = %v, want only the read that stayed", keys)
	}
	if got := <-stays; got.val != "d@2" {
		t.Fatalf("d = %+v", got)
	}
}

// A key that fails its batch fails only its own reads: the others are
// read again, each alone.
func TestAKeyThatFailsItsBatchFailsOnlyItself(t *testing.T) {
	g := &gatedFetch{poison: "bad"}
	l := NewLoader(g.fetch, 1, time.Second)
	first := load(l, context.Background(), "a")
	waitFor(t, func() bool { return g.started() == 1 })
	var rs []chan result
	for _, k := range []string{"b", "bad", "c"} {
		rs = append(rs, load(l, context.Background(), k))
	}
	waitFor(t, func() bool { return queued(l) == 3 })
	g.openAll()
	if r := <-first; r.err != nil {
		t.Fatalf("a = %+v", r)
	}
	for i, k := range []string{"b", "bad", "c"} {
		r := <-rs[i]
		switch {
		case k == "bad" && (r.err == nil || r.ok):
			t.Fatalf("the read of the key that fails = %+v, want its error", r)
		case k != "bad" && (r.err != nil || !r.ok || !strings.HasPrefix(r.val, k+"@")):
			t.Fatalf("read of %s batched with a failing key = %+v", k, r)
		}
	}
}

// A fetch that panics fails its reads and frees its batch; the process
// goes on.
func TestAPanickingFetchIsAnError(t *testing.T) {
	g := &gatedFetch{boom: "boom"}
	l := NewLoader(g.fetch, 1, time.Second)
	first := load(l, context.Background(), "a")
	waitFor(t, func() bool { return g.started() == 1 })
	r := load(l, context.Background(), "boom")
	waitFor(t, func() bool { return queued(l) == 1 })
	g.openAll()
	<-first
	if got := <-r; got.err == nil || !strings.Contains(got.err.Error(), "panicked") {
		t.Fatalf("read whose fetch panicked = %+v", got)
	}
	if got := <-load(l, context.Background(), "z"); got.err != nil || got.val == "" {
		t.Fatalf("read after the panic = %+v", got)
	}
}

// Many readers, some leaving early, never hang and never leave a batch
// taken.
func TestManyReadersLeaveNothingBehind(t *testing.T) {
	fetch := func(ctx context.Context, keys []int) (map[int]int, error) {
		out := map[int]int{}
		for _, k := range keys {
			out[k] = k * 2
		}
		return out, nil
	}
	l := NewLoader(fetch, 2, time.Second)
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				ctx, cancel := context.WithCancel(context.Background())
				if i%7 == 0 {
					cancel()
				}
				v, ok, err := l.Load(ctx, i)
				cancel()
				if err == nil && (!ok || v != i*2) {
					t.Errorf("Load(%d) = %d, %v", i, v, ok)
					return
				}
			}
		}()
	}
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight != 0 || len(l.queue) != 0 {
		t.Fatalf("after all reads: %d batches taken, %d reads queued", l.inFlight, len(l.queue))
	}
}
