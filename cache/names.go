package cache

import (
	"strconv"
)

// The names ARQ gives its keys and topics in Redis are made here and only
// here, so that a reader sees at once what one Redis holds for ARQ and
// how deployments sharing it are kept apart. Every name starts with
// "arq:<namespace>:", the namespace naming the deployment (see Namespace).

// Namespace is the part of every Redis key and of the live topic that
// keeps apart the deployments sharing one Redis: the database's name, for
// the operator, and its identity, because the name alone is the same
// (arq, by default) for deployments on different Postgres clusters.
func Namespace(database, id string) string {
	return database + ":" + id
}

// LiveTopic is the Redis Streams topic a deployment's live updates travel
// on.
func LiveTopic(namespace string) string {
	return "arq:" + namespace + ":events"
}

// entityPrefix begins the key of every entity a deployment keeps (see
// Entities); the entity's kind and id follow.
func entityPrefix(namespace string) string {
	return "arq:" + namespace + ":ent:" + entityShape + ":"
}

// windowPrefix begins the key of every context window a deployment keeps
// (see Windows); the window's session, state, budget and query follow.
func windowPrefix(namespace string) string {
	return "arq:" + namespace + ":ctx:" + windowShape + ":"
}

// appendWindowKey appends to b the part of a window's key after its
// prefix: "<session>:<messages>.<summaries>.<memories>.<rebuilds>:<max
// tokens>:<summary share>:<memory share>:<query hash in hex>".
func appendWindowKey(b []byte, sessionID string, gens [4]int64, maxTokens int, summaryShare, memoryShare float64, query []byte) []byte {
	b = append(b, sessionID...)
	for i, g := range gens {
		b = append(b, ":."[min(i, 1)])
		b = strconv.AppendInt(b, g, 10)
	}
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(maxTokens), 10)
	b = append(b, ':')
	b = strconv.AppendFloat(b, summaryShare, 'g', -1, 64)
	b = append(b, ':')
	b = strconv.AppendFloat(b, memoryShare, 'g', -1, 64)
	b = append(b, ':')
	const hex = "0123456789abcdef"
	for _, c := range query {
		b = append(b, hex[c>>4], hex[c&0xf])
	}
	return b
}
