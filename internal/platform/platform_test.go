package platform

import (
	"strings"
	"testing"
)

// TestMessagesAreOneLine: every Linux-only feature has its own message,
// one line that names this machine's platform and what to use instead.
func TestMessagesAreOneLine(t *testing.T) {
	seen := map[string]Feature{}
	for _, f := range Features {
		m := Message(f, "darwin/arm64")
		if _, ok := messages[f]; !ok {
			t.Errorf("%s has no message of its own", f)
		}
		if strings.ContainsAny(m, "\n\r") || !strings.Contains(m, "not darwin/arm64: ") || strings.Contains(m, "%!") {
			t.Errorf("%s: %q is not one line naming the platform, then what to do", f, m)
		}
		if other, dup := seen[m]; dup {
			t.Errorf("%s and %s share the message %q", f, other, m)
		}
		seen[m] = f
	}
	if len(messages) != len(Features) {
		t.Errorf("%d messages for %d features", len(messages), len(Features))
	}
}
