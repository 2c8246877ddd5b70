package api

import (
	"fmt"
	"slices"

	"github.com/getkin/kin-openapi/openapi3"
)

// pastOnly marks a field only a read of the past has (?version= or
// ?as_of=, folded from the log): a live read of an entity that is gone
// answers 404 instead.
const pastOnly = "only in a read by version or as_of: "

// withUser describes the deleted_with_user field of what a user's
// deletion ends.
const withUser = "only in a read by as_of: whether the user had been deleted by then, which ended this with them (a read by version shows it as it was)"

// note is what the document says of one field beyond its Go type.
type note struct {
	schema, field string
	description   string
	enum          []any
	// past adds a boolean field only reads of the past carry.
	past bool
	// nullable marks a field that may be null; optional one that an
	// answer may leave out.
	nullable, optional bool
}

var memoryTypes = []any{"working", "episodic", "semantic", "procedural"}

var derivationActions = []any{"add", "supersede", "update", "superseded"}

// notes are the enums and meanings the types cannot carry.
var notes = []note{
	{schema: "Memory", field: "type", enum: memoryTypes},
	{schema: "MemoryHit", field: "type", enum: memoryTypes},
	{schema: "WindowMemory", field: "type", enum: memoryTypes},
	{schema: "StoreMemory", field: "type", enum: memoryTypes},
	{schema: "Memory", field: "importance", description: "0 to 1"},
	{schema: "Memory", field: "embedding_dim", description: "the length of the memory's embedding, 0 without one (the vector itself is in the log, not in reads)"},
	{schema: "Memory", field: "deleted", past: true, description: pastOnly + "whether the memory had been deleted by then, on its own or with its user"},
	{schema: "Memory", field: "deleted_with_user", past: true, description: withUser},
	{schema: "Message", field: "role", enum: []any{"user", "assistant", "system", "tool"}},
	{schema: "NewMessage", field: "role", enum: []any{"user", "assistant", "system", "tool"}},
	{schema: "AppendMessages", field: "role", enum: []any{"user", "assistant", "system", "tool"}},
	{schema: "Message", field: "redacted", past: true, description: pastOnly + "whether the message had been deleted (redacted) by then"},
	{schema: "Message", field: "deleted_with_user", past: true, description: withUser},
	{schema: "User", field: "deleted", past: true, description: pastOnly + "whether the user had been deleted by then"},
	{schema: "Session", field: "status", enum: []any{"open", "closed", "expired", "deleted"}, description: "deleted only in a read by as_of after the user's deletion"},
	{schema: "Session", field: "deleted_with_user", past: true, description: withUser},
	{schema: "AppendMessages", field: "messages", description: "several messages appended together, in order; without it the body is one message (role, content...)"},
	{schema: "UpdateMemory", field: "clear_expiry", description: "remove the memory's expiry"},
	{schema: "WindowRequest", field: "max_tokens", description: "at most the server's ARQ_MAX_CONTEXT_TOKENS (128000 by default); more is 422. Default 4096"},
	{schema: "WindowRequest", field: "summary_share", description: "the part of the budget the summary gets first (default 0.2); 0 leaves it out"},
	{schema: "WindowRequest", field: "memory_share", description: "the part of the budget memories get first (default 0.3); 0 leaves them out"},
	{schema: "CreateKey", field: "tenant", description: "the tenant the key acts in; default: the caller's own (the admin key's: default). A tenant's admin key makes keys of its own tenant alone"},
	{schema: "CreateKey", field: "user_id", description: "narrows the key to this user of its tenant: it reaches that user's sessions, messages and memories alone, and may not hold admin"},
	{schema: "Key", field: "user_id", description: "the one user the key is narrowed to, if any"},
	{schema: "CreateTenant", field: "id", description: "1 to 63 of a-z, 0-9, _ and -"},
	{schema: "CreateTenant", field: "rate_limit", description: "requests a second each key of the tenant may send (0: none); null: the deployment's ARQ_RATE_LIMIT"},
	{schema: "CreateTenant", field: "rate_burst", description: "requests at once; null: twice rate_limit"},
	{schema: "RebuildJob", field: "state", enum: []any{"running", "done", "failed"}},
	{schema: "ContextItem", field: "kind", enum: []any{"summary", "message", "memory"}},
	{schema: "ContextItem", field: "erased", description: "the item's text was erased since: content (and role, name, type) are left empty"},
	{schema: "SessionWithToken", field: "status", enum: []any{"open", "closed", "expired", "deleted"}},
	{schema: "SessionWithToken", field: "token", nullable: true, description: "the session's token, shown this once (also in X-Arq-Session-Token); null in the answer replayed to a retry with the same Idempotency-Key"},
	{schema: "KeyWithSecret", field: "key", nullable: true, description: "the key's secret, shown this once; null in the answer replayed to a retry with the same Idempotency-Key"},
	{schema: "Session", field: "message_count", optional: true, description: "how many messages the session holds; not in a read by version or as_of"},
	{schema: "Checkpoint", field: "note", description: "the C2SP checkpoint signed as a note (Ed25519); see package logproof"},
	{schema: "Checkpoint", field: "root", description: "the Merkle root of the log's tree at size, base64"},
	{schema: "Erased", field: "erased", description: "always true: the erasure is complete"},
	{schema: "Consolidation", field: "run_id", description: "the consolidation's id, in the provenance of every event it recorded"},
	{schema: "Consolidation", field: "examined", description: "how many of the user's newest memories were examined (at most 500)"},
	{schema: "Consolidation", field: "model", nullable: true, description: "the model that decided the near-duplicates; null when the server has no extractor (exact duplicates alone are merged)"},
	{schema: "Merged", field: "action", enum: []any{"exact", "update", "supersede"}, description: "exact: the same type and text; update: the kept memory took the model's merged text; supersede: the kept memory replaced the superseded one (the fact changed), and took the model's text"},
	{schema: "Merged", field: "superseded", description: "the memories superseded by kept: they leave every read, and their history stays"},
	{schema: "Derivation", field: "action", enum: derivationActions, description: "add: an extraction stored the memory; supersede: it stored the memory in place of supersedes; update: it changed the memory; superseded: it replaced the memory by superseded_by"},
	{schema: "Derivation", field: "reason", description: "the model's reason; empty once the memory's data is erased"},
	{schema: "Derivation", field: "erased", description: "the memory's data was erased (with it or with its user): reason is empty"},
	{schema: "Derivation", field: "model", description: "the extractor's model; empty for an extractor that names none"},
	{schema: "Derivation", field: "supersedes", description: "for action supersede: the memory this one replaced"},
	{schema: "Derivation", field: "superseded_by", description: "for action superseded: the memory that replaced this one"},
	{schema: "SourceMessage", field: "version", description: "the message's version the extraction read; role and content are as they were then"},
	{schema: "SourceMessage", field: "role", enum: []any{"user", "assistant", "system", "tool", ""}, description: "empty when the message was erased"},
	{schema: "SourceMessage", field: "content", description: "the text as it was at version; empty when the message was erased"},
	{schema: "SourceMessage", field: "redacted", description: "the message was deleted (redacted) since; its text as read is still shown, as a read by version shows it"},
	{schema: "SourceMessage", field: "erased", description: "the message's text was erased since (with it or with its user): role and content are empty"},
	{schema: "DerivedMemory", field: "action", enum: derivationActions},
	{schema: "DerivedMemory", field: "memory_version", description: "the memory's version that the message fed"},
	{schema: "DerivedMemory", field: "message_version", description: "the message's version that was read"},
	{schema: "DerivedMemory", field: "live", description: "the memory is in every read still (not deleted, superseded, expired or erased)"},
	{schema: "DerivedMemory", field: "content", nullable: true, description: "the memory's current content while it lives; null when it does not"},
	{schema: "DerivedMemory", field: "version", nullable: true, description: "the memory's current version while it lives; null when it does not"},
}

