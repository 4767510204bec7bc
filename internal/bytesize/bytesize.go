// Package bytesize writes sizes for people: 961 B, 12.5 KiB, 6.9 MiB,
// 1.2 GiB.
package bytesize

import "fmt"

// String writes n bytes with the largest binary unit it reaches.
func String(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
