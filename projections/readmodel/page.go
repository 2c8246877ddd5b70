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

// after decodes the cursor into the sort key it stands for in list (the
// list's name and owner, such as "messages:<session id>"): a cursor of
// another list is refused rather than read as a place in this one.
func (p Page) after(list string) (string, error) {
	if p.Cursor == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
	if err == nil {
		if key, ok := strings.CutPrefix(string(b), cursorPrefix+list+"|"); ok && key != "" {
			return key, nil
		}
		// Cursors given out before they named their list.
		if key, ok := strings.CutPrefix(string(b), "c1|"); ok && key != "" {
			return key, nil
		}
	}
	v := &domain.ValidationError{}
	v.Add("cursor", "is not a cursor of this list")
	return "", v
}

// cursorPrefix versions cursors, so that a string this API never gave out
// is refused rather than read as a sort key.
const cursorPrefix = "c2|"

// cursorFor makes the opaque cursor of a sort key in list.
func cursorFor(list, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + list + "|" + key))
}

// pageOf cuts rows fetched with limit+1 to limit and says the next cursor.
func pageOf[T any](rows []T, limit int, list string, key func(T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, cursorFor(list, key(rows[limit-1]))
}
