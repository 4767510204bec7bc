package hostproto

import (
	"fmt"

	"github.com/hoistdev/hoist/internal/release"
)

// ShipState is what a host holds of a release, once it was sent its
// index.
type ShipState struct {
	// Unpacked is true when the release is already in place.
	Unpacked bool `json:"unpacked,omitempty"`
	// Need is what the host lacks of the release, once it holds its index
	// (from this call, or from an earlier, cut transfer: Resumed).
	Need    *Need `json:"need,omitempty"`
	Resumed bool  `json:"resumed,omitempty"`
	// Rebase says the host does not hold the base the index was sent
	// from: send it again from one of Bases, the index sums of its kept
	// releases, newest first, or from none.
	Rebase bool     `json:"rebase,omitempty"`
	Bases  []string `json:"bases,omitempty"`
}

// Need is what a host lacks of a release.
type Need struct {
	// Missing are the objects it lacks, as ranges of positions in the
	// index's Objects().
	Missing []Range `json:"missing,omitempty"`
	// Bytes is their size, Have the size of the objects it holds.
	Bytes int64 `json:"bytes"`
	Have  int64 `json:"have"`
	// Deltas are the large files that may travel as a delta from a file
	// the host holds (the same path in the release that serves).
	Deltas []Delta `json:"deltas,omitempty"`
}

// Range is the positions [From, To).
type Range struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// Delta names a file (by sha256) and the base the host holds for it.
type Delta struct {
	File string `json:"file"`
	Base string `json:"base"`
}

// Received is what a transfer brought, and how the release was made.
type Received struct {
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`  // content bytes received
	Deltas  int   `json:"deltas"` // files made from a delta
	Linked  int   `json:"linked"` // files hard-linked from kept releases
	Files   int   `json:"files"`  // files in the release, every one checked
}

// MissingObjects lists the objects n names, in order.
func (n *Need) MissingObjects(objs []release.Object) []release.Object {
	var out []release.Object
	for _, r := range n.Missing {
		if r.From >= 0 && r.To <= len(objs) {
			out = append(out, objs[r.From:r.To]...)
		}
	}
	return out
}

// RelayOffer is what relay-serve prints when it listens: where, and the
// fingerprint (sha256 of the DER) of its certificate.
type RelayOffer struct {
	Addr        string `json:"addr"`
	Fingerprint string `json:"fingerprint"`
}

// RelayError is a transfer from a relay that failed: Reached says
// whether the relay answered at all (a host with no path to it, behind a
// firewall, never does).
type RelayError struct {
	Addr    string `json:"addr"`
	Reached bool   `json:"reached"`
	Reason  string `json:"reason"`
}

func (e *RelayError) Error() string {
	if !e.Reached {
		return fmt.Sprintf("relay %s cannot be reached from this host: %s", e.Addr, e.Reason)
	}
	return fmt.Sprintf("relay %s: %s", e.Addr, e.Reason)
}

// StoreFetched is what a fetch from the store did.
type StoreFetched struct {
	Release string `json:"release"`
	Seq     uint64 `json:"seq"`
	// Already is set when the release was on the host: nothing was
	// fetched.
	Already bool `json:"already,omitempty"`
	Received
	// Fetched is what the host read from the bucket, as stored.
	Fetched int64 `json:"fetched_bytes"`
}

// StoreSynced is what a host's sync with its store did: what it
// fetched, and whether it switched to the release the record names.
type StoreSynced struct {
	StoreFetched
	Switched bool `json:"switched,omitempty"`
}