// annotate adds notes to the schemas made from the types.
func annotate(s openapi3.Schemas) error {
	for _, n := range notes {
		ref := s[n.schema]
		if ref == nil || ref.Value == nil {
			return fmt.Errorf("note on %s.%s: no such schema", n.schema, n.field)
		}
		if n.past {
			if ref.Value.Properties[n.field] != nil {
				return fmt.Errorf("note on %s.%s: the type has the field already", n.schema, n.field)
			}
			ref.Value.WithProperty(n.field, openapi3.NewBoolSchema())
		}
		p := ref.Value.Properties[n.field]
		if p == nil || p.Value == nil {
			return fmt.Errorf("note on %s.%s: no such field", n.schema, n.field)
		}
		// The field's schema may be shared with others (openapi3gen
		// makes one per field, but be sure): change a copy.
		v := *p.Value
		if n.description != "" {
			v.Description = n.description
		}
		if n.enum != nil {
			v.Enum = n.enum
		}
		if n.nullable {
			v.Nullable = true
		}
		if n.optional {
			ref.Value.Required = slices.DeleteFunc(slices.Clone(ref.Value.Required), func(f string) bool { return f == n.field })
		}
		ref.Value.Properties[n.field] = openapi3.NewSchemaRef("", &v)
	}
	return nil
}
