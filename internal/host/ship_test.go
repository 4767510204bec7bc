package host

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/release"
)

// built is a release made in a temporary directory: its files, index and
// manifest, and its objects by sum.
type built struct {
	m       *release.Manifest
	x       *release.Index
	dir     string
	objects map[string][]byte
}

// build makes release id of app from files (path → content; a path
// ending in * is made executable).
func build(t testing.TB, app, id string, files map[string][]byte) *built {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, "*") {
			p, mode = strings.TrimSuffix(p, "*"), 0o755
		}
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, content, mode); err != nil {
			t.Fatal(err)
		}
	}
	x, err := release.IndexDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sum, size, err := release.Pack(dir, &buf)
	if err != nil {
		t.Fatal(err)
	}
	b := &built{x: x, dir: dir, objects: map[string][]byte{},
		m: &release.Manifest{App: app, ID: id, Commit: "abc", SHA256: sum, Size: size, BuiltAt: time.Now().UTC(),
			OS: runtime.GOOS, Arch: runtime.GOARCH, Index: x.Sum()}}
	for _, e := range x.Entries {
		if e.Type != release.TypeFile {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Path))
		if err != nil {
			t.Fatal(err)
		}
		b.objects[e.Sum] = data
		var off int64
		for _, c := range e.Chunks {
			b.objects[c.Sum] = data[off : off+c.Size]
			off += c.Size
		}
	}
	return b
}

