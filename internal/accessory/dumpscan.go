package accessory

import (
	"bytes"
	"encoding/json"
	"regexp"
)

// rowsLine begins the comment hoist writes after pg_dump's output: the
// rows of each table in the dump, as JSON.
const rowsLine = "-- hoist rows: "

// maxLine is as much of one line as dumpScanner looks at; a longer one
// is a row of data or a statement, never a line it reads.
const maxLine = 1 << 20

var copyStart = regexp.MustCompile(`^COPY (.+?)(?: \(.*\))? FROM stdin;$`)

// dumpScanner, PostgreSQL's dumpScan, reads pg_dump's plain SQL as it goes by, line by line:
// whether it ends with pg_dump's closing line (complete), how many rows
// each table's COPY block holds (rows), and the counts hoist recorded
// after it (recorded, nil for a backup without them).
type dumpScanner struct {
	complete bool
	rows     map[string]int64
	recorded map[string]int64
	badRows  bool // a rows line that is not JSON

	line    []byte
	long    bool   // the line is longer than maxLine
	copying string // the table whose rows follow, "" outside COPY
}

func (d *dumpScanner) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		if len(d.line)+len(part) > maxLine {
			d.long = true
		} else {
			d.line = append(d.line, part...)
		}
		if i < 0 {
			break
		}
		d.end()
		p = p[i+1:]
	}
	return n, nil
}

// result reads a last line without a newline, and says what was found.
func (d *dumpScanner) result() scanned {
	d.flush()
	return scanned{complete: d.complete, rows: d.rows, recorded: d.recorded, badRows: d.badRows}
}

// flush reads a last line without a newline.
func (d *dumpScanner) flush() {
	if len(d.line) > 0 || d.long {
		d.end()
	}
}

func (d *dumpScanner) end() {
	line := string(bytes.TrimSuffix(d.line, []byte("\r")))
	long := d.long
	d.line, d.long = d.line[:0], false
	if d.rows == nil {
		d.rows = map[string]int64{}
	}
	if d.copying != "" {
		if !long && line == `\.` {
			d.copying = ""
		} else {
			d.rows[d.copying]++
		}
		d.complete = false
		return
	}
	switch {
	case long:
		d.complete = false
	case len(line) > len(rowsLine) && line[:len(rowsLine)] == rowsLine:
		d.recorded = map[string]int64{}
		if json.Unmarshal([]byte(line[len(rowsLine):]), &d.recorded) != nil {
			d.badRows, d.recorded = true, nil
		}
	case line == dumpComplete:
		d.complete = true
	case line == "" || line == "--" || bytes.HasPrefix([]byte(line), []byte(`\unrestrict `)):
	default:
		d.complete = false
		if m := copyStart.FindStringSubmatch(line); m != nil {
			d.copying = m[1]
			d.rows[d.copying] += 0
		}
	}
}
