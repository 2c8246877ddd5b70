package api

import "strings"

// entityTag is one entity tag of an If-Match list (RFC 9110 §8.8.3).
type entityTag struct {
	weak   bool
	opaque string // between the quotes
}

// entityTags parses h as a list of entity tags (RFC 9110 §5.6.1,
// §8.8.3): tags separated by commas with optional whitespace around them;
// empty elements are allowed, none at all is not. ok is false when h is
// no such list: two tags without a comma between them, text after a tag,
// a character no entity tag holds (a space, a control character), or
// "*", which is a whole If-Match header or nothing.
func entityTags(h string) (tags []entityTag, ok bool) {
	for rest := h; ; {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			return tags, len(tags) > 0
		}
		if rest[0] == ',' {
			rest = rest[1:]
			continue
		}
		var t entityTag
		if r, weak := strings.CutPrefix(rest, "W/"); weak {
			t.weak, rest = true, r
		}
		if rest == "" || rest[0] != '"' {
			return nil, false
		}
		end := 1
		for end < len(rest) && etagc(rest[end]) {
			end++
		}
		if end == len(rest) || rest[end] != '"' {
			return nil, false
		}
		t.opaque = rest[1:end]
		rest = strings.TrimLeft(rest[end+1:], " \t")
		if rest != "" && rest[0] != ',' {
			return nil, false
		}
		tags = append(tags, t)
	}
}

// etagc tells whether an entity tag may hold the byte between its quotes:
// any visible character but the quote, or obs-text.
func etagc(b byte) bool { return b == 0x21 || b >= 0x23 && b <= 0x7e || b >= 0x80 }
