// Package accessory runs the services an app needs beside it — PostgreSQL,
// Redis, Valkey — on a host, the way the host runs everything else: from
// the distribution's package, under the distribution's own systemd unit
// with a hardening drop-in, listening on loopback or a private address
// only. Each accessory is an instance of its own (a PostgreSQL cluster, a
// Redis instance) with its data where the distribution keeps it, which
// nothing in hoist ever removes: deploys, setup re-runs and hoist
// upgrades leave it in place. For PostgreSQL it also makes the app's
// database and role, and backs them up on a systemd timer into verified,
// compressed files that a restore checks before it touches the database.
//
// This is the host side, called by internal/host's verbs as root; it
// never imports the client.
package accessory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/secrets"
	"github.com/hoistdev/hoist/internal/services"
	"github.com/hoistdev/hoist/internal/systemd"
)

// instance names the accessory's instance of its service on the host:
// APP.NAME, which no other app's accessory shares (neither part has a
// dot).
func instance(s *hostproto.AccessorySpec) string { return s.App + "." + s.Name }

// allowed are the networks systemd lets reach the service: loopback,
// and with a private address the networks given (default: the address's
// /24 or /64).
func allowed(s *hostproto.AccessorySpec) []string {
	addr, _ := netip.ParseAddr(s.Listen)
	if addr.IsLoopback() {
		return nil
	}
	if len(s.Allow) > 0 {
		return s.Allow
	}
	bits := 24
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return []string{p.String()}
}

// Place is where an accessory lives on a host, as internal/host's layout
// names it: hoist's own files for it, the unit directory, and how its
// backup timer calls hoist.
type Place struct {
	// Dir holds the accessory's spec, password and backups (0700 root).
	Dir      string
	SpecFile string
	Password string
	Backups  string
	// UnitDir is where hoist writes drop-ins and its timer units.
	UnitDir string
	// HoistBin and BackupRequest are the backup service's command and
	// its request on stdin.
	HoistBin      string
	BackupRequest string
}

// Setup installs, configures and starts the accessory, and makes what
// the app needs in it. It is safe to run again: data in place is never
// touched; settings are rewritten and the service restarted only when
// they changed.
func Setup(ctx context.Context, s *hostproto.AccessorySpec, p Place, log io.Writer) (hostproto.AccessoryConnection, error) {
	if err := s.Validate(); err != nil {
		return hostproto.AccessoryConnection{}, err
	}
	svc := serviceOf[s.Service]
	// Before anything is installed or made: a port another program holds.
	if err := checkPort(ctx, s, svc.owns); err != nil {
		return hostproto.AccessoryConnection{}, err
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return hostproto.AccessoryConnection{}, fmt.Errorf("accessory %s: %w", s.Name, err)
	}
	fresh, err := ensurePackage(ctx, s.Name, s.Package, svc.beforeInstall, log)
	if err != nil {
		return hostproto.AccessoryConnection{}, err
	}
	e, err := svc.engine(s)
	if err != nil {
		return hostproto.AccessoryConnection{}, err
	}
	if fresh && svc.afterInstall != nil {
		if err := svc.afterInstall(ctx); err != nil {
			return hostproto.AccessoryConnection{}, err
		}
	}
	password, err := ensurePassword(p.Password)
	if err != nil {
		return hostproto.AccessoryConnection{}, err
	}
	if err := e.create(ctx, log); err != nil {
		return hostproto.AccessoryConnection{}, err
	}
	changed, err := e.configure(password)
	if err != nil {
		return hostproto.AccessoryConnection{}, err
	}
	dropIn, err := writeUnits(ctx, p.UnitDir, map[string][]byte{dropInName(e.unit()): renderDropIn(e.hardening(), allowed(s))})
	if err != nil {
		return hostproto.AccessoryConnection{}, err
	}
	if err := start(ctx, s, e, changed || dropIn, log); err != nil {
		return hostproto.AccessoryConnection{}, err
	}
	if err := e.provision(ctx, password); err != nil {
		return hostproto.AccessoryConnection{}, err
	}
	if err := installBackups(ctx, s, p, e); err != nil {
		return hostproto.AccessoryConnection{}, err
	}
	b, _ := json.Marshal(s) // plain struct: cannot fail
	if err := atomicfile.Write(p.SpecFile, b, 0o600); err != nil {
		return hostproto.AccessoryConnection{}, err
	}
	return hostproto.AccessoryConnection{Env: s.Env, URL: e.url(password)}, nil
}

