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
	"regexp"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/secrets"
	"github.com/hoistdev/hoist/internal/services"
	"github.com/hoistdev/hoist/internal/systemd"
)

// Spec is what the client tells a host about one accessory: hoist.yml's
// entry with its defaults applied. setup keeps it on the host, so that
// the other verbs, and the backup timer, need only the name.
type Spec struct {
	App     string `json:"app"`
	Name    string `json:"name"`
	Service string `json:"service"`
	Package string `json:"package"`
	Port    int    `json:"port"`
	// Listen is the address it listens on: 127.0.0.1 for loopback, or a
	// private address of the host.
	Listen string   `json:"listen"`
	Allow  []string `json:"allow,omitempty"`
	// Database is the PostgreSQL database, and its owner role.
	Database string `json:"database,omitempty"`
	// Env is the app's variable that gets the URL.
	Env string `json:"env"`
	// BackupSchedule is an OnCalendar= expression, "" for none.
	BackupSchedule string `json:"backup_schedule,omitempty"`
	BackupKeep     int    `json:"backup_keep,omitempty"`
	// Offsite is where backups are copied off the host; nil for none.
	Offsite *Offsite `json:"offsite,omitempty"`
}

var (
	namePattern     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	databasePattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)
	packagePattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	envPattern      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidName reports whether name can name an accessory (or an app) in
// paths and unit names.
func ValidName(name string) bool { return namePattern.MatchString(name) }

// Validate checks a spec received from the client: every value ends up
// in a file, a unit or a command line on the host.
func (s *Spec) Validate() error {
	switch {
	case !ValidName(s.App) || !ValidName(s.Name):
		return fmt.Errorf("invalid accessory %q of app %q", s.Name, s.App)
	case serviceOf[s.Service] == nil:
		return fmt.Errorf("accessory %s: unknown service %q", s.Name, s.Service)
	case !packagePattern.MatchString(s.Package):
		return fmt.Errorf("accessory %s: invalid package %q", s.Name, s.Package)
	case s.Port < 1024 || s.Port > 65535:
		return fmt.Errorf("accessory %s: invalid port %d", s.Name, s.Port)
	case !envPattern.MatchString(s.Env):
		return fmt.Errorf("accessory %s: invalid variable %q", s.Name, s.Env)
	case services.HasDatabase(s.Service) && !databasePattern.MatchString(s.Database):
		return fmt.Errorf("accessory %s: invalid database %q", s.Name, s.Database)
	case strings.ContainsAny(s.BackupSchedule, "\n\r\"'\\;%$`"):
		return fmt.Errorf("accessory %s: invalid backup schedule %q", s.Name, s.BackupSchedule)
	}
	if s.Offsite != nil {
		if err := s.Offsite.Validate(); err != nil {
			return fmt.Errorf("accessory %s: backup.offsite: %w", s.Name, err)
		}
	}
	addr, err := netip.ParseAddr(s.Listen)
	if err != nil || !services.IsPrivate(addr) {
		return fmt.Errorf("accessory %s: %q is not a loopback or private address", s.Name, s.Listen)
	}
	for _, a := range s.Allow {
		if p, err := netip.ParsePrefix(a); err != nil || !services.IsPrivate(p.Addr()) {
			return fmt.Errorf("accessory %s: %q is not a private network", s.Name, a)
		}
	}
	return nil
}

// Instance names the accessory's instance of its service on the host:
// APP.NAME, which no other app's accessory shares (neither part has a
// dot).
func (s *Spec) Instance() string { return s.App + "." + s.Name }

