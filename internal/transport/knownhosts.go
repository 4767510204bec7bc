package transport

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hoistdev/hoist/internal/atomicfile"
)

// SetKnownHosts replaces the lines naming each address in keys (address
// -> "type base64") with one line for it, or a line for each of several
// keys given one per line (a host whose key is being replaced); an empty
// key only removes. The
// file is replaced atomically, so ssh never reads half of it.
func SetKnownHosts(path string, keys map[string]string) error {
	if path == "" || len(keys) == 0 {
		return nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !hasKey(keys) {
		return nil // nothing to remove from a file that does not exist
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	out := replaceKnownHosts(string(b), keys)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.Write(path, []byte(out), 0o600)
}

func hasKey(keys map[string]string) bool {
	for _, k := range keys {
		if k != "" {
			return true
		}
	}
	return false
}

// replaceKnownHosts is SetKnownHosts on the file's text. Other lines,
// comments and markers (@cert-authority, @revoked) are kept as they are.
func replaceKnownHosts(text string, keys map[string]string) string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) > 0 && namesAny(f[0], keys) {
			continue
		}
		if strings.TrimSpace(line) != "" {
			out = append(out, line)
		}
	}
	addrs := make([]string, 0, len(keys))
	for a := range keys {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		for _, k := range strings.Split(keys[a], "\n") {
			if k != "" {
				out = append(out, a+" "+k)
			}
		}
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n") + "\n"
}

// namesAny reports whether a known_hosts host field names one of the
// addresses, plainly, as [addr]:22, or hashed (|1|salt|hmac).
func namesAny(field string, keys map[string]string) bool {
	for _, h := range strings.Split(field, ",") {
		if strings.HasPrefix(h, "|1|") {
			for a := range keys {
				if hashedNames(h, a) || hashedNames(h, "["+a+"]:22") {
					return true
				}
			}
			continue
		}
		if _, ok := keys[h]; ok {
			return true
		}
		if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]:22") {
			if _, ok := keys[h[1:len(h)-4]]; ok {
				return true
			}
		}
	}
	return false
}

// hashedNames reports whether an OpenSSH hashed host entry
// "|1|base64(salt)|base64(hmac-sha1(salt, host))" is for host.
func hashedNames(entry, host string) bool {
	parts := strings.Split(entry, "|")
	if len(parts) != 4 {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(parts[2])
	sum, err2 := base64.StdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	mac := hmac.New(sha1.New, salt)
	mac.Write([]byte(host))
	return hmac.Equal(mac.Sum(nil), sum)
}