// start starts the unit, or restarts it when its settings changed.
func start(ctx context.Context, s *hostproto.AccessorySpec, e engine, changed bool, log io.Writer) error {
	u, err := systemd.Show(ctx, e.unit())
	if err != nil {
		return err
	}
	running := u.ActiveState == "active" || u.ActiveState == "activating"
	if _, err := systemd.Systemctl(ctx, "enable", e.unit()); err != nil {
		return fmt.Errorf("accessory %s: %w", s.Name, err)
	}
	verb := "start"
	if running && changed {
		verb = "restart"
		fmt.Fprintf(log, "restarting %s: its settings changed\n", e.unit())
	} else if !running {
		fmt.Fprintf(log, "starting %s\n", e.unit())
	}
	if _, err := systemd.Systemctl(ctx, verb, e.unit()); err != nil {
		return &StartError{Name: s.Name, Unit: e.unit(), Err: err, Journal: systemd.JournalTail(ctx, e.unit(), 20)}
	}
	return e.ready(ctx)
}

// StartError says that the accessory's unit did not start.
type StartError struct {
	Name, Unit string
	Err        error
	Journal    string
}

func (e *StartError) Error() string {
	return fmt.Sprintf("accessory %s: %s did not start: %v\n%s", e.Name, e.Unit, e.Err, e.Journal)
}

func (e *StartError) Unwrap() error { return e.Err }

// ensurePassword returns the accessory's password, made on first use and
// kept in a root-only file: it never leaves the host except inside the
// URL hoist sends to the app's hosts.
func ensurePassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) >= 24 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read accessory password: %w", err)
	}
	pw, err := secrets.Generate(40)
	if err != nil {
		return "", fmt.Errorf("make accessory password: %w", err)
	}
	return pw, atomicfile.Write(path, []byte(pw+"\n"), 0o600)
}

// Load reads the spec setup kept for accessory name.
func Load(p Place, name string) (*hostproto.AccessorySpec, error) {
	b, err := os.ReadFile(p.SpecFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &NotSetUpError{Name: name}
	}
	if err != nil {
		return nil, fmt.Errorf("accessory %s: %w", name, err)
	}
	var s hostproto.AccessorySpec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("accessory %s: read %s: %w", name, p.SpecFile, err)
	}
	return &s, s.Validate()
}

// NotSetUpError says that setup has not made the accessory on this host.
type NotSetUpError struct{ Name string }

func (e *NotSetUpError) Error() string {
	return fmt.Sprintf("accessory %s is not set up on this host: run hoist setup", e.Name)
}

