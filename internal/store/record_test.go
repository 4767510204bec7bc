package store

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/signkey"
)

func testKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := signkey.GenerateKey("test")
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func testRecord() *Record {
	return &Record{App: "shop", Release: "20261125T014500Z-1a2b3c4d5e6f", Manifest: strings.Repeat("a", 64),
		Index: strings.Repeat("b", 64), Spec: strings.Repeat("d", 64), Seq: 7, Prev: strings.Repeat("c", 64), Op: OpDeploy,
		At: time.Date(2026, 11, 25, 1, 45, 0, 0, time.UTC), By: "ada@laptop"}
}

func TestSignVerify(t *testing.T) {
	key := testKey(t)
	raw, err := Sign(key, testRecord())
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(key.Public().(ed25519.PublicKey), raw)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(testRecord(), &got.Record); diff != "" {
		t.Errorf("verified record differs (-want +got):\n%s", diff)
	}
	if !bytes.Equal(got.Raw, raw) || got.Sum() == "" {
		t.Errorf("the signed record's bytes are not kept")
	}
}

func TestVerifyRefuses(t *testing.T) {
	key, other := testKey(t), testKey(t)
	pub := key.Public().(ed25519.PublicKey)
	raw, err := Sign(key, testRecord())
	if err != nil {
		t.Fatal(err)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	reencode := func(f func(*envelope)) []byte {
		e := env
		f(&e)
		b, _ := json.Marshal(e)
		return b
	}
	payload, _ := base64.StdEncoding.DecodeString(env.Record)
	byOther, err := Sign(other, testRecord())
	if err != nil {
		t.Fatal(err)
	}
	trusted, _ := signkey.Fingerprint(pub)
	otherFP, _ := signkey.Fingerprint(other.Public().(ed25519.PublicKey))
	tests := map[string]struct {
		raw      []byte
		wrongKey bool
		want     string // in the error
	}{
		"signed by another key": {byOther, true, otherFP},
		"another release, same signature": {reencode(func(e *envelope) {
			e.Record = base64.StdEncoding.EncodeToString(bytes.Replace(payload, []byte("1a2b3c4d5e6f"), []byte("666666666666"), 1))
		}), true, "altered or forged"},
		"no signature":  {reencode(func(e *envelope) { e.Signature = "" }), false, "malformed signature"},
		"unknown field": {[]byte(`{"record":"","key":"","signature":"","x":1}`), false, "unknown field"},
		"trailing data": {append(bytes.TrimSpace(raw), []byte(" {}")...), false, "after the record"},
		"not JSON":      {[]byte("current"), false, "decode record"},
		"too large":     {bytes.Repeat([]byte(" "), MaxRecordSize+1), false, "at most"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(pub, tt.raw)
			if err == nil {
				t.Fatal("verified")
			}
			var wk *WrongKeyError
			if errors.As(err, &wk) != tt.wrongKey {
				t.Errorf("error %v: a wrong key is %v, want %v", err, !tt.wrongKey, tt.wrongKey)
			}
			if tt.wrongKey && !strings.Contains(err.Error(), trusted) {
				t.Errorf("error %q does not name the trusted key %s", err, trusted)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to say %q", err, tt.want)
			}
		})
	}
}

// A record that is well signed but says something invalid is refused
// all the same: a key is no licence to name paths.
func TestRecordValidate(t *testing.T) {
	key := testKey(t)
	pub := key.Public().(ed25519.PublicKey)
	tests := map[string]func(r *Record){
		"bad release id": func(r *Record) { r.Release = "../../etc" },
		"bad app":        func(r *Record) { r.App = "Shop/x" },
		"bad sum":        func(r *Record) { r.Index = "zz" },
		"no seq":         func(r *Record) { r.Seq = 0 },
		"unknown op":     func(r *Record) { r.Op = "sneak" },
		"bad prev":       func(r *Record) { r.Prev = "x" },
		"bad spec":       func(r *Record) { r.Spec = "../specs/x" },
		"bad dest":       func(r *Record) { r.Destination = "Prod" },
		"bad signer":     func(r *Record) { r.By = "a\nb" },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			r := testRecord()
			mutate(r)
			if _, err := Sign(key, r); err == nil {
				t.Error("Sign accepted it")
			}
			// Signed all the same, by hand: Verify refuses it.
			payload, _ := json.Marshal(r)
			sig := ed25519.Sign(key, append([]byte(signedPrefix), payload...))
			raw, _ := json.Marshal(envelope{Record: base64.StdEncoding.EncodeToString(payload), Signature: base64.StdEncoding.EncodeToString(sig)})
			if _, err := Verify(pub, raw); err == nil {
				t.Error("Verify accepted it")
			}
		})
	}
}

// A key made by ssh-keygen is one hoist signs with.
func TestSSHKeygenKey(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("no ssh-keygen")
	}
	p := filepath.Join(t.TempDir(), "k")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ci", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(p)
	priv, err := signkey.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	pubLine, _ := os.ReadFile(p + ".pub")
	pub, err := signkey.ParsePublicKey(string(pubLine))
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("the .pub line does not match: %v", err)
	}
	raw, err := Sign(priv, testRecord())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(pub, raw); err != nil {
		t.Fatal(err)
	}
}

// FuzzRecord: whatever the bucket holds, parsing neither panics nor
// accepts a record that fails validation, and what it accepts encodes
// back to itself; a record nobody signed never verifies.
func FuzzRecord(f *testing.F) {
	key := testKey(f)
	raw, err := Sign(key, testRecord())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte(`{"record":"e30=","key":"","signature":""}`))
	f.Add([]byte(`{"record":"","key":"SHA256:x","signature":"AAAA"}`))
	f.Add([]byte("{"))
	pub := key.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, _, err := Parse(data)
		if err != nil {
			return
		}
		if verr := r.Validate(); verr != nil {
			t.Fatalf("Parse accepted an invalid record: %v", verr)
		}
		b, _ := json.Marshal(r)
		back, err := parsePayload(b)
		if err != nil || !cmp.Equal(r, back) {
			t.Fatalf("record does not encode back to itself: %v", err)
		}
		if s, err := Verify(pub, data); err == nil && !bytes.Equal(bytes.TrimSpace(data), bytes.TrimSpace(raw)) {
			// Only the seed is signed; ed25519 signatures are not malleable.
			if !cmp.Equal(&s.Record, testRecord()) {
				t.Fatalf("verified a record nobody signed: %+v", s.Record)
			}
		}
	})
}
