package vault

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// sealedField is the payload member that holds an event's sealed personal
// fields in place of the fields themselves.
const sealedField = "sealed"

// envelope is what sealedField holds, {"k": key id, "c": ciphertext}:
// the data key's id and the personal fields as one JSON object,
// encrypted (nonce first) and base64-encoded, bound to the event's id and
// type.
type envelope struct {
	Key        string
	Ciphertext []byte
}

// encodeEnvelope is the member sealedField: env as JSON. Neither a key id
// (a unit and a ULID) nor base64 needs escaping in a JSON string.
func encodeEnvelope(keyID string, ciphertext []byte) []byte {
	b := make([]byte, 0, len(sealedField)+len(keyID)+base64.StdEncoding.EncodedLen(len(ciphertext))+20)
	b = append(b, `"`+sealedField+`":{"k":"`...)
	b = append(b, keyID...)
	b = append(b, `","c":"`...)
	b = base64.StdEncoding.AppendEncode(b, ciphertext)
	return append(b, `"}`...)
}

// decodeEnvelope reads what encodeEnvelope wrote (as jsonb gives it back).
func decodeEnvelope(raw []byte) (*envelope, error) {
	var env envelope
	var err error
	walkErr := eachMember(raw, func(key, member []byte) {
		val := valueOf(member)
		if len(val) < 2 || val[0] != '"' || val[len(val)-1] != '"' || bytes.IndexByte(val, '\\') >= 0 {
			err = fmt.Errorf("sealed field %q is not a plain string", key)
			return
		}
		val = val[1 : len(val)-1]
		switch string(key) {
		case "k":
			env.Key = string(val)
		case "c":
			env.Ciphertext, err = base64.StdEncoding.AppendDecode(nil, val)
		}
	})
	if err == nil {
		err = walkErr
	}
	if err == nil && env.Key == "" {
		err = errors.New("no key id")
	}
	if err != nil {
		return nil, fmt.Errorf("decode sealed fields: %w", err)
	}
	return &env, nil
}

func aad(eventID, eventType string) []byte { return []byte(eventID + "\x00" + eventType) }

// Seal seals the personal fields of the appends' events (see
// eventstore.Sealer), each event under a new data key of its own.
func (v *Vault) Seal(ctx context.Context, appends []eventstore.StreamAppend) (*eventstore.Keep, error) {
	var k keeping
	for i := range appends {
		a := &appends[i]
		for j := range a.Events {
			if err := v.sealEvent(a.Stream, &a.Events[j], &k); err != nil {
				return nil, fmt.Errorf("event %s of %s: %w", a.Events[j].Type, a.Stream.ID, err)
			}
		}
	}
	return v.keep(ctx, &k)
}

func (v *Vault) sealEvent(st eventstore.Stream, e *eventstore.Event, k *keeping) error {
	p, ok := domain.PersonalData(e.Type)
	if !ok || len(e.Data) == 0 {
		return nil
	}
	clear := make([]byte, 1, len(e.Data)+160)
	clear[0] = '{'
	personal := []byte{'{'}
	var idValue, userValue []byte
	sealedAlready := false
	err := eachMember(e.Data, func(key, member []byte) {
		name := string(key)
		switch {
		case name == sealedField:
			sealedAlready = true
		case slices.Contains(p.Fields, name):
			personal = appendMember(personal, member)
			return
		case name == p.IDField:
			idValue = valueOf(member)
		}
		if name == "user_id" {
			userValue = valueOf(member)
		}
		clear = appendMember(clear, member)
	})
	if err != nil {
		return err
	}
	if sealedAlready {
		return fmt.Errorf("payload holds %q already", sealedField)
	}
	if len(personal) == 1 {
		return nil // no personal field given
	}
	personal = append(personal, '}')
	unit, owner := unitOf(p, st, e.ID, idValue, userValue)
	if unit == "" {
		return fmt.Errorf("no id for its %s", p.Unit)
	}
	key, err := newKey(newDataKey())
	if err != nil {
		return err
	}
	master, wrapped := v.keys.wrap(e.ID, key.raw)
	k.add(e.ID, domain.KeyID(p.Unit, unit), owner, master, wrapped)
	v.remember(e.ID, key)
	clear = appendMember(clear, encodeEnvelope(e.ID, seal(key.aead, personal, aad(e.ID, e.Type))))
	e.Data = append(clear, '}')
	return nil
}

// valueOf is the value of a member "key":value.
func valueOf(member []byte) []byte {
	end, err := skipString(member, 0)
	if err != nil {
		return nil
	}
	i := skipSpace(member, end)
	if i < len(member) && member[i] == ':' {
		return member[skipSpace(member, i+1):]
	}
	return nil
}

