package hostproto

import (
	"fmt"
	"strings"
)

// Protocol is the version of the host protocol this hoist speaks. It
// changes when a verb's arguments or results change so that the other
// end could not read them; hoists of other versions that speak the same
// protocol work together (setup --hoist-binary puts another on a host).
//
// 2: the store's records name the host spec (store.Record.Spec), which
// a host of protocol 1 refuses as an unknown field.
const Protocol = 2

// Hoist is this hoist's version, as `hoist --version` names it, for the
// other end to name in a mismatch; internal/cli sets it when it starts.
var Hoist = "dev"

// ExitVersion is the exit status of `hoist host` asked by a hoist that
// speaks another protocol.
const ExitVersion = 3

// Peer is one end of the protocol: its hoist and the protocol it
// speaks. The client sends its own with every request; a host that
// refuses it answers with its own.
type Peer struct {
	Hoist    string `json:"hoist"`
	Protocol int    `json:"protocol"`
}

// Self is this end.
func Self() *Peer { return &Peer{Hoist: Hoist, Protocol: Protocol} }

// VersionError is a host's refusal of a request from a hoist that
// speaks another protocol.
type VersionError struct {
	Client Peer `json:"client"`
	Host   Peer `json:"host"`
}

// versionFormat is how a VersionError reads; a stream verb's client
// reads it back from the host's stderr (ParseVersionError).
const versionFormat = "hoist on the host is %s (protocol %d), the client is hoist %s (protocol %d)"

func (e *VersionError) Error() string {
	return fmt.Sprintf(versionFormat, e.Host.Hoist, e.Host.Protocol, e.Client.Hoist, e.Client.Protocol)
}

// ParseVersionError finds the VersionError a host wrote in its stderr
// s, as a stream verb's refusal; nil when there is none.
func ParseVersionError(s string) *VersionError {
	i := strings.Index(s, "hoist on the host is ")
	if i < 0 {
		return nil
	}
	var e VersionError
	if n, _ := fmt.Sscanf(s[i:], versionFormat, &e.Host.Hoist, &e.Host.Protocol, &e.Client.Hoist, &e.Client.Protocol); n != 4 {
		return nil
	}
	return &e
}

// CheckVersion is the host's check of the client that sent req: nil
// when both speak this protocol, or when the client is a hoist from
// before the handshake, which sends no version.
func CheckVersion(req Request) error {
	if req.Client == nil || req.Client.Protocol == Protocol {
		return nil
	}
	return &VersionError{Client: *req.Client, Host: *Self()}
}
