package host

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hoistdev/hoist/internal/bytesize"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/release"
)

// A relay passes a release from a host that holds it to the others, so
// that the operator's uplink carries it once. The operator starts
// `hoist host relay-serve` over SSH on a host that has the release: it
// listens on the address the operator reached it at, with a TLS
// certificate made for this transfer alone, and tells the operator that
// certificate's fingerprint over the SSH channel. The operator gives the
// fingerprint and a token of 256 random bits to each host that is to
// fetch from it, also over SSH. A fetching host accepts only that
// certificate; the relay serves only a client that shows the token, and
// only the objects of that one release, each checked again as it is
// read; it stops when the operator's SSH session ends, or at its
// deadline. The fetching host checks every object it receives, as it
// checks the operator's.

// RelayPort is where a relay listens when the port is free (so that a
// firewall between hosts can allow it); otherwise on a port of the
// kernel's choosing.
const RelayPort = 7373

// Relay limits: connections served at once, the wait for a handshake
// and for the first answer of a host that cannot be reached.
const (
	relayConns     = 8
	relayHandshake = 10 * time.Second
	relayDial      = 5 * time.Second
	maxRelayLife   = hostproto.MaxRelayLife
)

// A fetching host sends two lines: relayAuth first, then, once the
// token is in, relayRequest. The relay reads at most maxRelayAuth bytes
// from a client it does not know yet, within relayHandshake; only a
// client that showed the token may send the long list of objects.
type relayAuth struct {
	Token string `json:"token"`
}

type relayRequest struct {
	Objects []string `json:"objects"`
}

const (
	// maxRelayAuth bounds the first line: a token of 64 hex digits in
	// JSON, with room to spare.
	maxRelayAuth = 1 << 10
	// maxRelayRequest bounds the second: a million objects' sums.
	maxRelayRequest = 80 << 20
)

// serveRelay serves release id's objects until stdin ends (the
// operator's session closes) or the relay's life is over.
func serveRelay(ctx context.Context, l Layout, a hostproto.RelayServeArgs, stdin io.Reader, stdout, log io.Writer) error {
	m, err := l.Manifest(a.ID)
	if err != nil {
		return fmt.Errorf("relay: release %s is not on this host", a.ID)
	}
	x, _, err := l.releaseIndex(m.ID)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	src := &store{files: map[string][]fileLoc{}, chunks: map[string]chunkLoc{}}
	src.add(l.Release(m.ID), x)
	serves := map[string]int64{}
	for _, o := range x.Objects() {
		serves[o.Sum] = o.Size
	}
	cert, fp, err := relayCertificate()
	if err != nil {
		return err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	offer := hostproto.RelayOffer{Fingerprint: fp}
	return serveOffered(ctx, "relay", a.Bind, RelayPort, a.Life, offer, stdin, stdout, log, func(conn net.Conn) string {
		n, bytes, err := serveRelayConn(tls.Server(conn, cfg), a.Token, serves, src)
		if err != nil {
			return fmt.Sprintf("relay to %s: %v\n", conn.RemoteAddr(), err)
		}
		return fmt.Sprintf("relayed %d objects (%s) to %s\n", n, bytesize.String(bytes), conn.RemoteAddr())
	})
}

// serveOffered runs what a relay and a hoist server share: it listens
// on bind at port (where that is taken, at one the kernel picks), sends
// offer with that address to the operator as one JSON line, and answers
// each connection with serve, at most relayConns at once, until stdin
// ends or the life is over. It closes a connection when serve returns
// the line to log about it. Its errors start with verb.
func serveOffered(ctx context.Context, verb, bind string, port, lifeSeconds int, offer hostproto.RelayOffer, stdin io.Reader, stdout, log io.Writer, serve func(net.Conn) string) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(bind, strconv.Itoa(port)))
	if err != nil {
		if ln, err = net.Listen("tcp", net.JoinHostPort(bind, "0")); err != nil {
			return fmt.Errorf("%s: %w", verb, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(lifeSeconds)*time.Second)
	defer cancel()
	go func() {
		io.Copy(io.Discard, stdin) // the operator closes it to stop
		cancel()
	}()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	offer.Addr = ln.Addr().String()
	if err := json.NewEncoder(stdout).Encode(offer); err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	if f, ok := stdout.(interface{ Flush() error }); ok {
		f.Flush()
	}
	var logMu sync.Mutex // connections end at once; their lines must not mix
	sem := make(chan struct{}, relayConns)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return nil // closed: the operator is done, or the life is over
		}
		select {
		case sem <- struct{}{}:
		default:
			conn.Close() // busy; the host tries again, or gets it another way
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer conn.Close()
			deadline, _ := ctx.Deadline()
			conn.SetDeadline(deadline)
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			defer stop()
			line := serve(conn)
			logMu.Lock()
			defer logMu.Unlock()
			io.WriteString(log, line)
		}()
	}
}

