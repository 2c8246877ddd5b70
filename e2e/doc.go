// Package e2e holds the HTTP end-to-end tests of arq: each starts the real
// server in-process (app.Migrate, app.Open, App.Serve) on 127.0.0.1:0 over
// a fresh database, and runs the arq binary, built once by TestMain, for
// the commands a test also uses (export, import, rebuild...). They need
// Postgres on 127.0.0.1:5432 (or ARQ_TEST_DATABASE_URL) and Redis on
// 127.0.0.1:6379:
//
//	go test -race ./e2e/
//
// The package has no code of its own; tests of the command line itself
// are in cmd/arq.
package e2e
