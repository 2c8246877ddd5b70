package eventstore

import (
	"encoding/json"
	"fmt"
)

func decodeMetadata(raw []byte, md *Metadata) error {
	if len(raw) == 0 {
		md.Tenant = DefaultTenant
		return nil
	}
	if err := json.Unmarshal(raw, md); err != nil {
		return fmt.Errorf("decode metadata: %w", err)
	}
	if md.Tenant == "" {
		md.Tenant = DefaultTenant
	}
	return nil
}

// encodeMetadata is the jsonb form of md, as appends write it.
func encodeMetadata(md Metadata) ([]byte, error) {
	if md.Tenant == "" {
		md.Tenant = DefaultTenant
	}
	b, err := json.Marshal(md)
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	return b, nil
}
