// Package store is the release store: an app's releases in an
// S3-compatible bucket, as the content-addressed objects deltas are made
// of (internal/release's index and chunks), and the signed record that
// says which release the app's hosts run. The operator's deploy puts a
// release there and moves the record; a host fetches what it lacks and
// checks every object by its sha256 and the record by its signature,
// with the one public key setup gave it.
//
// The bucket, under its prefix:
//
//	current             the signed record of the release the hosts run
//	releases/ID         the signed record each release was published with
//	manifests/SHA256    a release's manifest (JSON), named by its sha256
//	indexes/SHA256      a release's file index (zstd), by the sha256 of its canonical bytes
//	specs/SHA256        the host spec a record's release is activated with (JSON), by its sha256
//	objects/SHA256      a small file or a chunk of a large one (zstd), by the sha256 of its content
package store

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hoistdev/hoist/internal/names"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/signkey"
)

// Record says which release an app's hosts run: its id, and the sha256
// of its manifest and of its index, which name every object of it. Seq
// grows by one at each record that replaces another, so that a host can
// refuse an old record played back to it; Prev is the sha256 of the
// signed record it replaced.
type Record struct {
	App         string `json:"app"`
	Destination string `json:"destination,omitempty"`
	Release     string `json:"release"`
	Manifest    string `json:"manifest"`
	Index       string `json:"index"`
	// Spec is the sha256 of the host spec (specs/SHA256) the release
	// is activated with, so that a host that missed a deploy (down,
	// cut off, booted from an image) can switch to it by itself; empty
	// in records of a hoist from before it.
	Spec string `json:"spec,omitempty"`
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev,omitempty"`
	// Op is what moved the record: deploy, rollback, or undo (a deploy
	// that failed going back).
	Op string    `json:"op"`
	At time.Time `json:"at"`
	// By is who signed it (user@machine), for people.
	By string `json:"by,omitempty"`
}

// Record ops.
const (
	OpDeploy   = "deploy"
	OpRollback = "rollback"
	OpUndo     = "undo"
)

var byPattern = regexp.MustCompile(`^[\x20-\x7e]{0,200}$`)

// Validate checks a record read from an untrusted place (its signature
// is checked before).
func (r *Record) Validate() error {
	switch {
	case names.CheckApp(r.App) != "":
		return fmt.Errorf("record: invalid app %q", r.App)
	case r.Destination != "" && !destPattern.MatchString(r.Destination):
		return fmt.Errorf("record: invalid destination %q", r.Destination)
	case !release.ValidID(r.Release):
		return fmt.Errorf("record: invalid release id %q", r.Release)
	case !release.ValidSum(r.Manifest) || !release.ValidSum(r.Index):
		return fmt.Errorf("record of %s: invalid manifest or index sum", r.Release)
	case r.Spec != "" && !release.ValidSum(r.Spec):
		return fmt.Errorf("record of %s: invalid sum of its host spec", r.Release)
	case r.Prev != "" && !release.ValidSum(r.Prev):
		return fmt.Errorf("record of %s: invalid sum of the record it replaced", r.Release)
	case r.Seq == 0 || r.Seq > 1<<53:
		return fmt.Errorf("record of %s: invalid sequence number %d", r.Release, r.Seq)
	case r.Op != OpDeploy && r.Op != OpRollback && r.Op != OpUndo:
		return fmt.Errorf("record of %s: unknown op %q", r.Release, r.Op)
	case !byPattern.MatchString(r.By):
		return fmt.Errorf("record of %s: invalid signer name", r.Release)
	}
	return nil
}

// destPattern is a destination's name (config.ValidDestination).
var destPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)

// A signed record travels as an envelope: the record's JSON exactly as
// it was signed (base64), the fingerprint of the key that signed it (for
// messages: it is not trusted) and the ed25519 signature of
// signedPrefix followed by those bytes. Checking the bytes that were
// signed, not a re-encoding, leaves nothing to canonicalize.
type envelope struct {
	Record    string `json:"record"`
	Key       string `json:"key"`
	Signature string `json:"signature"`
}

// signedPrefix keeps a record's signature from meaning anything else
// the key might sign.
const signedPrefix = "hoist store record v1\n"

// MaxRecordSize bounds a signed record a host reads.
const MaxRecordSize = 16 << 10

// Sign encodes r and signs it with key.
func Sign(key ed25519.PrivateKey, r *Record) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("sign record: %w", err)
	}
	sig := ed25519.Sign(key, append([]byte(signedPrefix), payload...))
	b, err := json.Marshal(envelope{Record: base64.StdEncoding.EncodeToString(payload), Key: ssh.FingerprintSHA256(pub),
		Signature: base64.StdEncoding.EncodeToString(sig)})
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	return append(b, '\n'), nil
}

// A Signed record is one whose signature was checked, with its bytes
// (what the next record's Prev names).
type Signed struct {
	Record
	// Raw is the record as it is stored.
	Raw []byte
}

// Sum is the sha256 of the signed record's bytes.
func (s *Signed) Sum() string { return release.SumBytes(s.Raw) }

// WrongKeyError is a record that the trusted key did not sign.
type WrongKeyError struct {
	// Claimed is the fingerprint the record names (anyone can write it);
	// Trusted the fingerprint of the key that was required.
	Claimed, Trusted string
}

func (e *WrongKeyError) Error() string {
	if e.Claimed == e.Trusted {
		return fmt.Sprintf("the record's signature does not verify with the key it names (%s): it was altered or forged", e.Trusted)
	}
	return fmt.Sprintf("the record is signed by key %s, not by %s, the only key trusted here", orUnknown(e.Claimed), e.Trusted)
}

func orUnknown(s string) string {
	if s == "" {
		return "(none named)"
	}
	return s
}

// Verify checks raw's signature with key and decodes the record.
func Verify(key ed25519.PublicKey, raw []byte) (*Signed, error) {
	env, payload, sig, err := parseEnvelope(raw)
	if err != nil {
		return nil, err
	}
	trusted, err := signkey.Fingerprint(key)
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(key, append([]byte(signedPrefix), payload...), sig) {
		return nil, &WrongKeyError{Claimed: env.Key, Trusted: trusted}
	}
	r, err := parsePayload(payload)
	if err != nil {
		return nil, err
	}
	return &Signed{Record: *r, Raw: bytes.Clone(raw)}, nil
}

// Parse decodes a signed record without checking its signature: for
// what cannot be trusted anyway (a message naming what the bucket
// holds). Use Verify for anything a host acts on.
func Parse(raw []byte) (*Record, string, error) {
	env, payload, _, err := parseEnvelope(raw)
	if err != nil {
		return nil, "", err
	}
	r, err := parsePayload(payload)
	return r, env.Key, err
}

func parseEnvelope(raw []byte) (envelope, []byte, []byte, error) {
	var env envelope
	if len(raw) > MaxRecordSize {
		return env, nil, nil, fmt.Errorf("record: %d bytes, at most %d", len(raw), MaxRecordSize)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return env, nil, nil, fmt.Errorf("decode record: %w", err)
	}
	if dec.More() {
		return env, nil, nil, errors.New("decode record: data after the record")
	}
	payload, err := base64.StdEncoding.Strict().DecodeString(env.Record)
	if err != nil {
		return env, nil, nil, fmt.Errorf("decode record: %w", err)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(env.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return env, nil, nil, errors.New("decode record: malformed signature")
	}
	return env, payload, sig, nil
}

func parsePayload(payload []byte) (*Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode record: data after the record")
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}
