package release

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

func TestNewIDSortsAndValidates(t *testing.T) {
	a := NewID(time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC), "0123456789abcdef0123")
	b := NewID(time.Date(2026, 11, 25, 2, 2, 4, 0, time.FixedZone("x", 3600)), "ffff")
	if a != "20261125T010203Z-0123456789ab" {
		t.Errorf("NewID = %q", a)
	}
	if b != "20261125T010204Z-ffff" || !(b > a) {
		t.Errorf("ids do not order by time: %q %q", a, b)
	}
	for id, want := range map[string]bool{a: true, b: true, "../etc": false, "20261125T010203Z-": false, "20261125T010203Z-XYZ1": false} {
		if ValidID(id) != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, !want, want)
		}
	}
}

func TestPackUnpackRoundTrip(t *testing.T) {
	src := t.TempDir()
	mustWrite(t, filepath.Join(src, "bin", "app"), "#!/bin/sh\necho hi\n", 0o755)
	mustWrite(t, filepath.Join(src, "lib", "data.txt"), "data", 0o644)
	if err := os.Symlink("lib/data.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sum, size, err := Pack(src, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(buf.Len()) || len(sum) != 64 {
		t.Fatalf("Pack reported size %d sum %q for %d bytes", size, sum, buf.Len())
	}
	dest := filepath.Join(t.TempDir(), "r")
	if err := Unpack(bytes.NewReader(buf.Bytes()), dest); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	filepath.Walk(dest, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(dest, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			got[rel] = "-> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			got[rel] = fi.Mode().Perm().String() + " " + string(b)
		}
		return nil
	})
	want := map[string]string{
		"bin/app":      "-rwxr-xr-x #!/bin/sh\necho hi\n",
		"lib/data.txt": "-rw-r--r-- data",
		"link":         "-> lib/data.txt",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unpacked tree (-want +got):\n%s", diff)
	}
}

func TestPackRefusesManifestName(t *testing.T) {
	src := t.TempDir()
	mustWrite(t, filepath.Join(src, ManifestName), "{}", 0o644)
	if _, _, err := Pack(src, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), ManifestName) {
		t.Fatalf("err = %v, want refusal of %s", err, ManifestName)
	}
}

func TestUnpackRefusesEscapes(t *testing.T) {
	tests := map[string][]tar.Header{
		"parent dir":      {{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		"absolute":        {{Name: "/etc/evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		"through symlink": {{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, {Name: "l/passwd", Typeflag: tar.TypeReg, Mode: 0o644}},
		"device":          {{Name: "dev", Typeflag: tar.TypeChar, Mode: 0o644}},
	}
	for name, hdrs := range tests {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			zw, _ := zstd.NewWriter(&buf)
			tw := tar.NewWriter(zw)
			for _, h := range hdrs {
				if err := tw.WriteHeader(&h); err != nil {
					t.Fatal(err)
				}
			}
			tw.Close()
			zw.Close()
			dest := filepath.Join(t.TempDir(), "r")
			if err := Unpack(&buf, dest); err == nil {
				t.Fatal("Unpack accepted a hostile archive")
			}
		})
	}
}

// TestUnpackKeepsOutsideAlone: archives that name an entry twice or
// reach through a link they made change nothing outside the destination
// (a symlink l -> victim, then a directory l/ of mode 0777, made victim
// 0777 through the link).
func TestUnpackKeepsOutsideAlone(t *testing.T) {
	tests := map[string][]tar.Header{
		"symlink then directory":          {{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "VICTIM"}, {Name: "l/", Typeflag: tar.TypeDir, Mode: 0o777}},
		"relative symlink then directory": {{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "../victim"}, {Name: "l", Typeflag: tar.TypeDir, Mode: 0o777}},
		"symlink then file":               {{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "VICTIM/f"}, {Name: "l", Typeflag: tar.TypeReg, Mode: 0o666}},
		"directory twice":                 {{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "d", Typeflag: tar.TypeDir, Mode: 0o700}},
		"file twice":                      {{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}, {Name: "./f", Typeflag: tar.TypeReg, Mode: 0o644}},
		"file through nested symlink":     {{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "d/l", Typeflag: tar.TypeSymlink, Linkname: "../../victim"}, {Name: "d/l/x/y", Typeflag: tar.TypeReg, Mode: 0o644}},
		"hard link outside":               {{Name: "h", Typeflag: tar.TypeLink, Linkname: "VICTIM/f"}},
		"hard link inside":                {{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}, {Name: "h", Typeflag: tar.TypeLink, Linkname: "f"}},
	}
	for name, hdrs := range tests {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			victim := filepath.Join(base, "victim")
			mustWrite(t, filepath.Join(victim, "f"), "mine", 0o600)
			if err := os.Chmod(victim, 0o700); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, base, "r")
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range hdrs {
				h.Linkname = strings.ReplaceAll(h.Linkname, "VICTIM", victim)
				if err := tw.WriteHeader(&h); err != nil {
					t.Fatal(err)
				}
			}
			tw.Close()
			if err := UnpackTar(&buf, filepath.Join(base, "r")); err == nil {
				t.Error("UnpackTar accepted it")
			}
			if diff := cmp.Diff(before, snapshot(t, base, "r")); diff != "" {
				t.Errorf("outside the destination (-before +after):\n%s", diff)
			}
		})
	}
}

