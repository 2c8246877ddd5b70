package tokens_test

import (
	"sync"
	"testing"

	"github.com/arq-memory/arq/tokens"
)

func TestCountsKnownTexts(t *testing.T) {
	t.Parallel()
	// Reference counts from OpenAI's tiktoken for these encodings.
	cases := []struct {
		enc, text string
		want      int
	}{
		{"cl100k_base", "hello world", 2},
		{"cl100k_base", "", 0},
		{"cl100k_base", "tiktoken is great!", 6},
		{"o200k_base", "hello world", 2},
	}
	for _, c := range cases {
		tc, err := tokens.New(c.enc)
		if err != nil {
			t.Fatal(err)
		}
		if got := tc.Count(c.text); got != c.want {
			t.Errorf("%s: Count(%q) = %d, want %d", c.enc, c.text, got, c.want)
		}
	}
}

func TestUnknownEncodingIsRefused(t *testing.T) {
	t.Parallel()
	if _, err := tokens.New("gpt2-ish"); err == nil {
		t.Fatal("unknown encoding accepted")
	}
}

func TestCounterIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	tc, err := tokens.New("cl100k_base")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				if n := tc.Count("remember that I prefer short answers"); n != 6 {
					t.Errorf("count = %d, want 6", n)
					return
				}
			}
		}()
	}
	wg.Wait()
}
