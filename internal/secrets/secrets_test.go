package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/usererr"
)

func TestSaveLoadRoundTripAndEncryption(t *testing.T) {
	dir := t.TempDir()
	st := Store{Path: filepath.Join(dir, FileName), KeyPath: filepath.Join(dir, "keys", "app.age")}
	vals := map[string]string{
		"SECRET_KEY_BASE": "abc",
		"QUOTES":          `say "hi" \ $HOME = 1`,
		"EMPTY":           "",
	}
	if err := st.Save(vals); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(st.Path)
	for _, v := range []string{"SECRET_KEY_BASE", "say"} {
		if bytes.Contains(raw, []byte(v)) {
			t.Errorf("the encrypted file shows %q", v)
		}
	}
	if !bytes.HasPrefix(raw, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) {
		t.Errorf("not an armored age file: %.40q", raw)
	}
	if fi, _ := os.Stat(st.KeyPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode())
	}
	got, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(vals, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// Another key cannot open it, and says what to do.
	other := Store{Path: st.Path, KeyPath: filepath.Join(dir, "other.age")}
	if err := (Store{Path: filepath.Join(dir, "x"), KeyPath: other.KeyPath}).Save(map[string]string{}); err != nil {
		t.Fatal(err)
	}
	_, err = other.Load()
	if err == nil || usererr.HintOf(err) == "" || strings.Contains(err.Error(), "abc") {
		t.Errorf("wrong key: %v", err)
	}
	// The key itself, as a CI job has it in its environment, with no
	// file at KeyPath.
	key, _ := os.ReadFile(st.KeyPath)
	fromEnv := Store{Path: st.Path, KeyPath: "HOIST_AGE_KEY", Key: key}
	if got, err := fromEnv.Load(); err != nil || !cmp.Equal(vals, got) {
		t.Errorf("with the key in memory: %v, %v", got, err)
	}
	// No key at all.
	_, err = Store{Path: st.Path, KeyPath: filepath.Join(dir, "none")}.Load()
	if err == nil || !strings.Contains(err.Error(), "no secrets key") {
		t.Errorf("missing key: %v", err)
	}
}

func TestEnvFileQuotingMatchesUnquote(t *testing.T) {
	vals := map[string]string{"A": `x"y\z`, "B": "plain", "C": "with space"}
	got := string(EnvFile(vals))
	want := "A=\"x\\\"y\\\\z\"\nB=\"plain\"\nC=\"with space\"\n"
	if got != want {
		t.Errorf("EnvFile = %q, want %q", got, want)
	}
	back, err := parse([]byte(got))
	if err != nil || !cmp.Equal(vals, back) {
		t.Errorf("parse(EnvFile) = %v, %v", back, err)
	}
}

func TestGenerate(t *testing.T) {
	a, err := Generate(64)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(64)
	if len(a) != 64 || a == b {
		t.Errorf("Generate(64) = %q, %q", a, b)
	}
	// Letters and digits only: a value is passed on command lines, and an
	// Erlang node given "-setcookie -x..." takes the cookie for a flag and
	// starts with none (a cookie of URL-safe base64 began with "-" once
	// in 64 and crashed the release).
	for i := range 500 {
		v, err := Generate(64)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
			t.Fatalf("draw %d: Generate(64) = %q, want letters and digits only", i, v)
		}
	}
	if _, err := Generate(4); err == nil {
		t.Error("Generate(4) accepted")
	}
}

func TestCheckValue(t *testing.T) {
	if err := CheckValue("K", "a\nb"); err == nil {
		t.Error("a newline was accepted")
	}
	if err := CheckValue("K", `ok "quotes" $x`); err != nil {
		t.Error(err)
	}
	if err := CheckValue("K", "-leading-dash"); err != nil {
		t.Error(err)
	}
	if err := CheckValue("RELEASE_COOKIE", "-leading-dash"); err == nil || !strings.Contains(err.Error(), "-") {
		t.Errorf("a RELEASE_COOKIE starting with a dash: %v, want it refused", err)
	}
}

func FuzzUnquote(f *testing.F) {
	f.Add("v")
	f.Fuzz(func(t *testing.T, v string) {
		if CheckValue("K", v) != nil {
			return
		}
		back, err := parse(EnvFile(map[string]string{"K": v}))
		if err != nil || back["K"] != v {
			t.Fatalf("round trip of %q gave %q, %v", v, back["K"], err)
		}
	})
}
