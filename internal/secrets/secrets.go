// Package secrets keeps an app's secrets encrypted at rest in its
// repository with age, readable only with a key kept outside it, and
// renders them as the environment file a host's systemd reads.
package secrets

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/usererr"
)

// FileName is the encrypted secrets file, beside hoist.yml.
const FileName = "hoist.secrets"

// DestinationFile is destination dest's own secrets file, beside
// hoist.yml: hoist.DEST.secrets.
func DestinationFile(dest string) string { return "hoist." + dest + ".secrets" }

// Store is an app's secrets file and the key that opens it.
type Store struct {
	Path    string // the encrypted file, in the repository
	KeyPath string // the age identity, outside the repository
	// Key is the age identity itself, when it comes from the environment
	// (a CI job's HOIST_AGE_KEY); it is used instead of KeyPath, which
	// then only names where it came from.
	Key []byte
}

var namePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidName reports whether name can be an environment variable.
func ValidName(name string) bool { return namePattern.MatchString(name) }

// Load decrypts the secrets; a missing file is an empty set.
func (s Store) Load() (map[string]string, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, usererr.Wrap(err, "cannot read secrets")
	}
	id, err := s.identity(false)
	if err != nil {
		return nil, err
	}
	r, err := age.Decrypt(armor.NewReader(bytes.NewReader(b)), id)
	if err != nil {
		return nil, usererr.New("cannot decrypt %s with the key %s", s.Path, s.KeyPath).
			WithHint("the file was encrypted to another key; ask whoever set the secrets for theirs, or point HOIST_SECRETS_KEY at it")
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return nil, usererr.Wrap(err, "cannot decrypt %s", s.Path)
	}
	return parse(plain)
}

// Save encrypts the secrets to the key's recipient and replaces the file
// atomically.
func (s Store) Save(vals map[string]string) error {
	id, err := s.identity(true)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	aw := armor.NewWriter(&out)
	w, err := age.Encrypt(aw, id.Recipient())
	if err != nil {
		return fmt.Errorf("encrypt secrets: %w", err)
	}
	if _, err := w.Write(render(vals)); err != nil {
		return fmt.Errorf("encrypt secrets: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("encrypt secrets: %w", err)
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("encrypt secrets: %w", err)
	}
	return atomicfile.Write(s.Path, out.Bytes(), 0o644)
}

// identity reads the age key, making one when create is set and none exists.
func (s Store) identity(create bool) (*age.X25519Identity, error) {
	b, err := s.Key, error(nil)
	if b == nil {
		b, err = os.ReadFile(s.KeyPath)
	}
	if errors.Is(err, os.ErrNotExist) {
		if !create {
			return nil, usererr.New("no secrets key at %s", s.KeyPath).
				WithHint("`hoist secrets set` makes one; to read secrets someone else set, get their key")
		}
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, fmt.Errorf("make secrets key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(s.KeyPath), 0o700); err != nil {
			return nil, fmt.Errorf("make secrets key: %w", err)
		}
		content := "# hoist secrets key; keep it out of the repository\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
		if err := atomicfile.Write(s.KeyPath, []byte(content), 0o600); err != nil {
			return nil, err
		}
		return id, nil
	}
	if err != nil {
		return nil, usererr.Wrap(err, "cannot read the secrets key")
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil || len(ids) == 0 {
		return nil, usererr.New("%s is not an age key", s.KeyPath)
	}
	id, ok := ids[0].(*age.X25519Identity)
	if !ok {
		return nil, usererr.New("%s is not an X25519 age key", s.KeyPath)
	}
	return id, nil
}

// Generate returns n letters and digits from crypto/rand (5.95 bits
// each), the shape Phoenix expects of secret_key_base (64) and signing
// salts (8+). No dash or underscore: values travel on command lines,
// where one beginning with "-" reads as a flag (an Erlang node given
// such a cookie starts with none and crashes).
func Generate(n int) (string, error) {
	if n < 8 || n > 4096 {
		return "", fmt.Errorf("length %d: want 8 to 4096", n)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, c := range buf {
			// 248 = 4*62: bytes above it are dropped, so each letter is
			// equally likely.
			if c < 248 && len(out) < n {
				out = append(out, alphabet[c%62])
			}
		}
	}
	return string(out), nil
}

// CheckValue refuses what the environment file cannot carry.
func CheckValue(name, v string) error {
	if strings.ContainsAny(v, "\n\r\x00") {
		return usererr.New("the value of %s has a line break or NUL, which an environment file cannot hold", name).
			WithHint("encode it, for example with base64")
	}
	if name == "RELEASE_COOKIE" && strings.HasPrefix(v, "-") {
		return usererr.New("the value of RELEASE_COOKIE begins with \"-\": an Erlang node takes it for a flag and starts with no cookie").
			WithHint("hoist secrets gen RELEASE_COOKIE makes one of letters and digits")
	}
	return nil
}

// EnvFile renders secrets as systemd EnvironmentFile lines.
func EnvFile(vals map[string]string) []byte { return render(vals) }

func render(vals map[string]string) []byte {
	names := make([]string, 0, len(vals))
	for k := range vals {
		names = append(names, k)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, k := range names {
		v := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(vals[k])
		fmt.Fprintf(&b, "%s=\"%s\"\n", k, v)
	}
	return b.Bytes()
}

// parse reads what render wrote.
func parse(b []byte) (map[string]string, error) {
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !ValidName(k) {
			return nil, fmt.Errorf("secrets file has a malformed line")
		}
		vals[k] = Unquote(v)
	}
	return vals, sc.Err()
}

// Unquote undoes render's quoting; hosts use it to read the env file.
func Unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) {
				i++
			}
			b.WriteByte(v[i])
		}
		return b.String()
	}
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	return v
}
