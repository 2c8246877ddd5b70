package api

// Schemas of the OpenAPI document, written compactly.

func str() map[string]any               { return map[string]any{"type": "string"} }
func strf(format string) map[string]any { return map[string]any{"type": "string", "format": format} }
func integer() map[string]any           { return map[string]any{"type": "integer"} }
func number() map[string]any            { return map[string]any{"type": "number"} }
func boolean() map[string]any           { return map[string]any{"type": "boolean"} }
func object() map[string]any            { return map[string]any{"type": "object", "additionalProperties": true} }
func array(items map[string]any) map[string]any {
	return map[string]any{"type": "array", "items": items}
}
func enum(vals ...string) map[string]any { return map[string]any{"type": "string", "enum": vals} }

// embedding is a client's embedding: ARQ_EMBEDDING_DIM numbers, or any
// consistent length when that is unset.
func embedding() map[string]any {
	return map[string]any{"type": "array", "items": number(), "minItems": 1, "maxItems": 4096,
		"description": "the text's embedding (ARQ_EMBEDDING_DIM numbers); ranked by cosine similarity against embeddings of the same length"}
}

// described is schema s with a description.
func described(s map[string]any, description string) map[string]any {
	s["description"] = description
	return s
}

// pastOnly marks a field only a read of the past has (?version= or
// ?as_of=, folded from the log): a live read of an entity that is gone
// answers 404 instead.
const pastOnly = "only in a read by version or as_of: "

// withUser is the deleted_with_user field of what a user's deletion ends.
func withUser() map[string]any {
	return described(boolean(), "only in a read by as_of: whether the user had been deleted by then, which ended this with them (a read by version shows it as it was)")
}

