package cache

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/commands"
)

// An erasure deletes the entries of the entities it names and every
// window of the sessions it names, in Redis and in this process's memory,
// and nothing else.
func TestForgetterDeletesErasedEntries(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, 1<<20)
	// A namespace with characters a MATCH pattern reads as a glob: they
	// must match themselves only.
	ns := fmt.Sprintf("db*[t]?-%d", time.Now().UnixNano())
	other := fmt.Sprintf("db-other-%d", time.Now().UnixNano())
	ent, win := entityPrefix(ns), windowPrefix(ns)
	erased := []string{
		ent + "user:U1", ent + "session:S1", ent + "message:M1", ent + "memory:Y1",
		win + "S1:1.2.3.4:4096:0.2:0.3:aa", win + "S1:5.2.3.4:4096:0.2:0.3:bb", win + "S2:1.2.3.4:100:0.2:0.3:cc",
	}
	kept := []string{
		ent + "user:U2", ent + "message:M2", win + "S3:1.2.3.4:4096:0.2:0.3:aa",
		// S1 is a prefix of S10; another deployment has S1 too.
		win + "S10:1.2.3.4:4096:0.2:0.3:aa", windowPrefix(other) + "S1:1.2.3.4:4096:0.2:0.3:aa", entityPrefix(other) + "user:U1",
	}
	t.Cleanup(func() { c.rdb.Del(context.Background(), append(erased, kept...)...) })
	for _, k := range append(erased, kept...) {
		c.Set(ctx, k, []byte("marker "+k), time.Minute)
	}
	f := NewForgetter(c, ns)
	err := f.ForgetErased(ctx, commands.Erased{Users: []string{"U1"}, Sessions: []string{"S1"}, Messages: []string{"M1"}, Memories: []string{"Y1"}, Windows: []string{"S1", "S2"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range erased {
		if n, err := c.rdb.Exists(ctx, k).Result(); err != nil || n != 0 {
			t.Errorf("%s left in Redis (%v)", k, err)
		}
		if _, ok := c.local.GetIfPresent(k); ok {
			t.Errorf("%s left in memory", k)
		}
	}
	for _, k := range kept {
		if v, ok := c.Get(ctx, k); !ok || !strings.HasSuffix(string(v), k) {
			t.Errorf("%s was deleted too", k)
		}
	}
}

// A forget that cannot reach Redis fails, so that the erasure says it is
// not complete.
func TestForgetterFailsWithoutRedis(t *testing.T) {
	c, err := New("redis://127.0.0.1:1/0", 1<<20, newTestCache(t, 0).log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := NewForgetter(c, "ns").ForgetErased(context.Background(), commands.Erased{Users: []string{"U1"}, Windows: []string{"S1"}}); err == nil {
		t.Fatal("forget without Redis succeeded")
	}
}