// ReadStatus reports the accessory's state on this host.
func ReadStatus(ctx context.Context, s *hostproto.AccessorySpec, p Place) (*hostproto.AccessoryStatus, error) {
	e, err := serviceOf[s.Service].engine(s)
	if err != nil {
		return nil, err
	}
	u, err := systemd.Show(ctx, e.unit())
	if err != nil {
		return nil, err
	}
	st := &hostproto.AccessoryStatus{Name: s.Name, Service: s.Service, Unit: e.unit(), State: u.ActiveState, Since: u.Since,
		Listen: s.Listen, Port: s.Port, Version: e.version(), DataDir: e.dataDir()}
	if !services.BacksUp(s.Service) {
		return st, nil
	}
	bs, rec, err := backupsAndRecord(p)
	if err != nil {
		return nil, err
	}
	st.Backups = len(bs)
	for i := range bs {
		if bs[i].Kind == KindBackup {
			b := bs[i]
			st.LastBackup = &b
		}
	}
	st.LastFailure, st.LastScheduled, st.LastVerify, st.LastOffsite = rec.LastFailure, rec.LastScheduled, rec.LastVerify, rec.LastOffsite
	if s.BackupSchedule != "" {
		st.NextBackup = nextElapse(ctx, timerName(s))
		since := time.Time{}
		if fi, err := os.Stat(p.SpecFile); err == nil {
			since = fi.ModTime()
		}
		st.BackupWarning = backupWarning(s.BackupSchedule, schedulePeriod(ctx, s.BackupSchedule), rec.LastScheduled, st.LastBackup, since, time.Now())
	}
	if o := rec.LastOffsite; o != nil && o.Error != "" && st.BackupWarning == "" {
		st.BackupWarning = fmt.Sprintf("the last copy off the host, at %s, failed: %s (the backups stand on the host; the next backup copies what the bucket lacks)", o.At.UTC().Format(time.RFC3339), o.Error)
	}
	return st, nil
}

// backupWarning says what is wrong with the backups of a schedule whose
// period is period: the timer's last run failed, or the newest backup
// (newest; nil for none since setup, at since) is older than twice the
// period. "" when all is well.
func backupWarning(schedule string, period time.Duration, last *hostproto.BackupRun, newest *hostproto.BackupInfo, since, now time.Time) string {
	if last != nil && last.Error != "" {
		return fmt.Sprintf("the last scheduled backup, at %s, failed: %s", last.At.UTC().Format(time.RFC3339), last.Error)
	}
	if period <= 0 {
		return ""
	}
	switch {
	case newest != nil && now.Sub(newest.Created) > 2*period:
		return fmt.Sprintf("the newest backup is from %s, %s ago: more than twice the schedule's period (%s, every %s)",
			newest.Created.UTC().Format(time.RFC3339), now.Sub(newest.Created).Round(time.Minute), schedule, period)
	case newest == nil && !since.IsZero() && now.Sub(since) > 2*period:
		return fmt.Sprintf("no backup since setup at %s: the schedule (%s) should have made one every %s", since.UTC().Format(time.RFC3339), schedule, period)
	}
	return ""
}

// schedulePeriod is the time between a calendar's next two elapses, as
// systemd computes them; 0 when unknown.
func schedulePeriod(ctx context.Context, schedule string) time.Duration {
	out, err := systemd.Analyze(ctx, "calendar", "--iterations=2", schedule)
	if err != nil {
		return 0
	}
	return periodOf(out)
}

// periodOf reads the first two elapses of systemd-analyze calendar.
func periodOf(out string) time.Duration {
	var at []time.Time
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok || (k != "Next elapse" && !strings.HasPrefix(k, "Iter. #")) {
			continue
		}
		if t, err := time.Parse("Mon 2006-01-02 15:04:05 MST", strings.TrimSpace(v)); err == nil {
			at = append(at, t)
		}
	}
	if len(at) < 2 {
		return 0
	}
	return at[1].Sub(at[0])
}

// Unit is the systemd unit that runs the accessory, for logs.
func Unit(s *hostproto.AccessorySpec) (string, error) {
	e, err := serviceOf[s.Service].engine(s)
	if err != nil {
		return "", err
	}
	return e.unit(), nil
}

// Restart restarts the accessory's unit and waits until it serves.
func Restart(ctx context.Context, s *hostproto.AccessorySpec) error {
	e, err := serviceOf[s.Service].engine(s)
	if err != nil {
		return err
	}
	if _, err := systemd.Systemctl(ctx, "restart", e.unit()); err != nil {
		return &StartError{Name: s.Name, Unit: e.unit(), Err: err, Journal: systemd.JournalTail(ctx, e.unit(), 20)}
	}
	return e.ready(ctx)
}
