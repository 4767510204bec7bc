package host

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/hoistdev/hoist/internal/release"
)

// A transfer is one zstd stream of records, from the operator or from a
// relay host: objects (a small file or a chunk, with its sha256), deltas
// (a large file as the zstd difference from a file the host holds), and
// an end mark. The receiver checks every object and every file a delta
// makes against its sha256 before it keeps it; a stream without its end
// mark was cut.
const (
	recObject = 'o'
	recDelta  = 'd'
	recEnd    = 'e'
)

// Deltas: how large a file (old or new) may be to travel as one, and
// the dictionary id their frames carry.
const (
	MaxDeltaFile = 32 << 20
	deltaDictID  = 1
)

// RecordWriter writes a transfer. Sent counts the compressed bytes that
// left through it.
type RecordWriter struct {
	cw *countingWriter
	zw *zstd.Encoder
	bw *bufio.Writer
}

// NewRecordWriter starts a transfer on w, over an uplink: compressed
// as well as zstd's default level does at speed.
func NewRecordWriter(w io.Writer) (*RecordWriter, error) {
	return newRecordWriter(w, zstd.SpeedDefault)
}

// newRelayWriter starts a transfer between hosts, whose network is
// faster than they compress: the fastest level.
func newRelayWriter(w io.Writer) (*RecordWriter, error) {
	return newRecordWriter(w, zstd.SpeedFastest)
}

func newRecordWriter(w io.Writer, level zstd.EncoderLevel) (*RecordWriter, error) {
	cw := &countingWriter{w: w}
	zw, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(level))
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	return &RecordWriter{cw: cw, zw: zw, bw: bufio.NewWriterSize(zw, 256<<10)}, nil
}

// Sent is how many compressed bytes have been written out so far.
func (w *RecordWriter) Sent() int64 { return w.cw.n }

// Object writes an object; sum is the hex sha256 of data.
func (w *RecordWriter) Object(sum string, data []byte) error {
	return w.record(recObject, []string{sum}, data)
}

// Delta writes file (a hex sha256) as a delta from base.
func (w *RecordWriter) Delta(file, base string, delta []byte) error {
	return w.record(recDelta, []string{file, base}, delta)
}

// End marks the transfer complete and flushes it.
func (w *RecordWriter) End() error {
	if err := w.bw.WriteByte(recEnd); err != nil {
		return err
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	return w.zw.Close()
}

// Flush pushes what is buffered out, so that a slow sender's receiver
// is not kept waiting.
func (w *RecordWriter) Flush() error {
	if err := w.bw.Flush(); err != nil {
		return err
	}
	return w.zw.Flush()
}

func (w *RecordWriter) record(kind byte, sums []string, data []byte) error {
	hdr := []byte{kind}
	for _, s := range sums {
		raw, err := hex.DecodeString(s)
		if err != nil || len(raw) != 32 {
			return fmt.Errorf("transfer: bad sum %q", s)
		}
		hdr = append(hdr, raw...)
	}
	hdr = binary.AppendUvarint(hdr, uint64(len(data)))
	if _, err := w.bw.Write(hdr); err != nil {
		return err
	}
	_, err := w.bw.Write(data)
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// record is one record read from a transfer.
type record struct {
	kind byte
	sum  string // the object's, or the file a delta makes
	base string // a delta's base file
	data []byte
}

// errCut is a transfer that ended before its end mark.
var errCut = errors.New("the transfer was cut before its end")

// readRecords reads a transfer from r and calls fn for each record up to
// the end mark.
func readRecords(r io.Reader, fn func(record) error) error {
	zr, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(64<<20), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, 256<<10)
	for {
		kind, err := br.ReadByte()
		if err != nil {
			return cutOr(err)
		}
		rec := record{kind: kind}
		var limit uint64
		switch kind {
		case recEnd:
			return nil
		case recObject:
			limit = release.MaxObjectSize
			rec.sum, err = readSum(br)
		case recDelta:
			limit = MaxDeltaFile
			if rec.sum, err = readSum(br); err == nil {
				rec.base, err = readSum(br)
			}
		default:
			return fmt.Errorf("transfer: unknown record %q", kind)
		}
		if err != nil {
			return cutOr(err)
		}
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return cutOr(err)
		}
		if n > limit {
			return fmt.Errorf("transfer: a record of %d bytes, at most %d", n, limit)
		}
		rec.data = make([]byte, n)
		if _, err := io.ReadFull(br, rec.data); err != nil {
			return cutOr(err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

func readSum(r io.Reader) (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func cutOr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errCut
	}
	return fmt.Errorf("transfer: %w", err)
}

// deltaWindow is the zstd window a delta between files of these sizes
// needs: the base and the new file in one window.
func deltaWindow(base, file int) int {
	w := zstd.MinWindowSize
	for w < base+file {
		w *= 2
	}
	return w
}

// EncodeDelta makes the delta that turns base into file; hosts apply it
// with applyDelta. Both must be at most MaxDeltaFile bytes; with an
// empty base it is file, compressed.
func EncodeDelta(base, file []byte) ([]byte, error) {
	if len(base) > MaxDeltaFile || len(file) > MaxDeltaFile {
		return nil, fmt.Errorf("delta: files larger than %d bytes", MaxDeltaFile)
	}
	// zstd's better level: a Go binary after a one-line change makes a
	// delta of about 130 KiB in a quarter of a second; the best level
	// makes 8 KiB in over a second, which a slow uplink would take
	// longer to gain back than it gives.
	opts := []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
		zstd.WithWindowSize(deltaWindow(len(base), len(file))), zstd.WithEncoderConcurrency(1)}
	if len(base) > 0 {
		opts = append(opts, zstd.WithEncoderDictRaw(deltaDictID, base))
	}
	enc, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("delta: %w", err)
	}
	defer enc.Close()
	return enc.EncodeAll(file, nil), nil
}

// applyDelta turns base into the file of size bytes delta describes.
func applyDelta(base, delta []byte, size int64) ([]byte, error) {
	opts := []zstd.DOption{zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(max(size, 1))),
		zstd.WithDecoderMaxWindow(uint64(deltaWindow(len(base), int(size))))}
	if len(base) > 0 {
		opts = append(opts, zstd.WithDecoderDictRaw(deltaDictID, base))
	}
	dec, err := zstd.NewReader(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("delta: %w", err)
	}
	defer dec.Close()
	out, err := dec.DecodeAll(delta, make([]byte, 0, size))
	if err != nil {
		return nil, fmt.Errorf("delta: %w", err)
	}
	return out, nil
}
