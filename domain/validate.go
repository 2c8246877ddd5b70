package domain

import (
	"encoding/json"
	"net/mail"
	"strings"
	"unicode/utf8"
)

// checkMetadata validates a metadata map and returns it, nil made empty.
func checkMetadata(v *ValidationError, field string, md map[string]any) map[string]any {
	if md == nil {
		return map[string]any{}
	}
	raw, err := json.Marshal(md)
	switch {
	case err != nil:
		v.Add(field, "must be a JSON object")
	case len(raw) > MaxMetadataBytes:
		v.Add(field, "is %d bytes encoded, more than %d", len(raw), MaxMetadataBytes)
	}
	return md
}

// checkText validates a required or optional bounded text.
func checkText(v *ValidationError, field, s string, required bool, maxRunes int) {
	switch {
	case required && strings.TrimSpace(s) == "":
		v.Add(field, "is required")
	case !utf8.ValidString(s):
		v.Add(field, "must be UTF-8 text")
	case utf8.RuneCountInString(s) > maxRunes:
		v.Add(field, "is longer than %d characters", maxRunes)
	}
}

// checkContent validates message and memory content.
func checkContent(v *ValidationError, field, s string) {
	switch {
	case strings.TrimSpace(s) == "":
		v.Add(field, "is required")
	case !utf8.ValidString(s):
		v.Add(field, "must be UTF-8 text")
	case len(s) > MaxContentBytes:
		v.Add(field, "is %d bytes, more than %d", len(s), MaxContentBytes)
	}
}

func checkEmail(v *ValidationError, field, s string) {
	if s == "" {
		return
	}
	if a, err := mail.ParseAddress(s); err != nil || a.Address != s {
		v.Add(field, "is not an email address")
	}
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
