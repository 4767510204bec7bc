package certs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// Issuer says where the proxy's certificates come from: its internal CA,
// or an ACME CA (Let's Encrypt unless ACMECA names another). hoist setup
// keeps it in a file on each host, which the proxy reads when it starts,
// so that a change of issuer is a reload and never a new command line.
type Issuer struct {
	Internal  bool   `json:"internal,omitempty"`
	ACMEEmail string `json:"acme_email,omitempty"`
	ACMECA    string `json:"acme_ca,omitempty"`
	// ACMERoots are PEM roots to trust the ACME CA's API with.
	ACMERoots string `json:"acme_roots,omitempty"`
}

// ReadIssuer reads an issuer file; a missing file is the zero Issuer.
func ReadIssuer(path string) (Issuer, error) {
	var iss Issuer
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return iss, nil
	}
	if err != nil {
		return iss, fmt.Errorf("read issuer: %w", err)
	}
	if err := json.Unmarshal(b, &iss); err != nil {
		return iss, fmt.Errorf("read issuer %s: %w", path, err)
	}
	return iss, iss.Validate()
}

// Validate refuses an issuer that names an internal CA and an ACME CA.
func (i Issuer) Validate() error {
	if i.Internal && (i.ACMECA != "" || i.ACMERoots != "") {
		return errors.New("issuer: the internal CA issues certificates itself; it takes no ACME CA or roots")
	}
	return nil
}

// Fingerprint identifies the issuer's settings, so that setup can tell
// whether a running proxy uses the ones on disk.
func (i Issuer) Fingerprint() string {
	b, _ := json.Marshal(i)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// Options returns the manager options for the issuer, keeping
// certificates in storage.
func (i Issuer) Options(storage string) Options {
	return Options{Storage: storage, Internal: i.Internal, CA: i.ACMECA, Email: i.ACMEEmail, Roots: []byte(i.ACMERoots)}
}
