// Package testwait waits in tests for a condition that becomes true by
// itself (a projection catching up, a commit becoming safe to read),
// polling it instead of sleeping for a guessed time.
package testwait

import (
	"testing"
	"time"
)

// maxPoll bounds the pause between two checks: short, so a test goes on
// soon after its condition holds; the pauses start shorter still.
const maxPoll = 10 * time.Millisecond

// Eventually checks cond until it holds, and fails t when cond fails or
// has not held within the time given. what names the condition in the
// failure.
func Eventually(t testing.TB, within time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(within)
	pause := time.Millisecond
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s", what, within)
		}
		time.Sleep(pause)
		pause = min(2*pause, maxPoll)
	}
}
