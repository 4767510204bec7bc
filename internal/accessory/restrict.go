package accessory

import (
	"bufio"
	"bytes"
	"io"
)

// restrictFilter passes a dump's SQL on to psql without pg_dump's own
// \restrict and \unrestrict lines: hoist puts psql in restricted mode
// itself, under a key of its own, and psql refuses a second \restrict.
// Only the dump's header may hold its \restrict line (pg_dump writes it
// there, before any statement), and only that key's \unrestrict lines
// are dropped; any other backslash command reaches psql, which refuses
// it and so fails the restore.
type restrictFilter struct {
	r      *bufio.Reader
	buf    []byte
	key    []byte // the dump's key, once seen
	header bool   // only comments and blank lines so far
	err    error
}

func newRestrictFilter(r io.Reader) io.Reader {
	return &restrictFilter{r: bufio.NewReaderSize(r, 64<<10), header: true}
}

func (f *restrictFilter) Read(p []byte) (int, error) {
	for len(f.buf) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		line, err := f.r.ReadBytes('\n')
		f.err = err
		f.buf = f.keep(line)
	}
	n := copy(p, f.buf)
	f.buf = f.buf[n:]
	return n, nil
}

// keep returns line, or nothing for a line of pg_dump's restricted mode.
func (f *restrictFilter) keep(line []byte) []byte {
	text := bytes.TrimRight(line, "\r\n")
	if f.header {
		if k, ok := bytes.CutPrefix(text, []byte(`\restrict `)); ok && f.key == nil && len(bytes.TrimSpace(k)) > 0 {
			f.key = bytes.TrimSpace(k)
			return nil
		}
		if t := bytes.TrimSpace(text); len(t) > 0 && !bytes.HasPrefix(t, []byte("--")) {
			f.header = false
		}
		return line
	}
	if f.key != nil {
		if k, ok := bytes.CutPrefix(text, []byte(`\unrestrict `)); ok && bytes.Equal(bytes.TrimSpace(k), f.key) {
			return nil
		}
	}
	return line
}

// Restricted is a backup's SQL for a psql of this machine: psql put in
// restricted mode first, under key (which the backup cannot know), and
// pg_dump's own \restrict lines dropped, so that psql obeys no
// backslash command of the backup's, only SQL. hoist accessory pull
// loads a backup so, whatever the host that made it wrote.
func Restricted(sql io.Reader, key string) io.Reader {
	return io.MultiReader(bytes.NewReader([]byte("\\restrict "+key+"\n")), newRestrictFilter(sql))
}