func obj(required []string, props map[string]any) map[string]any {
	o := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

// resource adds the fields every resource has to props.
func resource(props map[string]any) map[string]any {
	props["id"] = str()
	props["version"] = integer()
	props["created_at"] = strf("date-time")
	props["updated_at"] = strf("date-time")
	return obj([]string{"id", "version", "created_at", "updated_at"}, props)
}

// requiring adds fields to the required ones of the object schema o.
func requiring(o map[string]any, fields ...string) map[string]any {
	req, _ := o["required"].([]string)
	o["required"] = append(req, fields...)
	return o
}

func listOf(item string) map[string]any {
	return obj([]string{"items", "next_cursor"}, map[string]any{"items": array(ref(item)), "next_cursor": str()})
}

func schemas() map[string]any {
	memoryTypes := enum("working", "episodic", "semantic", "procedural")
	message := map[string]any{
		"role": enum("user", "assistant", "system", "tool"), "content": str(), "name": str(), "metadata": object(), "embedding": embedding(),
	}
	return map[string]any{
		"Object":  object(),
		"Health":  obj(nil, map[string]any{"status": str(), "version": str()}),
		"Metrics": map[string]any{"type": "string", "description": "the process's metrics in the Prometheus text format: arq_http_*, arq_projection_*, arq_log_head_position, arq_db_pool_*, go_* and process_*"},
		"Ready":   obj(nil, map[string]any{"ready": boolean(), "checks": object()}),
		"Stats":   obj(nil, map[string]any{"counts": object(), "projections": array(object())}),
		"RebuildJob": obj([]string{"projection", "state", "started_at"}, map[string]any{"projection": str(), "state": enum("running", "done", "failed"),
			"position": integer(), "target": integer(), "checkpoint": str(), "error": str(), "started_at": strf("date-time"), "finished_at": strf("date-time")}),
		"Problem": obj([]string{"type", "title", "status"}, map[string]any{"type": str(), "title": str(), "status": integer(), "detail": str(), "instance": str(), "request_id": str(), "errors": array(obj(nil, map[string]any{"field": str(), "message": str()}))}),
		"Accepted": obj(nil, map[string]any{"id": str(), "version": integer(), "position": str(),
			"messages": map[string]any{"type": "array", "description": "of a message append: each message's id and seq",
				"items": obj([]string{"id", "seq"}, map[string]any{"id": str(), "seq": integer()})}}),

		"User": resource(map[string]any{"external_id": str(), "name": str(), "email": str(), "metadata": object(),
			"deleted": described(boolean(), pastOnly+"whether the user had been deleted by then")}),
		"UserList":     listOf("User"),
		"Erased":       obj([]string{"id", "erased"}, map[string]any{"id": str(), "erased": described(boolean(), "always true: the erasure is complete")}),
		"RegisterUser": obj([]string{"external_id", "name"}, map[string]any{"external_id": str(), "name": str(), "email": str(), "metadata": object()}),
		"UpdateUser":   obj(nil, map[string]any{"name": str(), "email": str(), "metadata": object()}),

		"Session": resource(map[string]any{"user_id": str(), "title": str(), "metadata": object(),
			"status":     described(enum("open", "closed", "expired", "deleted"), "deleted only in a read by as_of after the user's deletion"),
			"expires_at": strf("date-time"), "message_count": integer(), "deleted_with_user": withUser()}),
		"SessionWithToken": map[string]any{"allOf": []any{ref("Session"), obj([]string{"token"}, map[string]any{"token": str()})}},
		"SessionList":      listOf("Session"),
		"StartSession":     obj(nil, map[string]any{"title": str(), "metadata": object(), "ttl_seconds": integer()}),
		"ExtendSession":    obj([]string{"ttl_seconds"}, map[string]any{"ttl_seconds": integer()}),
		"ValidateSession":  obj([]string{"token"}, map[string]any{"token": str()}),

		"Message": resource(map[string]any{"session_id": str(), "user_id": str(), "seq": integer(), "role": message["role"], "content": str(), "name": str(), "metadata": object(), "tokens": integer(), "embedding_dim": integer(),
			"redacted": described(boolean(), pastOnly+"whether the message had been deleted (redacted) by then"), "deleted_with_user": withUser()}),
		"MessageList":    listOf("Message"),
		"NewMessage":     obj([]string{"role", "content"}, message),
		"AppendMessages": map[string]any{"oneOf": []any{ref("NewMessage"), obj([]string{"messages"}, map[string]any{"messages": array(ref("NewMessage"))})}},
		"EditMessage":    obj(nil, map[string]any{"content": str(), "metadata": object(), "embedding": embedding()}),

		// A single message is answered as itself, a batch as {"messages": [...]}.
		"AppendedMessages": map[string]any{"oneOf": []any{ref("Message"), obj([]string{"messages"}, map[string]any{"messages": array(ref("Message"))})}},

		"Memory": resource(map[string]any{"user_id": str(), "type": memoryTypes, "content": str(), "importance": number(), "tags": array(str()),
			"metadata": object(), "source_session_id": str(), "source_message_id": str(), "tokens": integer(), "expires_at": strf("date-time"), "embedding_dim": integer(),
			"deleted": described(boolean(), pastOnly+"whether the memory had been deleted by then, on its own or with its user"), "deleted_with_user": withUser()}),
		"MemoryList": listOf("Memory"),

		"WindowRequest": obj(nil, map[string]any{"max_tokens": integer(), "query": str(), "embedding": embedding(), "summary_share": number(), "memory_share": number()}),
		"ContextWindow": obj([]string{"session_id", "max_tokens", "messages", "memories", "total_tokens"}, map[string]any{
			"session_id": str(), "user_id": str(), "query": str(), "max_tokens": integer(), "summary_share": number(), "memory_share": number(),
			"summary":      obj(nil, map[string]any{"version": integer(), "content": str(), "tokens": integer(), "from_seq": integer(), "to_seq": integer(), "method": str(), "cost": integer()}),
			"messages":     array(map[string]any{"allOf": []any{ref("Message"), obj([]string{"cost"}, map[string]any{"cost": integer()})}}),
			"memories":     array(map[string]any{"allOf": []any{ref("Memory"), obj([]string{"cost", "score"}, map[string]any{"cost": integer(), "score": number()})}}),
			"total_tokens": integer(),
		}),
		"ContextSnapshot": requiring(resource(map[string]any{
			"session_id": str(), "user_id": str(), "message_id": str(), "query": str(), "max_tokens": integer(), "total_tokens": integer(),
			"items": array(obj([]string{"kind", "id", "version", "tokens", "content"}, map[string]any{
				"kind": enum("summary", "message", "memory"), "id": str(), "version": integer(), "seq": integer(), "tokens": integer(),
				"role": str(), "name": str(), "type": str(), "content": str()})),
		}), "session_id", "items", "total_tokens"),
		"ContextSnapshotList": listOf("ContextSnapshot"),
		"EventPage": obj([]string{"items", "next_cursor"}, map[string]any{"next_cursor": str(), "items": array(obj(nil, map[string]any{
			"cursor": str(), "position": integer(), "transaction_id": integer(), "event_id": str(), "stream_id": str(), "stream_type": str(),
			"version": integer(), "event_type": str(), "schema_version": integer(), "data": object(), "metadata": object(), "recorded_at": strf("date-time")}))}),
		"History": obj([]string{"items"}, map[string]any{"items": array(obj(nil, map[string]any{"version": integer(), "event_id": str(), "event_type": str(),
			"recorded_at": strf("date-time"), "actor": str(), "request_id": str(), "client_request_id": str(), "position": integer(),
			"changes": map[string]any{"type": "object", "additionalProperties": obj(nil, map[string]any{"before": map[string]any{}, "after": map[string]any{}})}}))}),
		"Verification": obj([]string{"stream_id", "intact", "events", "breaks"}, map[string]any{"stream_id": str(), "intact": boolean(), "events": integer(),
			"breaks":      array(obj(nil, map[string]any{"stream_id": str(), "version": integer(), "event_id": str(), "position": integer(), "problem": str()})),
			"first_break": obj(nil, map[string]any{"stream_id": str(), "version": integer(), "event_id": str(), "position": integer(), "problem": str()})}),
		"Checkpoint": obj([]string{"origin", "size", "root", "time", "note"}, map[string]any{"origin": str(), "size": integer(), "root": str(), "time": strf("date-time"),
			"note": map[string]any{"type": "string", "description": "the C2SP checkpoint signed as a note (Ed25519); see package logproof"}}),
		"ConsistencyProof": obj([]string{"from", "to", "hashes"}, map[string]any{"from": integer(), "to": integer(), "hashes": array(str())}),
		"InclusionProof": obj([]string{"event_id", "event_hash", "position", "leaf_index", "tree_size", "hashes"}, map[string]any{"event_id": str(), "event_hash": str(),
			"position": integer(), "leaf_index": integer(), "tree_size": integer(), "hashes": array(str()), "checkpoint": ref("Checkpoint")}),
		"EventStream": map[string]any{"type": "string", "description": "text/event-stream: each event has id (its cursor), event (its type) and data (the event as JSON)"},
		"MemoryHits":  obj([]string{"items"}, map[string]any{"items": array(map[string]any{"allOf": []any{ref("Memory"), obj([]string{"score"}, map[string]any{"score": number()})}})}),
		"StoreMemory": obj([]string{"type", "content"}, map[string]any{"type": memoryTypes, "content": str(), "importance": number(), "tags": array(str()), "metadata": object(),
			"source_session_id": str(), "source_message_id": str(), "ttl_seconds": integer(), "expires_at": strf("date-time"), "embedding": embedding()}),
		"UpdateMemory": obj(nil, map[string]any{"content": str(), "importance": number(), "tags": array(str()), "metadata": object(),
			"ttl_seconds": integer(), "expires_at": strf("date-time"), "clear_expiry": boolean(), "embedding": embedding()}),
		"SearchMemories": obj(nil, map[string]any{"query": str(), "embedding": embedding(), "types": array(memoryTypes), "tag": str(), "session_id": str(), "min_importance": number(),
			"created_before": strf("date-time"), "created_after": strf("date-time"), "metadata": map[string]any{"type": "object", "additionalProperties": str()}, "limit": integer()}),

		"CreateKey": obj([]string{"name", "scopes"}, map[string]any{"name": str(), "scopes": array(enum("read", "write", "admin")),
			"tenant":  described(str(), "the tenant the key acts in; default: the caller's own (the admin key's: default). A tenant's admin key makes keys of its own tenant alone"),
			"user_id": described(str(), "narrows the key to this user of its tenant: it reaches that user's sessions, messages and memories alone, and may not hold admin")}),
		"Key": requiring(resource(map[string]any{"name": str(), "scopes": array(str()), "tenant": str(),
			"user_id": described(str(), "the one user the key is narrowed to, if any")}), "tenant"),
		"CreateTenant": obj([]string{"id", "name"}, map[string]any{"id": described(str(), "1 to 63 of a-z, 0-9, _ and -"), "name": str(),
			"rate_limit": described(integer(), "requests a second each key of the tenant may send (0: none); null: the deployment's ARQ_RATE_LIMIT"),
			"rate_burst": described(integer(), "requests at once; null: twice rate_limit")}),
		"TenantLimits": obj(nil, map[string]any{"rate_limit": integer(), "rate_burst": integer()}),
		"Tenant": obj([]string{"id", "name", "created_at"}, map[string]any{"id": str(), "name": str(), "created_at": strf("date-time"),
			"rate_limit": map[string]any{"type": []string{"integer", "null"}}, "rate_burst": map[string]any{"type": []string{"integer", "null"}}}),
		"TenantList":    obj([]string{"items"}, map[string]any{"items": array(ref("Tenant"))}),
		"KeyWithSecret": map[string]any{"allOf": []any{ref("Key"), obj([]string{"key"}, map[string]any{"key": str()})}},
		"KeyList":       obj([]string{"items"}, map[string]any{"items": array(ref("Key"))}),
	}
}
