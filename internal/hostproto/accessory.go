package hostproto

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/hoistdev/hoist/internal/bucket"
	"github.com/hoistdev/hoist/internal/services"
)

// The accessories' part of the protocol: what the client tells a host
// of an accessory, and what the host answers of it, its backups and
// their drills. internal/accessory runs them on the host with these
// types.

// AccessorySpec is what the client tells a host about one accessory: hoist.yml's
// entry with its defaults applied. setup keeps it on the host, so that
// the other verbs, and the backup timer, need only the name.
type AccessorySpec struct {
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
	accessoryNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	databasePattern      = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)
	packagePattern       = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	envPattern           = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidAccessoryName reports whether name can name an accessory (or an app) in
// paths and unit names.
func ValidAccessoryName(name string) bool { return accessoryNamePattern.MatchString(name) }

// knownService reports whether hoist runs service name.
func knownService(name string) bool {
	_, ok := services.Lookup(name)
	return ok
}

// Validate checks a spec received from the client: every value ends up
// in a file, a unit or a command line on the host.
func (s *AccessorySpec) Validate() error {
	switch {
	case !ValidAccessoryName(s.App) || !ValidAccessoryName(s.Name):
		return fmt.Errorf("invalid accessory %q of app %q", s.Name, s.App)
	case !knownService(s.Service):
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

// AccessoryConnection is what the app gets: its variable and the URL, password
// included. It travels to app hosts like secrets, and is never printed.
type AccessoryConnection struct {
	Env string `json:"env"`
	URL string `json:"url"`
}

// AccessoryStatus is what `hoist accessory status` shows for one accessory.
type AccessoryStatus struct {
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
	LastFailure *BackupFailure `json:"last_failure,omitempty"`
	// LastScheduled is how the timer's newest run went.
	LastScheduled *BackupRun `json:"last_scheduled,omitempty"`
	// LastVerify is the newest verify drill's result.
	LastVerify *Verification `json:"last_verify,omitempty"`
	// LastOffsite is how the newest copy to the off-host bucket went.
	LastOffsite *BackupRun `json:"last_offsite,omitempty"`
	// BackupWarning says what is wrong with the backups, when the last
	// scheduled one failed or the newest is older than twice the
	// schedule's period; setup and deploy print it.
	BackupWarning string `json:"backup_warning,omitempty"`
}

// BackupExt ends every backup's file name.
const BackupExt = ".sql.gz"

var backupFile = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.sql\.gz$`)

// ValidBackupFile reports whether name can name a backup on a host: a
// plain file name, no directory.
func ValidBackupFile(name string) bool { return backupFile.MatchString(name) }

// BackupInfo is one backup on a host.
type BackupInfo struct {
	File    string    `json:"file"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
	Kind    string    `json:"kind,omitempty"`
	// Verified is when a verify drill last restored it and found what
	// it says it holds; a backup is good once verified.
	Verified time.Time `json:"verified,omitzero"`
	// OffsiteError says why a new backup could not be copied off the
	// host (backup.offsite): it stands on the host all the same.
	OffsiteError string `json:"offsite_error,omitempty"`
}

// BackupFailure is a run that failed, and why.
type BackupFailure struct {
	At        time.Time `json:"at"`
	Error     string    `json:"error"`
	Scheduled bool      `json:"scheduled,omitempty"`
}

// BackupRun is one backup run: its backup, or its error.
type BackupRun struct {
	At    time.Time `json:"at"`
	File  string    `json:"file,omitempty"`
	Error string    `json:"error,omitempty"`
}

// Verification is one verify drill's result.
type Verification struct {
	At     time.Time `json:"at"`
	File   string    `json:"file"`
	OK     bool      `json:"ok"`
	Detail string    `json:"detail,omitempty"`
	// Tables is how many tables it compared.
	Tables int `json:"tables"`
}

// ConfirmError says that a restore would replace data and was not
// confirmed.
type ConfirmError struct {
	Database string `json:"database"`
	Tables   int    `json:"tables"`
}

func (e *ConfirmError) Error() string {
	return fmt.Sprintf("database %s is not empty (%d tables, views or sequences), and the restore would replace it; nothing was changed: confirm with --yes (a backup of what is there now is kept first)", e.Database, e.Tables)
}

// Offsite is where a PostgreSQL accessory's backups go off the host:
// an S3-compatible bucket. Each backup is encrypted on the host, to
// the age recipient the operator holds the identity of, before it
// leaves: whoever reads the bucket reads nothing, and the host itself
// cannot read back what it wrote.
type Offsite struct {
	// Location is the bucket; its prefix is APP/NAME/ by default, and
	// its credentials, when hoist secrets hold them, the operator's.
	bucket.Location
	Recipient string `json:"recipient"`
	// Keep is how many backups the bucket keeps, the newest.
	Keep int `json:"keep"`
}

// OffsiteExt ends every object's key: an age-encrypted backup.
const OffsiteExt = ".age"

// Validate checks an off-host target received from the client.
func (o *Offsite) Validate() error {
	if err := o.Location.Validate(); err != nil {
		return err
	}
	if o.Keep < 1 {
		return fmt.Errorf("invalid keep %d", o.Keep)
	}
	if _, err := age.ParseX25519Recipient(o.Recipient); err != nil {
		return fmt.Errorf("invalid age recipient %q: %w", o.Recipient, err)
	}
	return nil
}
