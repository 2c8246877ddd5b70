// Package domain is ARQ's product model: users, sessions, messages and
// memories, the commands that change them and the events those commands
// decide. It knows nothing of Postgres, HTTP, Redis or Watermill; the
// adapters (eventstore, projections, api) depend on it, never the other way
// (imports_test.go holds that line).
package domain
