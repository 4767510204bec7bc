package hostproto

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/names"
	"github.com/hoistdev/hoist/internal/release"
)

// BinPath is where setup installs the hoist binary on a host, and where
// the client runs `hoist host VERB`.
const BinPath = "/usr/local/bin/hoist"

// MaxRelayLife bounds how long a host serves a relay, MaxBinaryLife how
// long it serves hoist.
const (
	MaxRelayLife  = 2 * time.Hour
	MaxBinaryLife = time.Hour
)

// Verb is a command that answers with a Response: the client sends A
// and gets R.
type Verb[A, R any] struct{ Name string }

// StreamVerb is a command whose output is a command's own: it exits with
// that command's status.
type StreamVerb[A any] struct{ Name string }

// The verbs of the host protocol, each with its arguments and its
// result: Verb[A, R] sends A and answers R; a StreamVerb[A] sends A and
// its output is a command's own.
var (
	SetupVerb       = Verb[Spec, HostFacts]{"setup"}
	ShipIndexVerb   = Verb[ShipIndexArgs, ShipState]{"ship-index"}
	ReceiveVerb     = Verb[release.Manifest, Received]{"receive"}
	RelayServeVerb  = StreamVerb[RelayServeArgs]{"relay-serve"}
	RelayFetchVerb  = Verb[RelayFetchArgs, Received]{"relay-fetch"}
	StoreFetchVerb  = Verb[StoreFetchArgs, StoreFetched]{"store-fetch"}
	EnvVerb         = Verb[[]byte, bool]{"env"}
	LockVerb        = Verb[LockArgs, None]{"lock"}
	SetupDoneVerb   = Verb[string, None]{"setup-done"}
	UnlockVerb      = Verb[UnlockArgs, None]{"unlock"}
	ActivateVerb    = Verb[ActivateArgs, None]{"activate"}
	RestartVerb     = Verb[Spec, string]{"restart"}
	CheckVerb       = Verb[Spec, string]{"check"}
	StatusVerb      = Verb[None, *Status]{"status"}
	ReleasesVerb    = Verb[None, []ReleaseInfo]{"releases"}
	PreviousVerb    = Verb[None, string]{"previous"}
	ProxyStatusVerb = Verb[None, []RouteStatus]{"proxy-status"}
	ProxyRootVerb   = Verb[None, string]{"proxy-root"}
	// BootVerb is run by the app's boot unit, and StoreSyncVerb by its
	// store-sync unit, not by the client.
	BootVerb                  = Verb[None, None]{"boot"}
	StoreSyncVerb             = Verb[None, StoreSynced]{"store-sync"}
	ExecVerb                  = StreamVerb[ExecArgs]{"exec"}
	LogsVerb                  = StreamVerb[LogsArgs]{"logs"}
	MaintenanceVerb           = Verb[MaintenanceArgs, None]{"maintenance"}
	AuditVerb                 = Verb[AuditArgs, []AuditEntry]{"audit"}
	AccessorySetupVerb        = Verb[AccessorySpec, AccessoryConnection]{"accessory-setup"}
	AccessoryEnvVerb          = Verb[[]byte, bool]{"accessory-env"}
	AccessoryStatusVerb       = Verb[AccessoryArgs, []AccessoryStatus]{"accessory-status"}
	AccessoryRestartVerb      = Verb[AccessoryArgs, None]{"accessory-restart"}
	AccessoryBackupVerb       = Verb[AccessoryArgs, BackupInfo]{"accessory-backup"}
	AccessoryBackupsVerb      = Verb[AccessoryArgs, []BackupInfo]{"accessory-backups"}
	AccessoryReceiveVerb      = Verb[AccessoryFileArgs, BackupInfo]{"accessory-receive"}
	AccessoryRestoreVerb      = Verb[AccessoryFileArgs, string]{"accessory-restore"}
	AccessoryVerifyVerb       = Verb[AccessoryVerifyArgs, Verification]{"accessory-verify"}
	AccessoryImportVerb       = Verb[AccessoryImportArgs, BackupInfo]{"accessory-import"}
	AccessoryOffsiteListVerb  = Verb[AccessoryArgs, []BackupInfo]{"accessory-offsite-list"}
	AccessoryOffsiteFetchVerb = StreamVerb[AccessoryOffsiteArgs]{"accessory-offsite-fetch"}
	AccessoryFetchVerb        = StreamVerb[AccessoryFileArgs]{"accessory-fetch"}
	AccessoryLogsVerb         = StreamVerb[AccessoryLogsArgs]{"accessory-logs"}
	ScheduleVerb              = Verb[ScheduleArgs, ScheduleResult]{"schedule"}
	TaskVerb                  = StreamVerb[TaskArgs]{"task"}
	BinaryServeVerb           = StreamVerb[BinaryServeArgs]{"binary-serve"}
	AccessoryPsqlVerb         = StreamVerb[AccessoryPsqlArgs]{"accessory-psql"}
)

