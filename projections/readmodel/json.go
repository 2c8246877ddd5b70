package readmodel

import "encoding/json"

// jsonOf encodes a metadata map for a jsonb column; nil is {}.
func jsonOf(m map[string]any) string {
	if m == nil {
		return "{}"
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// jsonOrNil encodes a map, or returns nil (SQL NULL) for "unchanged".
func jsonOrNil(m map[string]any) any {
	if m == nil {
		return nil
	}
	return jsonOf(m)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