// unitOf is the id of the unit an event's personal fields belong to, and
// the user who owns it ("" when the payload does not say), from the
// payload's id field and user_id (JSON values) where it has them.
func unitOf(p domain.Personal, st eventstore.Stream, eventID string, idValue, userValue []byte) (unit, owner string) {
	str := func(raw []byte) string {
		var s string
		if raw != nil {
			_ = json.Unmarshal(raw, &s)
		}
		return s
	}
	switch {
	case p.IDField != "":
		unit = str(idValue)
	case p.Unit == domain.UnitSummary:
		unit = eventID
	default:
		unit = strings.TrimPrefix(st.ID, st.Type+"-")
	}
	owner = str(userValue)
	if owner == "" && p.Unit == domain.UnitUser {
		owner = unit
	}
	return unit, owner
}

// Open opens events read from the log (see eventstore.Sealer) with data
// keys read from the key store now: an event whose key is gone is marked
// Erased and keeps only its fields in the clear. Every read that hands
// events out opens them this way, so no process serves a key it
// remembers after another one erased it.
func (v *Vault) Open(ctx context.Context, events []eventstore.Recorded) error {
	return v.open(ctx, events, false)
}

// Recent opens events as Open does, but with the data keys the process
// made or read within the last DefaultKeyTTL when it has them: for the
// projections, which apply every event as it is appended, and whose
// tables an erasure clears by its own event.
func (v *Vault) Recent() eventstore.Opener { return recent{v} }

type recent struct{ v *Vault }

func (r recent) Open(ctx context.Context, events []eventstore.Recorded) error {
	return r.v.open(ctx, events, true)
}

func (v *Vault) open(ctx context.Context, events []eventstore.Recorded, useRecent bool) error {
	var need []string
	envs := make([]*envelope, len(events))
	for i := range events {
		env, err := sealedOf(events[i].Data)
		if err != nil {
			return fmt.Errorf("event %s: %w", events[i].EventID, err)
		}
		if env == nil {
			continue
		}
		envs[i] = env
		if useRecent {
			if _, ok := v.remembered(env.Key); ok {
				continue
			}
		}
		need = append(need, env.Key)
	}
	keys := map[string]*dataKey{}
	if len(need) > 0 {
		var err error
		if keys, err = v.fetch(ctx, need); err != nil {
			return err
		}
	}
	for i, env := range envs {
		if env == nil {
			continue
		}
		key, ok := keys[env.Key]
		if !ok && useRecent {
			key, ok = v.remembered(env.Key)
		}
		err := openEvent(&events[i], env, key, ok)
		if err != nil && useRecent && !containsKey(need, env.Key) {
			// A remembered key that does not open it: read the stored one.
			fresh, ferr := v.fetch(ctx, []string{env.Key})
			if ferr != nil {
				return ferr
			}
			key, ok = fresh[env.Key]
			err = openEvent(&events[i], env, key, ok)
		}
		if err != nil {
			return fmt.Errorf("event %s: %w", events[i].EventID, err)
		}
	}
	return nil
}

func containsKey(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// sealedOf is the envelope of an event's data, nil when it has none.
func sealedOf(data []byte) (*envelope, error) {
	if !bytes.Contains(data, []byte(`"`+sealedField+`"`)) {
		return nil, nil
	}
	var raw []byte
	err := eachMember(data, func(key, member []byte) {
		if string(key) == sealedField {
			raw = valueOf(member)
		}
	})
	if err != nil || raw == nil {
		return nil, err
	}
	return decodeEnvelope(raw)
}

// openEvent puts e's personal fields back from env with key, or, when the
// key is gone (!ok), drops env and marks e Erased.
func openEvent(e *eventstore.Recorded, env *envelope, key *dataKey, ok bool) error {
	var plain []byte
	if ok {
		var err error
		if plain, err = open(key.aead, env.Ciphertext, aad(e.EventID, e.Type)); err != nil {
			return fmt.Errorf("open sealed fields with data key %s: %w", env.Key, err)
		}
	}
	out := make([]byte, 1, len(e.Data)+len(plain))
	out[0] = '{'
	err := eachMember(e.Data, func(key, member []byte) {
		if string(key) != sealedField {
			out = appendMember(out, member)
		}
	})
	if err != nil {
		return err
	}
	if err := eachMember(plain, func(_, member []byte) { out = appendMember(out, member) }); err != nil && ok {
		return fmt.Errorf("decode sealed fields: %w", err)
	}
	e.Data, e.Erased = append(out, '}'), !ok
	return nil
}
