package testwait_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testwait"
)

// Eventually returns once the condition holds, however many checks that
// takes.
func TestEventuallyReturnsWhenTheConditionHolds(t *testing.T) {
	var checks atomic.Int32
	testwait.Eventually(t, 10*time.Second, "third check", func() (bool, error) {
		return checks.Add(1) >= 3, nil
	})
	if n := checks.Load(); n != 3 {
		t.Fatalf("checked %d times, want 3", n)
	}
}

// recorder is a testing.TB that records a failure instead of ending the
// test, so that Eventually's failures can be looked at.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
	panic(r) // as FailNow ends the goroutine; recovered by fails
}

// fails runs Eventually and returns its failure, "" if none.
func fails(t *testing.T, within time.Duration, cond func() (bool, error)) (failure string) {
	r := &recorder{TB: t}
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
		failure = r.failed
	}()
	testwait.Eventually(r, within, "cond", cond)
	return ""
}

// A condition that never holds fails once the time is up; one that errs
// fails at once.
func TestEventuallyFails(t *testing.T) {
	if got := fails(t, 20*time.Millisecond, func() (bool, error) { return false, nil }); got == "" {
		t.Error("a condition that never held passed")
	}
	var checks int
	got := fails(t, time.Hour, func() (bool, error) {
		checks++
		return false, errors.New("broken")
	})
	if got == "" || checks != 1 {
		t.Errorf("an erring condition: failure %q after %d checks, want a failure after 1", got, checks)
	}
}
