package bytesize

import "testing"

func TestString(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 961: "961 B", 1 << 10: "1.0 KiB", 7235174: "6.9 MiB", 3 << 30: "3.0 GiB"} {
		if got := String(n); got != want {
			t.Errorf("String(%d) = %q, want %q", n, got, want)
		}
	}
}
