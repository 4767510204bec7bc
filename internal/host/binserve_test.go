package host

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// TestServeBinary: a host passes on its hoist to a peer that shows the
// token, as bash's /dev/tcp asks for it (the token, a newline, then
// read to the end), sends nothing to one that does not, refuses to serve
// a binary that is not the one the operator named, and stops when the
// operator's session ends.
func TestServeBinary(t *testing.T) {
	bin := bytes.Repeat([]byte("hoist binary "), 100000)
	path := filepath.Join(t.TempDir(), "hoist")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	token := strings.Repeat("t", 64)
	args := hostproto.BinaryServeArgs{SHA256: hex.EncodeToString(sum[:]), Token: token, Bind: "127.0.0.1", Life: 60}

	other := args
	other.SHA256 = strings.Repeat("0", 64)
	if err := serveBinary(context.Background(), path, other, strings.NewReader(""), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "not 000000000000") {
		t.Errorf("serving a binary of another sum: %v", err)
	}

	stdinR, stdinW := io.Pipe()
	outR, outW := io.Pipe()
	var log bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- serveBinary(context.Background(), path, args, stdinR, outW, &log); outW.Close() }()
	line, err := bufio.NewReader(outR).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var offer hostproto.RelayOffer
	if err := json.Unmarshal(line, &offer); err != nil {
		t.Fatal(err)
	}
	fetch := func(tok string) []byte {
		c, err := net.DialTimeout("tcp", offer.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, tok+"\n")
		got, _ := io.ReadAll(c)
		return got
	}
	if got := fetch(token); !bytes.Equal(got, bin) {
		t.Errorf("fetched %d bytes, want the %d of the binary", len(got), len(bin))
	}
	if got := fetch(strings.Repeat("x", 64)); len(got) != 0 {
		t.Errorf("a wrong token got %d bytes", len(got))
	}
	stdinW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeBinary did not stop when its stdin ended")
	}
	if !strings.Contains(log.String(), "passed hoist") || !strings.Contains(log.String(), "wrong token") {
		t.Errorf("log:\n%s", log.String())
	}
}
