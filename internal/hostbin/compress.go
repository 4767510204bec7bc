package hostbin

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// A codec is how a binary travels to a host that has no hoist to
// unpack it with: gzip, which every Debian and Ubuntu host has, or zstd
// where the host has it (Ubuntu's images do): about a fifth smaller.
type codec struct {
	name   string
	ext    string
	unpack string // the host's command, stdin to stdout
	pack   func(w io.Writer) (io.WriteCloser, error)
}

var (
	gzipCodec = codec{"gzip", ".gz", "gzip -dc", func(w io.Writer) (io.WriteCloser, error) {
		// Level 6: within 4% of level 9's size at a sixth of its time,
		// and faster than an uplink of 300 Mbit/s.
		return gzip.NewWriterLevel(w, 6)
	}}
	zstdCodec = codec{"zstd", ".zst", "zstd -dcq", func(w io.Writer) (io.WriteCloser, error) {
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	}}
)

// packed keeps compressed copies of binaries, by sum and codec, so that
// a binary is compressed once per machine. The first send of one
// compresses it as it goes and keeps what it sent.
type packed struct {
	dir     string
	mu      sync.Mutex
	entries map[string]*sync.Mutex
}

func (p *packed) lock(key string) *sync.Mutex {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.entries == nil {
		p.entries = map[string]*sync.Mutex{}
	}
	m := p.entries[key]
	if m == nil {
		m = &sync.Mutex{}
		p.entries[key] = m
	}
	return m
}

// send writes b compressed with c to w, and returns the bytes written.
// A copy is kept only when what was read of b has its sum: a damaged
// file is sent (the host refuses it) but never kept.
func (p *packed) send(b *Binary, c codec, w io.Writer) (int64, error) {
	m := p.lock(b.SHA256 + c.ext)
	m.Lock()
	defer m.Unlock()
	kept := ""
	if p.dir != "" {
		kept = filepath.Join(p.dir, b.SHA256+c.ext)
		if f, err := os.Open(kept); err == nil {
			defer f.Close()
			return io.Copy(w, f)
		}
	}
	src, err := os.Open(b.Path)
	if err != nil {
		return 0, fmt.Errorf("read hoist binary: %w", err)
	}
	defer src.Close()
	var tmp *os.File
	if kept != "" && os.MkdirAll(p.dir, 0o755) == nil {
		tmp, _ = os.CreateTemp(p.dir, ".pack-*")
	}
	if tmp != nil {
		defer os.Remove(tmp.Name())
		defer tmp.Close()
	}
	cw := &countWriter{w: w}
	if tmp != nil {
		cw.copy = tmp
	}
	// The compressors write a few hundred bytes at a time, and each
	// write to an SSH session is a packet of its own: whole buffers
	// travel (a 30 MiB hoist in 250-byte packets took minutes).
	bw := bufio.NewWriterSize(cw, 64<<10)
	enc, err := c.pack(bw)
	if err != nil {
		return 0, err
	}
	h := sha256.New()
	if _, err := io.Copy(enc, io.TeeReader(src, h)); err != nil {
		return cw.n, err
	}
	if err := enc.Close(); err != nil {
		return cw.n, err
	}
	if err := bw.Flush(); err != nil {
		return cw.n, err
	}
	if tmp != nil && cw.copyErr == nil && hex.EncodeToString(h.Sum(nil)) == b.SHA256 && tmp.Sync() == nil && tmp.Close() == nil {
		os.Rename(tmp.Name(), kept) // a copy that cannot be kept is made again next time
	}
	return cw.n, nil
}

// countWriter counts what it writes to w, and writes a copy where it
// can: a copy that fails is given up, not the send.
type countWriter struct {
	w       io.Writer
	n       int64
	copy    io.Writer
	copyErr error
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	if c.copy != nil && c.copyErr == nil && n > 0 {
		_, c.copyErr = c.copy.Write(b[:n])
	}
	return n, err
}
