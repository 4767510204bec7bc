package accessory

import (
	"io"
	"strings"
	"testing"
)

// The filter only ever drops pg_dump's own \restrict line and the
// \unrestrict lines of its key: every other line reaches psql, in order.
func FuzzRestrictFilter(f *testing.F) {
	f.Add("--\n\\restrict K\n\nSET x;\n\\unrestrict K\n\\! id\n")
	f.Add("\\restrict  \n\\restrict K\n\\unrestrict K \n")
	f.Add("SELECT 1; \\! id\n\\unrestrict K\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		out, err := io.ReadAll(newRestrictFilter(strings.NewReader(in)))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(in, "\n")
		rest := string(out)
		for _, l := range lines {
			if l == "" {
				continue
			}
			if strings.HasPrefix(rest, l) {
				rest = rest[len(l):]
				continue
			}
			text := strings.TrimRight(l, "\r\n")
			if !strings.HasPrefix(text, `\restrict `) && !strings.HasPrefix(text, `\unrestrict `) {
				t.Fatalf("dropped %q, which is not a restricted-mode line", l)
			}
		}
		if rest != "" {
			t.Fatalf("output has %q that the input has not", rest)
		}
	})
}

// The scanner reads any bytes, and reads them alike however they are
// cut into writes.
func FuzzDumpScanner(f *testing.F) {
	f.Add("COPY public.t (a) FROM stdin;\n1\n\\.\n-- PostgreSQL database dump complete\n"+rowsLine+`{"public.t":1}`+"\n", 3)
	f.Add("COPY x FROM stdin;\n\\.", 1)
	f.Fuzz(func(t *testing.T, in string, chunk int) {
		if chunk < 1 || chunk > len(in)+1 {
			chunk = len(in) + 1
		}
		whole, cut := &dumpScanner{}, &dumpScanner{}
		whole.Write([]byte(in))
		whole.flush()
		for i := 0; i < len(in); i += chunk {
			cut.Write([]byte(in[i:min(i+chunk, len(in))]))
		}
		cut.flush()
		if whole.complete != cut.complete || len(whole.rows) != len(cut.rows) {
			t.Fatalf("whole %v %v, in chunks of %d %v %v", whole.complete, whole.rows, chunk, cut.complete, cut.rows)
		}
		for k, v := range whole.rows {
			if cut.rows[k] != v {
				t.Fatalf("%s: %d whole, %d in chunks", k, v, cut.rows[k])
			}
		}
	})
}

// A backup loaded here is put in restricted mode under hoist's key,
// without pg_dump's own \restrict line.
func TestRestricted(t *testing.T) {
	dump := "--\n-- PostgreSQL database dump\n--\n\\restrict dumpkey\nSET x = 1;\n\\unrestrict dumpkey\n\\! touch /tmp/pwned\n"
	b, err := io.ReadAll(Restricted(strings.NewReader(dump), "hoistkey"))
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	if !strings.HasPrefix(got, "\\restrict hoistkey\n") || strings.Contains(got, "dumpkey") || !strings.Contains(got, "\\! touch /tmp/pwned") {
		t.Errorf("Restricted =\n%s", got)
	}
}
