package host

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/bytesize"
	"github.com/hoistdev/hoist/internal/hostproto"
)

// A host that has this hoist passes it on to the others, so that the
// operator's uplink carries the binary once, as it carries a release
// once. The others may have no hoist yet, or an older one, so they fetch
// with what every Debian or Ubuntu host has: bash's /dev/tcp, over plain
// TCP. What they fetch is not secret (it is hoist itself); it is checked
// instead: each host compares the sha256 of what it received with the
// sum the operator gave it over SSH before the binary replaces its own.
// The server sends only to a client that shows the token, and stops when
// the operator's session ends, or at its deadline.

// BinaryPort is where a host serves hoist to its peers when the port is
// free; otherwise on a port of the kernel's choosing.
const BinaryPort = 7374

// binaryServeVerb prints a RelayOffer, then serves this host's hoist
// until stdin ends.
var binaryServeVerb = streamVerb[hostproto.BinaryServeArgs]{hostproto.BinaryServeVerb, func(ctx context.Context, c *call, a hostproto.BinaryServeArgs) (int, error) {
	return 0, serveBinary(ctx, BinPath, a, c.stdin, c.stdout, c.stderr)
}}

// serveBinary serves the file at path, which must have sha256 a.SHA256,
// to every client that sends a.Token and a newline, until stdin ends or
// the life is over.
func serveBinary(ctx context.Context, path string, a hostproto.BinaryServeArgs, stdin io.Reader, stdout, log io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("binary-serve: %w", err)
	}
	defer f.Close()
	// The open file is what is served: a setup that replaces the binary
	// meanwhile renames another file into place.
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("binary-serve: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.SHA256 {
		return fmt.Errorf("binary-serve: %s has sha256 %.12s, not %.12s", path, got, a.SHA256)
	}
	return serveOffered(ctx, "binary-serve", a.Bind, BinaryPort, a.Life, hostproto.RelayOffer{}, stdin, stdout, log, func(conn net.Conn) string {
		if err := serveBinaryConn(conn, a.Token, io.NewSectionReader(f, 0, size)); err != nil {
			return fmt.Sprintf("passing hoist on to %s: %v\n", conn.RemoteAddr(), err)
		}
		return fmt.Sprintf("passed hoist (%s) on to %s\n", bytesize.String(size), conn.RemoteAddr())
	})
}

func serveBinaryConn(conn net.Conn, token string, bin io.Reader) error {
	conn.SetReadDeadline(time.Now().Add(relayHandshake))
	line, err := bufio.NewReaderSize(io.LimitReader(conn, 256), 256).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(line)), []byte(token)) != 1 {
		return fmt.Errorf("refused: wrong token")
	}
	conn.SetReadDeadline(time.Time{})
	_, err = io.Copy(conn, bin)
	return err
}