// ShipIndexArgs are the arguments of ShipIndexVerb.
type ShipIndexArgs struct {
	Manifest release.Manifest `json:"manifest"`
	// Base is the index sum of the kept release whose index the payload
	// is a delta from; "" for none.
	Base string `json:"base,omitempty"`
}

// LockArgs are the arguments of LockVerb.
type LockArgs struct {
	Holder  string `json:"holder"`
	Op      string `json:"op,omitempty"`
	Machine string `json:"machine,omitempty"`
	PID     int    `json:"pid,omitempty"`
	Started uint64 `json:"started,omitempty"`
	// TakeOver is the holder of a lock to replace: one the client knows
	// is gone.
	TakeOver string `json:"take_over,omitempty"`
}

// UnlockArgs are the arguments of UnlockVerb.
type UnlockArgs struct {
	Holder string `json:"holder,omitempty"`
	Force  bool   `json:"force,omitempty"` // whoever holds it
}

// ActivateArgs are the arguments of ActivateVerb.
type ActivateArgs struct {
	Spec Spec   `json:"spec"`
	ID   string `json:"id"`
	// Op is what the activation is for the audit trail: deploy or
	// rollback.
	Op string `json:"op"`
}

// Validate checks the arguments as the host decoded them.
func (a *ActivateArgs) Validate() error {
	if !release.ValidID(a.ID) {
		return fmt.Errorf("invalid release id %q", a.ID)
	}
	return a.Spec.Validate()
}

// ExecArgs are the arguments of ExecVerb.
type ExecArgs struct {
	Spec Spec     `json:"spec"`
	Argv []string `json:"argv"`
	// Terminal runs the command on the terminal the host was called on.
	Terminal bool `json:"terminal,omitempty"`
}

// Validate checks the arguments as the host decoded them.
func (a *ExecArgs) Validate() error {
	if len(a.Argv) == 0 {
		return fmt.Errorf("exec: no command")
	}
	return a.Spec.Validate()
}

// LogsArgs are the arguments of LogsVerb.
type LogsArgs struct {
	Lines  int  `json:"lines"`
	Follow bool `json:"follow,omitempty"`
}

// AccessoryArgs name an accessory of the app; "" means all of them
// where a verb takes that.
type AccessoryArgs struct {
	Name string `json:"name,omitempty"`
	// Scheduled marks the backup timer's run, whose outcome setup and
	// deploy look at.
	Scheduled bool `json:"scheduled,omitempty"`
}

// Validate checks the arguments as the host decoded them.
func (a *AccessoryArgs) Validate() error {
	if a.Name != "" && !ValidAccessoryName(a.Name) {
		return fmt.Errorf("invalid accessory name %q", a.Name)
	}
	return nil
}

