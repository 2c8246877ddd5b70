package api

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/history"
	"github.com/arq-memory/arq/logproof"
	"github.com/arq-memory/arq/projections"
	"github.com/arq-memory/arq/projections/readmodel"
)

// The document's schemas are made from the Go types the handlers encode
// and decode (openapi3gen reads their fields and json tags), so the
// document changes when they do. What a type cannot say (enums, what a
// field means, which request fields are required) is added below by
// name; a name that no longer matches a field fails the document's test.

// body is one schema of the document and the Go type it is made from.
type body struct {
	name  string
	value any
	// required lists a request's required fields; an answer's are the
	// fields it always carries (those without omitempty).
	required []string
	request  bool
}

// bodies are the request and answer bodies of the API.
var bodies = []body{
	{name: "Health", value: health{}},
	{name: "Ready", value: readiness{}},
	{name: "Stats", value: statsBody{}},
	{name: "Problem", value: Problem{}},
	{name: "Accepted", value: accepted{}},

	{name: "User", value: readmodel.User{}},
	{name: "UserList", value: pageOf[readmodel.User]{}},
	{name: "Erased", value: erased{}},
	{name: "RegisterUser", value: registerUserRequest{}, request: true, required: []string{"external_id", "name"}},
	{name: "UpdateUser", value: updateUserRequest{}, request: true},

	{name: "Session", value: readmodel.Session{}},
	{name: "SessionWithToken", value: sessionWithToken{}},
	{name: "SessionList", value: pageOf[readmodel.Session]{}},
	{name: "StartSession", value: startSessionRequest{}, request: true},
	{name: "ExtendSession", value: extendSessionRequest{}, request: true, required: []string{"ttl_seconds"}},
	{name: "ValidateSession", value: validateRequest{}, request: true, required: []string{"token"}},

	{name: "Message", value: readmodel.Message{}},
	{name: "MessageList", value: pageOf[readmodel.Message]{}},
	{name: "AppendedBatch", value: appendedBatch{}},
	{name: "NewMessage", value: messageIn{}, request: true, required: []string{"role", "content"}},
	{name: "AppendMessages", value: appendMessagesRequest{}, request: true},
	{name: "EditMessage", value: editMessageRequest{}, request: true},

	{name: "Memory", value: readmodel.Memory{}},
	{name: "MemoryList", value: pageOf[readmodel.Memory]{}},
	{name: "MemoryHit", value: readmodel.MemoryHit{}},
	{name: "MemoryHits", value: itemsOf[readmodel.MemoryHit]{}},
	{name: "StoreMemory", value: storeMemoryRequest{}, request: true, required: []string{"type", "content"}},
	{name: "UpdateMemory", value: updateMemoryRequest{}, request: true},
	{name: "SearchMemories", value: searchRequest{}, request: true},
	{name: "MemoryProvenance", value: provenanceBody{}},
	{name: "Derivation", value: history.Derivation{}},
	{name: "SourceMessage", value: history.Source{}},
	{name: "DerivedMemory", value: readmodel.Derived{}},
	{name: "DerivedMemories", value: derivedBody{}},

	{name: "WindowRequest", value: windowRequest{}, request: true},
	{name: "ContextWindow", value: readmodel.Window{}},
	{name: "ContextSnapshot", value: snapshotBody{}},
	{name: "ContextSnapshotList", value: pageOf[snapshotBody]{}},

	{name: "Event", value: logEvent{}},
	{name: "EventPage", value: pageOf[logEvent]{}},
	{name: "HistoryEntry", value: history.Entry{}},
	{name: "ContextItem", value: history.Item{}},
	{name: "History", value: historyBody{}},
	{name: "Verification", value: verification{}},
	{name: "Checkpoint", value: checkpointJSON{}},
	{name: "ConsistencyProof", value: logproof.Consistency{}},
	{name: "InclusionProof", value: inclusionProof{}},

	{name: "CreateKey", value: createKeyRequest{}, request: true, required: []string{"name", "scopes"}},
	{name: "Key", value: Key{}},
	{name: "KeyWithSecret", value: keyWithSecret{}},
	{name: "KeyList", value: itemsOf[Key]{}},
	{name: "CreateTenant", value: createTenantRequest{}, request: true, required: []string{"id", "name"}},
	{name: "TenantLimits", value: tenantLimitsRequest{}, request: true},
	{name: "Tenant", value: Tenant{}},
	{name: "TenantList", value: itemsOf[Tenant]{}},
	{name: "RebuildJob", value: projections.RebuildJob{}},
	{name: "Consolidation", value: consolidation{}},
}