// allowed are the networks systemd lets reach the service: loopback,
// and with a private address the networks given (default: the address's
// /24 or /64).
func (s *Spec) allowed() []string {
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

// Connection is what the app gets: its variable and the URL, password
// included. It travels to app hosts like secrets, and is never printed.
type Connection struct {
	Env string `json:"env"`
	URL string `json:"url"`
}

// Setup installs, configures and starts the accessory, and makes what
// the app needs in it. It is safe to run again: data in place is never
// touched; settings are rewritten and the service restarted only when
// they changed.
func Setup(ctx context.Context, s *Spec, p Place, log io.Writer) (Connection, error) {
	if err := s.Validate(); err != nil {
		return Connection{}, err
	}
	svc := serviceOf[s.Service]
	// Before anything is installed or made: a port another program holds.
	if err := checkPort(ctx, s, svc.owns); err != nil {
		return Connection{}, err
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return Connection{}, fmt.Errorf("accessory %s: %w", s.Name, err)
	}
	fresh, err := ensurePackage(ctx, s.Name, s.Package, svc.beforeInstall, log)
	if err != nil {
		return Connection{}, err
	}
	e, err := svc.engine(s)
	if err != nil {
		return Connection{}, err
	}
	if fresh && svc.afterInstall != nil {
		if err := svc.afterInstall(ctx); err != nil {
			return Connection{}, err
		}
	}
	password, err := ensurePassword(p.Password)
	if err != nil {
		return Connection{}, err
	}
	if err := e.create(ctx, log); err != nil {
		return Connection{}, err
	}
	changed, err := e.configure(password)
	if err != nil {
		return Connection{}, err
	}
	dropIn, err := writeUnits(ctx, p.UnitDir, map[string][]byte{dropInName(e.unit()): renderDropIn(e.hardening(), s.allowed())})
	if err != nil {
		return Connection{}, err
	}
	if err := start(ctx, s, e, changed || dropIn, log); err != nil {
		return Connection{}, err
	}
	if err := e.provision(ctx, password); err != nil {
		return Connection{}, err
	}
	if err := installBackups(ctx, s, p, e); err != nil {
		return Connection{}, err
	}
	b, _ := json.Marshal(s) // plain struct: cannot fail
	if err := atomicfile.Write(p.SpecFile, b, 0o600); err != nil {
		return Connection{}, err
	}
	return Connection{Env: s.Env, URL: e.url(password)}, nil
}

// start starts the unit, or restarts it when its settings changed.
func start(ctx context.Context, s *Spec, e engine, changed bool, log io.Writer) error {
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
func Load(p Place, name string) (*Spec, error) {
	b, err := os.ReadFile(p.SpecFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &NotSetUpError{Name: name}
	}
	if err != nil {
		return nil, fmt.Errorf("accessory %s: %w", name, err)
	}
	var s Spec
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

// Status is what `hoist accessory status` shows for one accessory.
type Status struct {
	Name    string    `json:"name"`
	Service string    `json:"service"`
	Unit    string    `json:"unit"`
	State   string    `json:"state"` // the unit's ActiveState
	Since   time.Time `json:"since,omitzero"`
	Listen  string    `json:"listen"`
	Port    int       `json:"port"`
	Version string    `json:"version,omitempty"`
	// DataDir is where the service keeps its data.
	DataDir string `json:"data_dir"`
	// Backups counts the backups on the host, of every kind.
	Backups int `json:"backups"`
	// LastBackup is the newest of the accessory's own backups (the
	// timer's or by hand), not a before-restore copy or an upload.
	LastBackup *BackupInfo `json:"last_backup,omitempty"`
	NextBackup time.Time   `json:"next_backup,omitzero"`
	// LastFailure is the newest backup that failed, with its cause.
	LastFailure *Failure `json:"last_failure,omitempty"`
	// LastScheduled is how the timer's newest run went.
	LastScheduled *Run `json:"last_scheduled,omitempty"`
	// LastVerify is the newest verify drill's result.
	LastVerify *Verification `json:"last_verify,omitempty"`
	// LastOffsite is how the newest copy to the off-host bucket went.
	LastOffsite *Run `json:"last_offsite,omitempty"`
	// BackupWarning says what is wrong with the backups, when the last
	// scheduled one failed or the newest is older than twice the
	// schedule's period; setup and deploy print it.
	BackupWarning string `json:"backup_warning,omitempty"`
}

// ReadStatus reports the accessory's state on this host.
func ReadStatus(ctx context.Context, s *Spec, p Place) (*Status, error) {
	e, err := serviceOf[s.Service].engine(s)
	if err != nil {
		return nil, err
	}
	u, err := systemd.Show(ctx, e.unit())
	if err != nil {
		return nil, err
	}
	st := &Status{Name: s.Name, Service: s.Service, Unit: e.unit(), State: u.ActiveState, Since: u.Since,
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
func backupWarning(schedule string, period time.Duration, last *Run, newest *BackupInfo, since, now time.Time) string {
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
func Unit(s *Spec) (string, error) {
	e, err := serviceOf[s.Service].engine(s)
	if err != nil {
		return "", err
	}
	return e.unit(), nil
}

// Restart restarts the accessory's unit and waits until it serves.
func Restart(ctx context.Context, s *Spec) error {
	e, err := serviceOf[s.Service].engine(s)
	if err != nil {
		return err
	}
	if _, err := systemd.Systemctl(ctx, "restart", e.unit()); err != nil {
		return &StartError{Name: s.Name, Unit: e.unit(), Err: err, Journal: systemd.JournalTail(ctx, e.unit(), 20)}
	}
	return e.ready(ctx)
}
