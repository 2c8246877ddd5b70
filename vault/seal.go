package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// sealedField is the payload member that holds an event's sealed personal
// fields in place of the fields themselves.
const sealedField = "sealed"

// envelope is what sealedField holds: the data key's id and the personal
// fields as one JSON object, encrypted (nonce first), bound to the event's
// id and type.
type envelope struct {
	Key        string `json:"k"`
	Ciphertext []byte `json:"c"`
}

func aad(eventID, eventType string) []byte { return []byte(eventID + "\x00" + eventType) }

// Seal seals the personal fields of the appends' events (see
// eventstore.Sealer), making the data key of each unit an event begins.
func (v *Vault) Seal(ctx context.Context, appends []eventstore.StreamAppend) (*eventstore.Keep, error) {
	var k keeping
	for i := range appends {
		a := &appends[i]
		for j := range a.Events {
			if err := v.sealEvent(ctx, a.Stream, &a.Events[j], &k); err != nil {
				return nil, fmt.Errorf("event %s of %s: %w", a.Events[j].Type, a.Stream.ID, err)
			}
		}
	}
	return v.keep(ctx, &k)
}

func (v *Vault) sealEvent(ctx context.Context, st eventstore.Stream, e *eventstore.Event, k *keeping) error {
	p, ok := domain.PersonalData(e.Type)
	if !ok || len(e.Data) == 0 {
		return nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(e.Data, &fields); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if _, ok := fields[sealedField]; ok {
		return fmt.Errorf("payload holds %q already", sealedField)
	}
	personal := make(map[string]json.RawMessage, len(p.Fields))
	for _, f := range p.Fields {
		if val, ok := fields[f]; ok {
			personal[f] = val
			delete(fields, f)
		}
	}
	if len(personal) == 0 {
		return nil
	}
	unit, owner := unitOf(p, st, e.ID, fields)
	if unit == "" {
		return fmt.Errorf("no id for its %s", p.Unit)
	}
	keyID := domain.KeyID(p.Unit, unit)
	key, err := v.dataKey(ctx, keyID, owner, p.Begins, k)
	if err != nil {
		return err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return err
	}
	plain, err := json.Marshal(personal)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	env, err := json.Marshal(envelope{Key: keyID, Ciphertext: seal(aead, plain, aad(e.ID, e.Type))})
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	fields[sealedField] = env
	if e.Data, err = json.Marshal(fields); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return nil
}

// unitOf is the id of the unit an event's personal fields belong to, and
// the user who owns it ("" when the payload does not say).
func unitOf(p domain.Personal, st eventstore.Stream, eventID string, fields map[string]json.RawMessage) (unit, owner string) {
	str := func(name string) string {
		var s string
		if raw, ok := fields[name]; ok {
			_ = json.Unmarshal(raw, &s)
		}
		return s
	}
	switch {
	case p.IDField != "":
		unit = str(p.IDField)
	case p.Unit == domain.UnitSummary:
		unit = eventID
	default:
		unit = strings.TrimPrefix(st.ID, st.Type+"-")
	}
	owner = str("user_id")
	if owner == "" && p.Unit == domain.UnitUser {
		owner = unit
	}
	return unit, owner
}

// dataKey is the data key id: a new one when the event begins its unit,
// else the one this process remembers or the key store holds, or, for a
// unit that began before sealing did, a new one.
func (v *Vault) dataKey(ctx context.Context, id, owner string, begins bool, k *keeping) ([]byte, error) {
	if !begins {
		if key, ok := v.remembered(id); ok {
			return key, nil
		}
		found, err := v.fetch(ctx, []string{id})
		if err != nil {
			return nil, err
		}
		if key, ok := found[id]; ok {
			return key, nil
		}
	}
	for i, kid := range k.ids { // made earlier in this append
		if kid == id {
			return k.plain[i], nil
		}
	}
	key := newDataKey()
	master, wrapped := v.keys.wrap(id, key)
	k.add(id, owner, master, wrapped, key)
	v.remember(id, key)
	return key, nil
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
	keys := map[string][]byte{}
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
	var probe struct {
		Sealed *envelope `json:"sealed"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("decode sealed fields: %w", err)
	}
	return probe.Sealed, nil
}

// openEvent puts e's personal fields back from env with key, or, when the
// key is gone (!ok), drops env and marks e Erased.
func openEvent(e *eventstore.Recorded, env *envelope, key []byte, ok bool) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(e.Data, &fields); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	delete(fields, sealedField)
	if ok {
		aead, err := newAEAD(key)
		if err != nil {
			return err
		}
		plain, err := open(aead, env.Ciphertext, aad(e.EventID, e.Type))
		if err != nil {
			return fmt.Errorf("open sealed fields with data key %s: %w", env.Key, err)
		}
		var personal map[string]json.RawMessage
		if err := json.Unmarshal(plain, &personal); err != nil {
			return fmt.Errorf("decode sealed fields: %w", err)
		}
		for name, val := range personal {
			fields[name] = val
		}
	}
	data, err := json.Marshal(fields)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	e.Data, e.Erased = data, !ok
	return nil
}
