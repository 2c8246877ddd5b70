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
