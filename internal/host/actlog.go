package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// An activation's log is what the host did and when: each line goes to
// the client as it comes (shown with --verbose), stamped with the time
// since the activation began, and into the release's activation log on
// the host (activations/<id>.log), which keeps the release's earlier
// activations too (a rollback to it) and is pruned with it. The file is
// rewritten atomically after each line, so that an activation that
// stalls or is killed leaves what it got to.

// activationLogMax bounds an activation log: the newest bytes are kept.
const activationLogMax = 64 << 10

type activationLog struct {
	client io.Writer
	path   string
	start  time.Time
	now    func() time.Time
	// text is the file's content; partial, a line not ended yet.
	text, partial []byte
}

// openActivationLog starts the log of an activation of release id,
// after what earlier ones of id left. Lines go to client as well.
func openActivationLog(l Layout, id string, client io.Writer, now func() time.Time) (*activationLog, error) {
	if err := os.MkdirAll(l.activationsDir(), 0o755); err != nil {
		return nil, fmt.Errorf("activation log: %w", err)
	}
	a := &activationLog{client: client, path: l.activationLog(id), start: now(), now: now}
	prev, err := os.ReadFile(a.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("activation log: %w", err)
	}
	a.text = prev
	why := "by an unknown client"
	if lk, err := ReadLock(l); err == nil && lk != nil {
		why = lk.Op + " by " + lk.Holder
	}
	a.text = fmt.Appendf(a.text, "== %s activating %s (%s)\n", a.start.UTC().Format(time.RFC3339), id, why)
	return a, a.save()
}

// Write stamps and passes on each complete line.
func (a *activationLog) Write(p []byte) (int, error) {
	a.partial = append(a.partial, p...)
	for {
		i := bytes.IndexByte(a.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		if err := a.line(a.partial[:i+1]); err != nil {
			return 0, err
		}
		a.partial = a.partial[i+1:]
	}
}

func (a *activationLog) line(text []byte) error {
	stamped := fmt.Appendf(nil, "%6.1fs %s", a.now().Sub(a.start).Seconds(), text)
	// The client may be gone (a deploy interrupted); the host goes on.
	_, _ = a.client.Write(stamped)
	a.text = append(a.text, stamped...)
	return a.save()
}

// end records how the activation ended: err, with a failed release's
// journal, or success.
func (a *activationLog) end(err error) error {
	if len(a.partial) > 0 {
		a.Write([]byte("\n"))
	}
	if err == nil {
		return a.line([]byte("done\n"))
	}
	if lerr := a.line([]byte("failed: " + err.Error() + "\n")); lerr != nil {
		return lerr
	}
	var he *hostproto.HealthError
	if errors.As(err, &he) && he.Journal != "" {
		// Only into the file: the client prints the journal with the error.
		a.text = append(a.text, "journal:\n"+he.Journal+"\n"...)
		return a.save()
	}
	return nil
}

func (a *activationLog) save() error {
	if len(a.text) > activationLogMax {
		cut := a.text[len(a.text)-activationLogMax:]
		if i := bytes.IndexByte(cut, '\n'); i >= 0 {
			cut = cut[i+1:]
		}
		a.text = append([]byte(nil), cut...)
	}
	// Root only: it may hold the journal, which is not the world's.
	return writeFileAtomic(a.path, a.text, 0o600)
}

// activateLogged is activate with its activation log, passed on to
// client as well.
func activateLogged(ctx context.Context, l Layout, s *hostproto.Spec, id string, client io.Writer) error {
	alog, err := openActivationLog(l, id, client, time.Now)
	if err != nil {
		// Not worth failing a deploy for.
		fmt.Fprintf(client, "warning: %v\n", err)
		return activate(ctx, l, s, id, client)
	}
	err = activate(ctx, l, s, id, alog)
	if lerr := alog.end(err); lerr != nil {
		fmt.Fprintf(client, "warning: %v\n", lerr)
	}
	return err
}
