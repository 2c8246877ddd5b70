// Package tokens counts tokens with a real BPE tokenizer (OpenAI's
// cl100k_base or o200k_base), whose vocabularies ship inside the binary, so
// counting works offline. Message and memory token counts are computed once,
// when the command runs, and recorded in the event: a replay or rebuild
// never recounts.
package tokens

import (
	"fmt"

	"github.com/tiktoken-go/tokenizer"
)

// Counter counts the tokens of a text with one encoding. It is safe for
// concurrent use.
type Counter struct {
	codec tokenizer.Codec
	name  string
}

// New returns a counter for the named encoding: "cl100k_base" or
// "o200k_base".
func New(encoding string) (*Counter, error) {
	var enc tokenizer.Encoding
	switch encoding {
	case "cl100k_base":
		enc = tokenizer.Cl100kBase
	case "o200k_base":
		enc = tokenizer.O200kBase
	default:
		return nil, fmt.Errorf("token encoding %q: want cl100k_base or o200k_base", encoding)
	}
	c, err := tokenizer.Get(enc)
	if err != nil {
		return nil, fmt.Errorf("load token encoding %s: %w", encoding, err)
	}
	return &Counter{codec: c, name: encoding}, nil
}

// Count returns the number of tokens in text. Invalid UTF-8 is counted as
// its bytes, never refused: a count must always exist.
func (c *Counter) Count(text string) int {
	n, err := c.codec.Count(text)
	if err != nil {
		return len(text)
	}
	return n
}

// Encoding names the counter's encoding.
func (c *Counter) Encoding() string { return c.name }
