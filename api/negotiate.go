package api

import (
	"strconv"
	"strings"
)

// mediaRange is one element of an Accept header: a type and subtype
// (either may be *), in lower case, with its q-value and its place in
// the header.
type mediaRange struct {
	typ, sub string
	q        float64
	pos      int
}

// negotiate picks, of the media types offered (lower case, the server's
// preferred first), the one the Accept header h ranks highest (RFC 9110
// §12.5.1). Each offer takes the q-value of the most specific range that
// matches it (type/subtype, then type/*, then */*), compared without
// regard to case; q=0 refuses it. Of offers with equal q-values, the one
// matched more specifically wins, then the one whose range comes first in
// h, then the server's order. Without a header, or when it accepts none
// of the offers, the first offer: a server may disregard Accept rather
// than answer 406. Elements that are no media range are skipped.
func negotiate(h string, offers ...string) string {
	ranges := acceptRanges(h)
	if len(ranges) == 0 {
		return offers[0]
	}
	best, bestQ, bestSpec, bestPos := offers[0], 0.0, 0, 0
	for _, o := range offers {
		q, spec, pos, ok := match(ranges, o)
		if !ok || q == 0 {
			continue
		}
		if q > bestQ || q == bestQ && (spec > bestSpec || spec == bestSpec && pos < bestPos) {
			best, bestQ, bestSpec, bestPos = o, q, spec, pos
		}
	}
	return best
}

// match finds the most specific of ranges that matches the media type
// offer: its q-value, its specificity (2 for type/subtype, 1 for type/*,
// 0 for */*) and its place in the header; ok is false when none does.
func match(ranges []mediaRange, offer string) (q float64, spec, pos int, ok bool) {
	typ, sub, _ := strings.Cut(offer, "/")
	spec = -1
	for _, r := range ranges {
		s := -1
		switch {
		case r.typ == typ && r.sub == sub:
			s = 2
		case r.typ == typ && r.sub == "*":
			s = 1
		case r.typ == "*" && r.sub == "*":
			s = 0
		}
		if s > spec {
			q, spec, pos = r.q, s, r.pos
		}
	}
	return q, spec, pos, spec >= 0
}

// acceptRanges parses an Accept header: media ranges separated by commas,
// each with parameters after semicolons, of which q (any case) is its
// weight, 1 by default.
func acceptRanges(h string) []mediaRange {
	var out []mediaRange
	for i, elem := range splitUnquoted(h, ',') {
		params := splitUnquoted(elem, ';')
		typ, sub, ok := strings.Cut(strings.ToLower(strings.TrimSpace(params[0])), "/")
		if !ok || !isToken(typ) || !isToken(sub) || typ == "*" && sub != "*" {
			continue
		}
		r, valid := mediaRange{typ: typ, sub: sub, q: 1, pos: i}, true
		for _, p := range params[1:] {
			name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(name), "q") {
				r.q, valid = qvalue(strings.TrimSpace(value))
			}
		}
		if valid {
			out = append(out, r)
		}
	}
	return out
}

// qvalue parses a weight: 0 to 1 with at most three decimals.
func qvalue(s string) (float64, bool) {
	if len(s) == 0 || len(s) > 5 || s[0] != '0' && s[0] != '1' || len(s) > 1 && s[1] != '.' {
		return 0, false
	}
	q, err := strconv.ParseFloat(s, 64)
	if err != nil || q > 1 {
		return 0, false
	}
	return q, true
}

// splitUnquoted splits s at each sep outside a quoted string.
func splitUnquoted(s string, sep byte) []string {
	var out []string
	quoted, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// isToken tells whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
