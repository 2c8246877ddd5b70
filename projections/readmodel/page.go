package readmodel

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/arq-memory/arq/domain"
)

// Page asks for one page of a list: after Cursor (a previous answer's next
// cursor; "" for the first page), at most Limit rows (default 20, at most
// 100).
type Page struct {
	Cursor string
	Limit  int
}

const (
	defaultLimit = 20
	maxLimit     = 100
)

// limit validates the page size.
func (p Page) limit() (int, error) {
	switch {
	case p.Limit < 0:
		return 0, fmt.Errorf("%w: limit must not be negative", domain.ErrInvalid)
	case p.Limit == 0:
		return defaultLimit, nil
	case p.Limit > maxLimit:
		return maxLimit, nil
	}
	return p.Limit, nil
}

// after decodes the cursor into the sort key it stands for.
func (p Page) after() (string, error) {
	if p.Cursor == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
	key, ok := strings.CutPrefix(string(b), cursorPrefix)
	if err != nil || !ok || key == "" {
		return "", fmt.Errorf("%w: cursor %q is not one this API gave out", domain.ErrInvalid, p.Cursor)
	}
	return key, nil
}

// cursorPrefix versions cursors, so that a string this API never gave out
// is refused rather than read as a sort key.
const cursorPrefix = "c1|"

// cursorFor makes the opaque cursor of a sort key.
func cursorFor(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + key))
}

// pageOf cuts rows fetched with limit+1 to limit and says the next cursor.
func pageOf[T any](rows []T, limit int, key func(T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, cursorFor(key(rows[limit-1]))
}
