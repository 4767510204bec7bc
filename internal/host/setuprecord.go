package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// writeSetupRecord records a setup that went through.
func writeSetupRecord(l Layout, fingerprint string) error {
	if fingerprint == "" {
		return errors.New("setup record: no fingerprint")
	}
	b, _ := json.Marshal(hostproto.SetupRecord{Fingerprint: fingerprint, At: time.Now().UTC().Truncate(time.Second)})
	if err := writeFileAtomic(l.SetupRecord(), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("setup record: %w", err)
	}
	return nil
}

// readSetupRecord is the record of the last setup, or nil.
func readSetupRecord(l Layout) *hostproto.SetupRecord {
	b, err := os.ReadFile(l.SetupRecord())
	if err != nil {
		return nil
	}
	var r hostproto.SetupRecord
	if json.Unmarshal(b, &r) != nil || r.Fingerprint == "" {
		return nil
	}
	return &r
}