var (
	timeType          = reflect.TypeFor[time.Time]()
	rawType           = reflect.TypeFor[json.RawMessage]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	embeddingType     = reflect.TypeFor[embeddingIn]()
	metadataType      = reflect.TypeFor[eventstore.Metadata]()
)

// schemas makes the document's schemas from bodies, then adds what the
// types cannot say (annotate).
func schemas() (openapi3.Schemas, error) {
	names := map[reflect.Type]string{}
	types := map[string]reflect.Type{}
	requests := map[reflect.Type]bool{}
	for _, b := range bodies {
		t := reflect.TypeOf(b.value)
		names[t] = b.name
		types[b.name] = t
		requests[t] = b.request
	}
	names[embeddingType] = "Embedding"
	names[reflect.TypeFor[readmodel.Stats]()] = "Counts"
	typeName := func(t reflect.Type) string {
		if n, ok := names[t]; ok {
			return n
		}
		n := t.Name()
		if i := strings.IndexByte(n, '['); i >= 0 {
			n = n[:i]
		}
		n = strings.ToUpper(n[:1]) + n[1:]
		types[n] = t
		return n
	}
	gen := openapi3gen.NewGenerator(
		openapi3gen.CreateComponentSchemas(openapi3gen.ExportComponentSchemasOptions{
			ExportComponentSchemas: true, ExportTopLevelSchema: true, ExportGenerics: true,
		}),
		openapi3gen.CreateTypeNameGenerator(typeName),
		openapi3gen.SchemaCustomizer(func(_ string, t reflect.Type, _ reflect.StructTag, s *openapi3.Schema) error {
			return customize(t, s, requests[t])
		}),
	)
	out := openapi3.Schemas{}
	for _, b := range bodies {
		if _, err := gen.NewSchemaRefForValue(b.value, out); err != nil {
			return nil, fmt.Errorf("schema %s: %w", b.name, err)
		}
		if b.request {
			out[b.name].Value.Required = b.required
		}
	}
	// A pointer to a struct is a nullable field; in OpenAPI 3.0 a $ref
	// takes no siblings, so it is wrapped.
	for name, ref := range out {
		t := types[name]
		if t == nil || ref.Value == nil {
			continue
		}
		for _, f := range jsonFields(t) {
			p := ref.Value.Properties[f.name]
			if f.typ.Kind() == reflect.Pointer && p != nil && p.Ref != "" {
				ref.Value.Properties[f.name] = &openapi3.SchemaRef{Value: &openapi3.Schema{Type: &openapi3.Types{"object"}, Nullable: true, AllOf: openapi3.SchemaRefs{p}}}
			}
		}
	}
	// openapi3gen exports only structs with properties: the embedding,
	// a struct read as an array, is added here.
	out["Embedding"] = openapi3.NewSchemaRef("", embeddingSchema())
	// A message append answers the message, or {"messages": [...]}.
	out["AppendedMessages"] = &openapi3.SchemaRef{Value: &openapi3.Schema{OneOf: openapi3.SchemaRefs{
		openapi3.NewSchemaRef("#/components/schemas/Message", nil),
		openapi3.NewSchemaRef("#/components/schemas/AppendedBatch", nil),
	}}}
	if err := annotate(out); err != nil {
		return nil, err
	}
	return out, prune(out, names)
}