// AccessoryFileArgs name a backup of an accessory: the one to fetch,
// receive (Size bytes follow the request) or restore (Confirm lets it
// replace a database that holds data).
type AccessoryFileArgs struct {
	Name    string `json:"name"`
	File    string `json:"file"`
	Size    int64  `json:"size,omitempty"`
	Confirm bool   `json:"confirm,omitempty"`
}

// Validate checks the arguments as the host decoded them.
func (a *AccessoryFileArgs) Validate() error {
	if !ValidAccessoryName(a.Name) || !ValidBackupFile(a.File) || a.Size < 0 {
		return fmt.Errorf("invalid backup %q of accessory %q", a.File, a.Name)
	}
	return nil
}

// AccessoryVerifyArgs name the backup a verify drill restores; "" for
// the newest.
type AccessoryVerifyArgs struct {
	Name string `json:"name"`
	File string `json:"file,omitempty"`
}

// Validate checks the arguments as the host decoded them.
func (a *AccessoryVerifyArgs) Validate() error {
	if !ValidAccessoryName(a.Name) || (a.File != "" && !ValidBackupFile(a.File)) {
		return fmt.Errorf("invalid backup %q of accessory %q", a.File, a.Name)
	}
	return nil
}

// AccessoryImportArgs send an ordinary pg_dump (Size bytes follow the
// request), named File where it came from.
type AccessoryImportArgs struct {
	Name string `json:"name"`
	File string `json:"file"`
	Size int64  `json:"size"`
}

// Validate checks the arguments as the host decoded them.
func (a *AccessoryImportArgs) Validate() error {
	if !ValidAccessoryName(a.Name) || a.Size < 0 || a.File == "" || len(a.File) > 200 || strings.ContainsAny(a.File, "/\x00\n") {
		return fmt.Errorf("invalid dump %q of accessory %q", a.File, a.Name)
	}
	return nil
}

// AccessoryOffsiteArgs name an object of the accessory's bucket.
type AccessoryOffsiteArgs struct {
	Name string `json:"name"`
	File string `json:"file"`
}

// Validate checks the arguments as the host decoded them.
func (a *AccessoryOffsiteArgs) Validate() error {
	if !ValidAccessoryName(a.Name) || !strings.HasSuffix(a.File, OffsiteExt) || !ValidBackupFile(strings.TrimSuffix(a.File, OffsiteExt)) {
		return fmt.Errorf("invalid off-host backup %q of accessory %q", a.File, a.Name)
	}
	return nil
}

// AccessoryLogsArgs are the arguments of AccessoryLogsVerb.
type AccessoryLogsArgs struct {
	Name   string `json:"name"`
	Lines  int    `json:"lines"`
	Follow bool   `json:"follow,omitempty"`
}

// MaintenanceArgs turn maintenance on, with its message and
// Retry-After, or off.
type MaintenanceArgs struct {
	On         bool          `json:"on"`
	Message    string        `json:"message,omitempty"`
	RetryAfter time.Duration `json:"retry_after,omitempty"`
}

// AuditArgs are the arguments of AuditVerb.
type AuditArgs struct {
	// Lines is how many of the newest lines; 0 for all.
	Lines int `json:"lines,omitempty"`
}

// RelayServeArgs are the arguments of RelayServeVerb.
type RelayServeArgs struct {
	ID    string `json:"id"`
	Token string `json:"token"`
	Bind  string `json:"bind"`         // an address of this host
	Life  int    `json:"life_seconds"` // when it stops at the latest
}

// Validate checks the arguments as the host decoded them.
func (a *RelayServeArgs) Validate() error {
	switch {
	case !release.ValidID(a.ID):
		return fmt.Errorf("invalid release id %q", a.ID)
	case len(a.Token) < 32:
		return fmt.Errorf("relay token too short")
	case net.ParseIP(a.Bind) == nil:
		return fmt.Errorf("relay: %q is not an address", a.Bind)
	case a.Life <= 0 || time.Duration(a.Life)*time.Second > MaxRelayLife:
		return fmt.Errorf("relay: a life of %ds", a.Life)
	}
	return nil
}