// snapshot describes every entry under base but skip: its type, mode,
// size, content or link target, so that a test sees any change.
func snapshot(t testing.TB, base, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		if rel == skip {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += " " + string(b)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseManifest(t *testing.T) {
	good := Manifest{App: "hello", ID: "20261125T010203Z-0123456789ab", Commit: "0123456789ab", SHA256: strings.Repeat("a", 64), Size: 10,
		BuiltAt: time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC), OS: "linux", Arch: "amd64"}
	m, err := ParseManifest(good.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&good, m); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	tests := map[string]func(*Manifest){
		"bad id":  func(m *Manifest) { m.ID = "../x" },
		"bad sum": func(m *Manifest) { m.SHA256 = "zz" },
		"no app":  func(m *Manifest) { m.App = "" },
		"no size": func(m *Manifest) { m.Size = 0 },
		"no arch": func(m *Manifest) { m.Arch = "" },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			bad := good
			mutate(&bad)
			if _, err := ParseManifest(bad.Marshal()); err == nil {
				t.Error("ParseManifest accepted an invalid manifest")
			}
		})
	}
	if _, err := ParseManifest([]byte(`{"app":"x","extra":1}`)); err == nil {
		t.Error("ParseManifest accepted an unknown field")
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"app":"hello","id":"20261125T010203Z-0123456789ab","sha256":"` + strings.Repeat("a", 64) + `","size":1,"os":"linux","arch":"amd64"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err == nil && !ValidID(m.ID) {
			t.Fatalf("accepted id %q", m.ID)
		}
	})
}

func FuzzUnpack(f *testing.F) {
	var buf bytes.Buffer
	src := f.TempDir()
	os.WriteFile(filepath.Join(src, "a"), []byte("x"), 0o644)
	Pack(src, &buf)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		dest, check := outside(t)
		_ = Unpack(bytes.NewReader(b), dest)
		check()
	})
}

// FuzzUnpackTar unpacks archives made from a script, one entry a line:
// a type (d f l h c), a mode byte, then NAME or NAME>LINK, where @ in
// LINK stands for a directory beside the destination. Whatever the
// script, nothing outside the destination is made or changed.
func FuzzUnpackTar(f *testing.F) {
	for _, seed := range []string{
		"l\x00l>@\nd\xffl/",
		"l\x00l>../victim\nd\xffl",
		"l\x00l>@/f\nf\xffl",
		"d\x00d\nl\x00d/l>../../victim\nf\xffd/l/x",
		"h\x00h>@/f",
		"f\x00f\nh\x00h>f",
		"d\xffa\nf\xffa/b\nl\x00c>a/b\nd\x00a/",
		"l\x00l>.\nf\x00l/x",
	} {
		f.Add(seed)
	}
	types := map[byte]byte{'d': tar.TypeDir, 'f': tar.TypeReg, 'l': tar.TypeSymlink, 'h': tar.TypeLink, 'c': tar.TypeChar}
	f.Fuzz(func(t *testing.T, script string) {
		dest, check := outside(t)
		victim := filepath.Join(filepath.Dir(dest), "victim")
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, line := range strings.Split(script, "\n") {
			if len(line) < 3 || types[line[0]] == 0 {
				continue
			}
			name, link, _ := strings.Cut(line[2:], ">")
			h := tar.Header{Typeflag: types[line[0]], Name: name, Linkname: strings.ReplaceAll(link, "@", victim),
				Mode: int64(line[1]) << 1 & 0o777, Format: tar.FormatPAX}
			body := ""
			if h.Typeflag == tar.TypeReg {
				body = "x"
				h.Size = 1
			}
			if tw.WriteHeader(&h) != nil {
				return
			}
			tw.Write([]byte(body))
		}
		if tw.Close() != nil {
			return
		}
		_ = UnpackTar(&buf, dest)
		check()
	})
}

// outside makes a destination to unpack into, beside a directory and a
// file of modes an archive would change, and a check that nothing
// outside the destination was made or changed.
func outside(t *testing.T) (dest string, check func()) {
	t.Helper()
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	mustWrite(t, filepath.Join(victim, "f"), "mine", 0o600)
	if err := os.Chmod(victim, 0o700); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, base, "r")
	return filepath.Join(base, "r"), func() {
		t.Helper()
		if diff := cmp.Diff(before, snapshot(t, base, "r")); diff != "" {
			t.Fatalf("outside the destination (-before +after):\n%s", diff)
		}
	}
}

func mustWrite(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func TestInspectReadsArchAndGLIBC(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip("no /bin/true to inspect")
	}
	mustWrite(t, filepath.Join(dir, "bin", "true"), string(b), 0o755)
	mustWrite(t, filepath.Join(dir, "README"), "not a binary", 0o644)
	n, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n.Arch != runtime.GOARCH || CompareVersions(n.GLIBC, "2.2") < 0 {
		t.Errorf("Inspect = %+v, want %s and a glibc version", n, runtime.GOARCH)
	}
	empty, err := Inspect(t.TempDir())
	if err != nil || empty != (Needs{}) {
		t.Errorf("empty release: %+v, %v", empty, err)
	}
}

func TestCompareVersions(t *testing.T) {
	tests := map[string]int{"2.34|2.4": 1, "2.4|2.34": -1, "2.36|2.36": 0, "|2.1": -1, "2.1|": 1, "2.36.1|2.36": 1}
	for in, want := range tests {
		a, b, _ := strings.Cut(in, "|")
		if got := CompareVersions(a, b); got != want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", a, b, got, want)
		}
	}
}