// serveRelayConn answers one fetching host.
func serveRelayConn(conn *tls.Conn, token string, serves map[string]int64, src *store) (int, int64, error) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(relayHandshake))
	if err := conn.Handshake(); err != nil {
		return 0, 0, err
	}
	// The buffer is the first line's limit: ReadSlice fails once it is
	// full, having read from the connection no more than a TLS record.
	br := bufio.NewReaderSize(conn, maxRelayAuth)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, 0, fmt.Errorf("read token: %w", err)
	}
	var auth relayAuth
	if err := json.Unmarshal(line, &auth); err != nil {
		return 0, 0, fmt.Errorf("read token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(auth.Token), []byte(token)) != 1 {
		return 0, 0, errors.New("refused: wrong token")
	}
	conn.SetReadDeadline(time.Time{})
	line, err = bufio.NewReaderSize(io.LimitReader(br, maxRelayRequest), 64<<10).ReadBytes('\n')
	if err != nil {
		return 0, 0, fmt.Errorf("read request: %w", err)
	}
	var req relayRequest
	if err := json.Unmarshal(line, &req); err != nil {
		return 0, 0, fmt.Errorf("read request: %w", err)
	}
	w, err := newRelayWriter(conn)
	if err != nil {
		return 0, 0, err
	}
	var sent int64
	for i, sum := range req.Objects {
		size, ok := serves[sum]
		if !ok {
			return i, sent, fmt.Errorf("refused: object %.12s is not part of the release", sum)
		}
		data, err := readObject(src, sum, size)
		if err != nil {
			return i, sent, err
		}
		if err := w.Object(sum, data); err != nil {
			return i, sent, err
		}
		sent += size
	}
	if err := w.End(); err != nil {
		return len(req.Objects), sent, err
	}
	return len(req.Objects), sent, nil
}

// readObject reads an object and checks it: a relay passes on only what
// it can vouch for.
func readObject(src *store, sum string, size int64) ([]byte, error) {
	r, err := src.Object(sum)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("read object %.12s: %w", sum, err)
	}
	if release.SumBytes(data) != sum {
		return nil, fmt.Errorf("object %.12s is corrupted on this host", sum)
	}
	return data, nil
}

// relayCertificate makes a key and a self-signed certificate for one
// relay, and the certificate's fingerprint.
func relayCertificate() (tls.Certificate, string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("relay key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hoist relay"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(maxRelayLife + time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("relay certificate: %w", err)
	}
	sum := sha256.Sum256(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, hex.EncodeToString(sum[:]), nil
}

// fetchFromRelay fetches what the host lacks of release m from a relay,
// then assembles the release. The index must be on the host already
// (shipIndex).
func fetchFromRelay(ctx context.Context, l Layout, a hostproto.RelayFetchArgs) (hostproto.Received, error) {
	return receiveRelease(l, &a.Manifest, func(x *release.Index, st *store) (hostproto.Received, error) {
		return fetchInto(ctx, a, x, st)
	})
}

func fetchInto(ctx context.Context, a hostproto.RelayFetchArgs, x *release.Index, st *store) (hostproto.Received, error) {
	n := needOf(x, st)
	var req relayRequest
	for _, o := range n.MissingObjects(x.Objects()) {
		req.Objects = append(req.Objects, o.Sum)
	}
	if len(req.Objects) == 0 {
		return hostproto.Received{}, nil
	}
	unreachable := func(err error) error { return &hostproto.RelayError{Addr: a.Addr, Reason: err.Error()} }
	d := net.Dialer{Timeout: relayDial}
	raw, err := d.DialContext(ctx, "tcp", a.Addr)
	if err != nil {
		return hostproto.Received{}, unreachable(err)
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	conn := tls.Client(raw, &tls.Config{
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, // the certificate is pinned below instead
		VerifyPeerCertificate: func(certs [][]byte, _ [][]*x509.Certificate) error {
			if len(certs) == 0 {
				return errors.New("no certificate")
			}
			sum := sha256.Sum256(certs[0])
			if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(a.Fingerprint)) != 1 {
				return errors.New("the relay's certificate is not the one the operator was told of")
			}
			return nil
		},
	})
	raw.SetDeadline(time.Now().Add(relayHandshake))
	if err := conn.Handshake(); err != nil {
		return hostproto.Received{}, unreachable(err)
	}
	raw.SetDeadline(time.Time{})
	auth, _ := json.Marshal(relayAuth{Token: a.Token})
	line, _ := json.Marshal(req)
	if _, err := conn.Write(slices.Concat(auth, []byte{'\n'}, line, []byte{'\n'})); err != nil {
		return hostproto.Received{}, &hostproto.RelayError{Addr: a.Addr, Reached: true, Reason: err.Error()}
	}
	got, err := receiveInto(x, st, conn)
	if err != nil {
		return got, &hostproto.RelayError{Addr: a.Addr, Reached: true, Reason: fmt.Sprintf("after %d objects (%s): %v", got.Objects, bytesize.String(got.Bytes), err)}
	}
	return got, nil
}