// RelayFetchArgs are the arguments of RelayFetchVerb.
type RelayFetchArgs struct {
	Manifest    release.Manifest `json:"manifest"`
	Addr        string           `json:"addr"`
	Fingerprint string           `json:"fingerprint"`
	Token       string           `json:"token"`
}

// StoreFetchArgs are the arguments of StoreFetchVerb.
type StoreFetchArgs struct {
	// Record is the signed record of the release to fetch; none: the
	// store's current record.
	Record []byte `json:"record,omitempty"`
}

// ScheduleArgs are the tasks a host runs, and what their commands'
// environment needs of the app's spec; schedule.json keeps them.
type ScheduleArgs struct {
	Port  int               `json:"port"`
	Env   map[string]string `json:"env,omitempty"`
	Tasks []Task            `json:"tasks"`
	// Check only checks the calendars, and changes nothing.
	Check bool `json:"check,omitempty"`
}

// Validate checks the arguments as the host decoded them.
func (a *ScheduleArgs) Validate() error {
	if a.Port < 1 || a.Port > 65535 {
		return fmt.Errorf("schedule: invalid port %d", a.Port)
	}
	seen := map[string]bool{}
	for _, t := range a.Tasks {
		switch {
		case !names.Valid(t.Name) || seen[t.Name]:
			return fmt.Errorf("schedule: invalid or repeated task name %q", t.Name)
		case strings.TrimSpace(t.Calendar) == "" || strings.ContainsAny(t.Calendar, "\n\r\"'\\;%$`"):
			return fmt.Errorf("schedule: task %s: invalid calendar %q", t.Name, t.Calendar)
		case strings.TrimSpace(t.Command) == "":
			return fmt.Errorf("schedule: task %s has no command", t.Name)
		case t.Timeout < time.Second:
			return fmt.Errorf("schedule: task %s: timeout %s", t.Name, t.Timeout)
		}
		seen[t.Name] = true
	}
	return nil
}

// TaskArgs name the task the unit runs.
type TaskArgs struct {
	Name string `json:"name"`
}

// Validate checks the arguments as the host decoded them.
func (a *TaskArgs) Validate() error {
	if !names.Valid(a.Name) {
		return fmt.Errorf("invalid task name %q", a.Name)
	}
	return nil
}

// BinaryServeArgs are the arguments of BinaryServeVerb.
type BinaryServeArgs struct {
	SHA256 string `json:"sha256"` // of the hoist to serve: this host's, checked
	Token  string `json:"token"`
	Bind   string `json:"bind"`         // an address of this host
	Life   int    `json:"life_seconds"` // when it stops at the latest
}

// Validate checks the arguments as the host decoded them.
func (a *BinaryServeArgs) Validate() error {
	if b, err := hex.DecodeString(a.SHA256); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("binary-serve: %q is not a sha256", a.SHA256)
	}
	switch {
	case len(a.Token) < 32 || strings.ContainsAny(a.Token, " \n"):
		return fmt.Errorf("binary-serve: token too short")
	case net.ParseIP(a.Bind) == nil:
		return fmt.Errorf("binary-serve: %q is not an address", a.Bind)
	case a.Life <= 0 || time.Duration(a.Life)*time.Second > MaxBinaryLife:
		return fmt.Errorf("binary-serve: a life of %ds", a.Life)
	}
	return nil
}

// AccessoryPsqlArgs are a psql session's: the accessory, psql's own
// arguments, and whether it runs on the terminal the host was called on.
type AccessoryPsqlArgs struct {
	Name     string   `json:"name"`
	Args     []string `json:"args,omitempty"`
	Terminal bool     `json:"terminal,omitempty"`
}

// Validate checks the arguments as the host decoded them.
func (a *AccessoryPsqlArgs) Validate() error {
	if !ValidAccessoryName(a.Name) {
		return fmt.Errorf("invalid accessory name %q", a.Name)
	}
	return nil
}