// transfer is a complete transfer of the objects need names.
func (b *built) transfer(t testing.TB, need hostproto.Need) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewRecordWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range need.MissingObjects(b.x.Objects()) {
		if err := w.Object(o.Sum, b.objects[o.Sum]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (b *built) indexDelta(t testing.TB, base []byte) []byte {
	t.Helper()
	d, err := EncodeDelta(base, b.x.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// ship sends b to the host whole, as a deploy to a host that has
// nothing would, and returns what arrived.
func ship(t *testing.T, l Layout, b *built) hostproto.Received {
	t.Helper()
	got, err := receiveTransfer(l, b.m, bytes.NewReader(b.transfer(t, sendIndex(t, l, b, "", nil))))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// sendIndex sends b's index as a delta from base (whose canonical
// bytes are dict) and returns what the host needs.
func sendIndex(t *testing.T, l Layout, b *built, base string, dict []byte) hostproto.Need {
	t.Helper()
	st, err := shipIndex(l, b.m, base, bytes.NewReader(b.indexDelta(t, dict)))
	if err != nil {
		t.Fatal(err)
	}
	if st.Need == nil {
		t.Fatalf("ship-index: %+v", st)
	}
	return *st.Need
}

func noise(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// edited is b with a few bytes changed in the middle.
func edited(b []byte) []byte {
	out := bytes.Clone(b)
	copy(out[len(out)/2:], "a one-line change")
	return out
}

func TestShipSendsOnlyWhatTheHostLacks(t *testing.T) {
	l := For(t.TempDir(), "hello")
	assets := noise(1, 3<<20)
	r1 := build(t, "hello", id1, map[string][]byte{"app*": []byte("v1"), "assets/big.bin": assets, "assets/a.css": []byte("a{}")})
	st, err := shipIndex(l, r1.m, r1.x.Sum(), bytes.NewReader(r1.indexDelta(t, r1.x.Marshal())))
	if err != nil || !st.Rebase || len(st.Bases) != 0 {
		t.Fatalf("a new host, sent an index from a base it lacks: %+v, %v", st, err)
	}
	got := ship(t, l, r1)
	if got.Files != 3 || got.Linked != 0 || got.Bytes != int64(len(assets))+5 {
		t.Errorf("first release: %+v", got)
	}

	r2 := build(t, "hello", id2, map[string][]byte{"app*": []byte("v2"), "assets/big.bin": assets, "assets/a.css": []byte("a{}")})
	st, err = shipIndex(l, r2.m, "0000000000000000000000000000000000000000000000000000000000000000", nil)
	if err != nil || !st.Rebase || len(st.Bases) != 1 || st.Bases[0] != r1.x.Sum() {
		t.Fatalf("state: %+v, %v; want r1's index as the base", st, err)
	}
	need := sendIndex(t, l, r2, st.Bases[0], r1.x.Marshal())
	if need.Bytes != 2 || need.Have != int64(len(assets))+3 {
		t.Fatalf("need %+v, want only app's 2 bytes", need)
	}
	got, err = receiveTransfer(l, r2.m, bytes.NewReader(r2.transfer(t, need)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Objects != 1 || got.Linked != 2 || got.Files != 3 {
		t.Errorf("second release: %+v, want 1 object sent and 2 files linked", got)
	}
	if err := release.Verify(r2.x, l.Release(id2)); err != nil {
		t.Error(err)
	}
	a, _ := os.Stat(filepath.Join(l.Release(id1), "assets/big.bin"))
	b, _ := os.Stat(filepath.Join(l.Release(id2), "assets/big.bin"))
	if !os.SameFile(a, b) {
		t.Error("the unchanged asset was not hard-linked")
	}
	if m, err := l.Manifest(id2); err != nil || m.Index != r2.m.Index {
		t.Errorf("manifest in place: %+v, %v", m, err)
	}
	if st, err := shipIndex(l, r2.m, "", nil); err != nil || !st.Unpacked {
		t.Errorf("after: %+v, %v", st, err)
	}
	if left, _ := os.ReadDir(l.Uploads()); len(left) != 0 {
		t.Errorf("uploads left behind: %v", left)
	}
}

// A transfer cut half-way leaves no release, keeps the objects that
// arrived whole, and the next attempt sends only the rest.
func TestShipResumesACutTransfer(t *testing.T) {
	l := For(t.TempDir(), "hello")
	r := build(t, "hello", id1, map[string][]byte{"a": noise(2, 600<<10), "b": noise(3, 600<<10)})
	need := sendIndex(t, l, r, "", nil)
	full := r.transfer(t, need)
	_, err := receiveTransfer(l, r.m, bytes.NewReader(full[:len(full)*2/3]))
	if err == nil || !strings.Contains(err.Error(), "connection ended") {
		t.Fatalf("a cut transfer: %v", err)
	}
	if _, err := os.Stat(l.Release(id1)); !os.IsNotExist(err) {
		t.Fatal("a half-received release is in place")
	}
	st, err := shipIndex(l, r.m, "", nil)
	if err != nil || !st.Resumed || st.Need == nil || st.Need.Have == 0 || st.Need.Bytes >= need.Bytes {
		t.Fatalf("after the cut: %+v, %v; want part of it held", st, err)
	}
	if _, err := receiveTransfer(l, r.m, bytes.NewReader(r.transfer(t, *st.Need))); err != nil {
		t.Fatal(err)
	}
	if err := release.Verify(r.x, l.Release(id1)); err != nil {
		t.Error(err)
	}
}

// sendObject sends r's index, then a transfer of one object, sum with
// data, whatever r's index says of it.
func sendObject(t *testing.T, l Layout, r *built, sum string, data []byte) error {
	t.Helper()
	sendIndex(t, l, r, "", nil)
	var buf bytes.Buffer
	w, _ := NewRecordWriter(&buf)
	w.Object(sum, data)
	w.End()
	_, err := receiveTransfer(l, r.m, &buf)
	return err
}

func TestShipRefuses(t *testing.T) {
	r := build(t, "hello", id1, map[string][]byte{"app": []byte("v1")})
	other := build(t, "hello", id2, map[string][]byte{"other": []byte("not ours")})
	tests := map[string]func(t *testing.T, l Layout) error{
		"corrupt index": func(t *testing.T, l Layout) error {
			bad := *r.m
			bad.Index = other.m.Index
			_, err := shipIndex(l, &bad, "", bytes.NewReader(r.indexDelta(t, nil)))
			return err
		},
		"corrupt object": func(t *testing.T, l Layout) error {
			return sendObject(t, l, r, r.x.Entries[0].Sum, []byte("v2"))
		},
		"object of another release": func(t *testing.T, l Layout) error {
			return sendObject(t, l, r, other.x.Entries[0].Sum, []byte("not ours"))
		},
		"transfer before the index": func(t *testing.T, l Layout) error {
			_, err := receiveTransfer(l, r.m, bytes.NewReader(r.transfer(t, hostproto.Need{Missing: []hostproto.Range{{From: 0, To: 1}}})))
			return err
		},
		"another app": func(t *testing.T, l Layout) error {
			mine := For(l.Base(), "other")
			_, err := shipIndex(mine, r.m, "", bytes.NewReader(r.indexDelta(t, nil)))
			return err
		},
		"no index in the manifest": func(t *testing.T, l Layout) error {
			old := *r.m
			old.Index = ""
			_, err := shipIndex(l, &old, "", bytes.NewReader(r.indexDelta(t, nil)))
			return err
		},
	}
	for name, try := range tests {
		t.Run(name, func(t *testing.T) {
			l := For(t.TempDir(), "hello")
			if err := try(t, l); err == nil {
				t.Fatal("accepted")
			}
			if ids, _ := l.ReleaseIDs(); len(ids) != 0 {
				t.Errorf("releases in place: %v", ids)
			}
		})
	}
}

// A large file that changed a little travels as a delta from the file
// the host serves; a delta that makes the wrong file is refused.
func TestShipDelta(t *testing.T) {
	l := For(t.TempDir(), "hello")
	bin := noise(4, 2<<20)
	r1 := build(t, "hello", id1, map[string][]byte{"app*": bin})
	ship(t, l, r1)
	if err := swapSymlink("releases/"+id1, l.Current()); err != nil {
		t.Fatal(err)
	}
	r2 := build(t, "hello", id2, map[string][]byte{"app*": edited(bin)})
	need := sendIndex(t, l, r2, r1.x.Sum(), r1.x.Marshal())
	newFile, oldFile := r2.x.Entries[0], r1.x.Entries[0]
	if len(need.Deltas) != 1 || need.Deltas[0] != (hostproto.Delta{File: newFile.Sum, Base: oldFile.Sum}) {
		t.Fatalf("deltas %+v, want app from its old version", need.Deltas)
	}
	delta, err := EncodeDelta(bin, edited(bin))
	if err != nil {
		t.Fatal(err)
	}
	if len(delta) > 1024 {
		t.Errorf("a 17-byte edit of a 2 MiB file makes a delta of %d bytes", len(delta))
	}
	send := func(delta []byte) (hostproto.Received, error) {
		var buf bytes.Buffer
		w, _ := NewRecordWriter(&buf)
		w.Delta(newFile.Sum, oldFile.Sum, delta)
		w.End()
		return receiveTransfer(l, r2.m, &buf)
	}
	wrong, _ := EncodeDelta(bin, bin)
	if _, err := send(wrong); err == nil || !strings.Contains(err.Error(), "did not make the file") {
		t.Fatalf("a wrong delta: %v", err)
	}
	got, err := send(delta)
	if err != nil {
		t.Fatal(err)
	}
	if got.Deltas != 1 || got.Objects != 0 {
		t.Errorf("received %+v", got)
	}
	if err := release.Verify(r2.x, l.Release(id2)); err != nil {
		t.Error(err)
	}
}

// A host fetches from a relay another host serves, with the token and
// the certificate the operator passed on; a wrong token or certificate
// gets nothing.
func TestRelay(t *testing.T) {
	src, dst := For(t.TempDir(), "hello"), For(t.TempDir(), "hello")
	r := build(t, "hello", id1, map[string][]byte{"app*": noise(5, 700<<10), "b": []byte("b")})
	ship(t, src, r)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	token := strings.Repeat("t", 64)
	stdinR, stdinW := io.Pipe()
	outR, outW := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- serveRelay(ctx, src, hostproto.RelayServeArgs{ID: id1, Token: token, Bind: "127.0.0.1", Life: 60}, stdinR, outW, io.Discard)
		outW.Close()
	}()
	var offer hostproto.RelayOffer
	if err := jsonLine(outR, &offer); err != nil {
		t.Fatal(err)
	}
	sendIndex(t, dst, r, "", nil)
	args := hostproto.RelayFetchArgs{Manifest: *r.m, Addr: offer.Addr, Fingerprint: offer.Fingerprint, Token: token}
	bad := args
	bad.Token = strings.Repeat("x", 64)
	var re *hostproto.RelayError
	if _, err := fetchFromRelay(ctx, dst, bad); !errors.As(err, &re) || !re.Reached {
		t.Errorf("a wrong token: %v", err)
	}
	bad = args
	bad.Fingerprint = strings.Repeat("0", 64)
	if _, err := fetchFromRelay(ctx, dst, bad); !errors.As(err, &re) {
		t.Errorf("a wrong certificate: %v", err)
	}
	got, err := fetchFromRelay(ctx, dst, args)
	if err != nil {
		t.Fatal(err)
	}
	if got.Files != 2 || got.Objects < 3 {
		t.Errorf("fetched %+v", got)
	}
	if err := release.Verify(r.x, dst.Release(id1)); err != nil {
		t.Error(err)
	}
	stdinW.Close()
	if err := <-served; err != nil {
		t.Errorf("relay: %v", err)
	}
	// Stopped, it answers no more: a host that cannot reach a relay says so.
	other := For(t.TempDir(), "hello")
	sendIndex(t, other, r, "", nil)
	if _, err := fetchFromRelay(ctx, other, args); !errors.As(err, &re) || re.Reached {
		t.Errorf("a relay that is gone: %v", err)
	}
}

// A client without the token is cut off after a small first frame,
// however much it sends: the relay runs as root, and 8 such clients
// sending 80 MiB request lines drove its heap to 773 MiB.
func TestRelayReadsLittleBeforeTheToken(t *testing.T) {
	cert, _, err := relayCertificate()
	if err != nil {
		t.Fatal(err)
	}
	token := strings.Repeat("t", 64)
	sums := strings.Repeat(`"`+strings.Repeat("a", 64)+`",`, 128<<10) // 8.5 MiB
	frames := map[string]string{
		"no newline":             strings.Repeat("x", 8<<20),
		"a wrong token, long":    `{"token":"` + strings.Repeat("x", 8<<20) + `"}` + "\n",
		"one line, wrong token":  `{"token":"` + strings.Repeat("x", 64) + `","objects":[` + sums + `"b"]}` + "\n",
		"a wrong token, objects": `{"token":"` + strings.Repeat("x", 64) + `"}` + "\n" + `{"objects":[` + sums + `"b"]}` + "\n",
	}
	for name, frame := range frames {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return
				}
				defer c.Close()
				tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
				tc.Write([]byte(frame)) // fails once the relay hangs up
			}()
			raw, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			counted := &countingConn{Conn: raw}
			src := &store{files: map[string][]fileLoc{}, chunks: map[string]chunkLoc{}}
			_, _, err = serveRelayConn(tls.Server(counted, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}), token, map[string]int64{}, src)
			if err == nil {
				t.Error("served a client without the token")
			}
			if n := counted.n.Load(); n > 64<<10 {
				t.Errorf("read %d bytes from a client without the token, want at most 64 KiB", n)
			}
		})
	}
}

type countingConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func jsonLine(r io.Reader, v any) error {
	line, err := bufio.NewReader(r).ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

// FuzzReceiveTransfer feeds a host arbitrary transfers: it never panics,
// and a release it puts in place is exactly the one its index names.
func FuzzReceiveTransfer(f *testing.F) {
	r := build(f, "hello", id1, map[string][]byte{"a": []byte("x"), "big": noise(7, 300<<10)})
	f.Add(r.transfer(f, hostproto.Need{Missing: []hostproto.Range{{From: 0, To: len(r.x.Objects())}}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		l := For(t.TempDir(), "hello")
		sendIndex(t, l, r, "", nil)
		if _, err := receiveTransfer(l, r.m, bytes.NewReader(b)); err != nil {
			if _, serr := os.Stat(l.Release(id1)); serr == nil {
				t.Fatalf("a failed transfer left a release: %v", err)
			}
			return
		}
		if err := release.Verify(r.x, l.Release(id1)); err != nil {
			t.Fatal(err)
		}
	})
}
