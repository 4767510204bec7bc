package release

import (
	"errors"
	"io"
)

// Content-defined chunking: a file is cut where a rolling hash of the
// last bytes matches a mask, so an edit moves only the cuts near it and
// the chunks after it are found unchanged, wherever they moved to.
// (FastCDC's gear hash, with a normalised cut: a stricter mask before
// the average size and a looser one after.)
const (
	// chunkThreshold: files up to this size are one object.
	chunkThreshold = 256 << 10
	minChunk       = 8 << 10
	avgChunk       = 32 << 10
	maxChunk       = 256 << 10
	maskStrict     = 1<<17 - 1 // more bits than avg: fewer cuts before it
	maskLoose      = 1<<13 - 1
)

// gear is a fixed table of random 64-bit values, one per byte value.
// It must never change: chunks cut by two hoists must line up.
var gear = func() [256]uint64 {
	var g [256]uint64
	x := uint64(0x9e3779b97f4a7c15) // splitmix64, from a fixed seed
	for i := range g {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		g[i] = z ^ z>>31
	}
	return g
}()

// cut returns the length of the first chunk of b, which holds at least
// maxChunk bytes unless it is the end of the input.
func cut(b []byte) int {
	n := len(b)
	if n <= minChunk {
		return n
	}
	if n > maxChunk {
		n = maxChunk
	}
	var h uint64
	i := minChunk
	for ; i < min(n, avgChunk); i++ {
		h = h<<1 + gear[b[i]]
		if h&maskStrict == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		h = h<<1 + gear[b[i]]
		if h&maskLoose == 0 {
			return i + 1
		}
	}
	return n
}

// Chunks reads r to its end and calls fn with each chunk in order. The
// slice passed to fn is only valid during the call.
func Chunks(r io.Reader, fn func([]byte) error) error {
	buf := make([]byte, 2*maxChunk)
	filled, eof := 0, false
	for {
		for !eof && filled < maxChunk {
			n, err := r.Read(buf[filled:])
			filled += n
			if errors.Is(err, io.EOF) {
				eof = true
			} else if err != nil {
				return err
			}
		}
		if filled == 0 {
			return nil
		}
		n := cut(buf[:filled])
		if err := fn(buf[:n]); err != nil {
			return err
		}
		filled = copy(buf, buf[n:filled])
	}
}
