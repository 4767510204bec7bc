package cli

import (
	"io"
	"os"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/hoistdev/hoist/internal/deploy"
)

// uploadBars draws one progress bar per host while releases travel.
// Log lines written through it print above the bars.
type uploadBars struct {
	p    *mpb.Progress
	name int // width of the host column
}

// newUploadBars returns bars drawn on w, or nil when w is not a
// terminal of a known width: then uploads are told by log lines alone.
func newUploadBars(w io.Writer, hosts []string) *uploadBars {
	f, ok := w.(*os.File)
	if !ok || !isTerminal(w) {
		return nil
	}
	cols, _, err := term.GetSize(int(f.Fd()))
	if err != nil || cols < 40 {
		return nil
	}
	return drawUploadBars(w, hosts, mpb.WithWidth(min(cols, 100)))
}

func drawUploadBars(w io.Writer, hosts []string, opts ...mpb.ContainerOption) *uploadBars {
	b := &uploadBars{p: mpb.New(append([]mpb.ContainerOption{mpb.WithOutput(w)}, opts...)...)}
	for _, h := range hosts {
		b.name = max(b.name, len(h))
	}
	return b
}

// Write prints a log line above the bars.
func (b *uploadBars) Write(p []byte) (int, error) { return b.p.Write(p) }

// meter is a deploy.Meter: a bar for one host's upload.
func (b *uploadBars) meter(host string, have, total int64) deploy.Meter {
	bar := b.p.AddBar(total,
		mpb.PrependDecorators(decor.Name(host, decor.WC{W: b.name + 1, C: decor.DindentRight})),
		mpb.AppendDecorators(
			decor.CountersKibiByte("% .1f / % .1f", decor.WC{W: 22}),
			decor.OnAbort(decor.OnComplete(decor.Percentage(decor.WC{W: 6}), " done"), " failed"),
		),
	)
	bar.SetCurrent(have)
	return barMeter{bar}
}

// wait lets the bars draw their last state.
func (b *uploadBars) wait() { b.p.Wait() }

type barMeter struct{ bar *mpb.Bar }

func (m barMeter) Add(n int64) { m.bar.IncrInt64(n) }

func (m barMeter) Done(err error) {
	if err != nil {
		m.bar.Abort(false)
		return
	}
	m.bar.SetTotal(-1, true)
}