// prune drops the schemas openapi3gen made of a type no schema refers to
// (a field hidden by a shallower one of the same name, say).
func prune(s openapi3.Schemas, bodyNames map[reflect.Type]string) error {
	keep := map[string]bool{"AppendedMessages": true}
	for _, n := range bodyNames {
		keep[n] = true
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("schemas: %w", err)
	}
	for name := range s {
		if !keep[name] && !strings.Contains(string(raw), `"#/components/schemas/`+name+`"`) {
			delete(s, name)
		}
	}
	return nil
}

// embeddingSchema is an embedding in a request: null, or numbers.
func embeddingSchema() *openapi3.Schema {
	return &openapi3.Schema{Type: &openapi3.Types{"array"}, Nullable: true, MinItems: 1, MaxItems: openapi3.Ptr(uint64(4096)),
		Items:       openapi3.NewSchemaRef("", openapi3.NewFloat64Schema()),
		Description: "the text's embedding (ARQ_EMBEDDING_DIM numbers); ranked by cosine similarity against embeddings of the same length"}
}

// anyValue is any JSON value, null too. OpenAPI 3.0 lets only a typed
// schema be nullable, hence the alternatives.
func anyValue() *openapi3.Schema {
	alt := func(s *openapi3.Schema) *openapi3.SchemaRef { return openapi3.NewSchemaRef("", s) }
	str := openapi3.NewStringSchema()
	str.Nullable = true
	return &openapi3.Schema{Description: "any JSON value, or null", AnyOf: openapi3.SchemaRefs{
		alt(str), alt(openapi3.NewFloat64Schema()), alt(openapi3.NewBoolSchema()),
		alt(openapi3.NewArraySchema().WithItems(&openapi3.Schema{})), alt(openapi3.NewObjectSchema().WithAnyAdditionalProperties()),
	}}
}

// customize fixes what openapi3gen reads wrongly from a type, and sets
// an answer's required fields: those it always carries.
func customize(t reflect.Type, s *openapi3.Schema, request bool) error {
	switch {
	case t == embeddingType:
		*s = *embeddingSchema()
		return nil
	case t == rawType:
		*s = openapi3.Schema{Description: "any JSON value"}
		return nil
	case t == timeType:
		return nil
	case t.Kind() != reflect.Struct && (t.Implements(textMarshalerType) || t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType)):
		// A hash and the like: encoded as a string.
		*s = openapi3.Schema{Type: &openapi3.Types{"string"}, Nullable: s.Nullable}
		return nil
	case t.Kind() == reflect.Uint64:
		// Past what a JSON number holds exactly: no bound is stated.
		s.Max = nil
		return nil
	case t.Kind() == reflect.Interface:
		*s = *anyValue()
		return nil
	case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.Interface:
		s.AdditionalProperties = openapi3.AdditionalProperties{Has: openapi3.Ptr(true)}
		s.Nullable = false
		return nil
	}
	if t.Kind() != reflect.Struct || request || t == metadataType {
		return nil
	}
	s.Required = nil
	for _, f := range jsonFields(t) {
		if !f.omitempty {
			s.Required = append(s.Required, f.name)
		}
	}
	return nil
}

// field is one field of a struct as encoding/json sees it.
type field struct {
	name      string
	typ       reflect.Type
	omitempty bool
	depth     int
}

// jsonFields lists t's fields as encoding/json encodes and decodes them:
// tagged names, else Go names, the fields of untagged embedded structs
// promoted (a shallower name hides a deeper one), "-" left out; in the
// order they first appear.
func jsonFields(t reflect.Type) []field {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []field
	at := map[string]int{}
	var collect func(t reflect.Type, depth int)
	collect = func(t reflect.Type, depth int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				et := f.Type
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					collect(et, depth+1)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fd := field{name: name, typ: f.Type, depth: depth,
				omitempty: strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")}
			if i, ok := at[name]; ok {
				if out[i].depth > depth {
					out[i] = fd
				}
				continue
			}
			at[name] = len(out)
			out = append(out, fd)
		}
	}
	collect(t, 0)
	return out
}
