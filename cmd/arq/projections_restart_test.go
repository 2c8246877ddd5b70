package main

import (
	"context"
	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testwait"
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
)

// Projections that could not start (the database refused to record them
// as running) start again by themselves once it accepts, and apply the
// log: the process does not go on without them.
func TestProjectionsStartAgainAfterAFailedStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.New(t)
	if code, _, errOut := runCLI(t, url, "migrate"); code != 0 {
		t.Fatalf("migrate: %d %s", code, errOut)
	}
	pool := testdb.Pool(t, url)
	if _, err := pool.Exec(ctx, `ALTER TABLE projection_status RENAME TO projection_status_away`); err != nil {
		t.Fatal(err)
	}
	p := startArq(t, url, []string{"ARQ_LOG_LEVEL=info"}, "project")
	testwait.Eventually(t, 30*time.Second, "a failed start logged", func() (bool, error) {
		return strings.Contains(p.stderr.String(), "projections failed to run; starting them again"), nil
	})
	if _, err := pool.Exec(ctx, `ALTER TABLE projection_status_away RENAME TO projection_status`); err != nil {
		t.Fatal(err)
	}
	if _, err := eventstore.New(pool).Append(ctx, eventstore.Stream{ID: "t-1", Type: "test"}, eventstore.Any(), eventstore.Event{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 30*time.Second, "the projections running and applying the log", func() (bool, error) {
		var running, applied int
		err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM projection_status WHERE state = 'running'),
			(SELECT count(*) FROM streams WHERE stream_id = 't-1')`).Scan(&running, &applied)
		return running == len(app.Projections()) && applied == 1, err
	})
}
