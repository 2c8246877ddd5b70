package fakellm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
)

// checkFormat refuses structured output OpenAI would refuse in strict
// mode: each object must list every property as required and allow no
// others. It returns the schema, decoded.
func checkFormat(f *ResponseFormat) (*jsonschema.Schema, error) {
	if f.Type != "json_schema" || f.JSONSchema == nil {
		return nil, fmt.Errorf("response_format: the fake knows only json_schema, not %q", f.Type)
	}
	if !f.JSONSchema.Strict {
		return nil, errors.New("response_format.json_schema: the fake wants strict mode")
	}
	var tree any
	if err := json.Unmarshal(f.JSONSchema.Schema, &tree); err != nil {
		return nil, fmt.Errorf("response_format.json_schema.schema: %w", err)
	}
	if err := checkStrict("schema", tree); err != nil {
		return nil, fmt.Errorf("response_format.json_schema.%w", err)
	}
	var schema jsonschema.Schema
	if err := json.Unmarshal(f.JSONSchema.Schema, &schema); err != nil {
		return nil, fmt.Errorf("response_format.json_schema.schema: %w", err)
	}
	return &schema, nil
}

// checkStrict walks a schema's objects and arrays.
func checkStrict(path string, node any) error {
	m, ok := node.(map[string]any)
	if !ok {
		return nil
	}
	if m["type"] == "object" {
		props, _ := m["properties"].(map[string]any)
		if m["additionalProperties"] != false {
			return fmt.Errorf("%s: additionalProperties must be false", path)
		}
		var required []string
		for _, r := range asSlice(m["required"]) {
			s, _ := r.(string)
			required = append(required, s)
		}
		names := make([]string, 0, len(props))
		for name := range props {
			names = append(names, name)
		}
		slices.Sort(names)
		slices.Sort(required)
		if !slices.Equal(names, required) {
			return fmt.Errorf("%s: required %v must name every property %v", path, required, names)
		}
		for _, name := range names {
			if err := checkStrict(path+".properties."+name, props[name]); err != nil {
				return err
			}
		}
	}
	if items, ok := m["items"]; ok {
		return checkStrict(path+".items", items)
	}
	return nil
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// fits checks a JSON answer against a schema.
func fits(schema *jsonschema.Schema, answer []byte) error {
	resolved, err := schema.Resolve(nil)
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(answer, &v); err != nil {
		return err
	}
	return resolved.Validate(v)
}

// decodeStrict decodes one JSON value of text into v, refusing fields v
// does not have.
func decodeStrict(text string, v any) error {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("text after the JSON value")
	}
	return nil
}
