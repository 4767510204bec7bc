package hostproto

import (
	"fmt"
	"time"
)

// Status is what `hoist status` shows for one host.
type Status struct {
	App     string    `json:"app"`
	Current string    `json:"current"`          // release id, "" when None
	State   string    `json:"state"`            // the current release unit's ActiveState
	Since   time.Time `json:"since,omitzero"`   // when it entered that state
	Commit  string    `json:"commit,omitempty"` // of the current release
	Lock    *Lock     `json:"lock,omitempty"`
	// Host is what setup recorded about the host.
	Host *HostFacts `json:"host,omitempty"`
	// Setup is the app's last complete setup on the host, if any.
	Setup *SetupRecord `json:"setup,omitempty"`
	// Schedule are the scheduled tasks that run on the host.
	Schedule []TaskStatus `json:"schedule,omitempty"`
}

// ReleaseInfo is one release on a host.
type ReleaseInfo struct {
	ID      string    `json:"id"`
	Commit  string    `json:"commit"`
	BuiltAt time.Time `json:"built_at"`
	Current bool      `json:"current"`
	// Failed is set for a release that failed its health check; it is
	// not a rollback target and does not count toward keep_releases.
	Failed     bool   `json:"failed,omitempty"`
	FailReason string `json:"fail_reason,omitempty"`
}

// HostFacts describe what a host can run; setup records them and every
// upload is checked against them.
type HostFacts struct {
	OS    string `json:"os"`
	Arch  string `json:"arch"`
	GLIBC string `json:"glibc,omitempty"` // like "2.36"; "" without glibc
}

// SetupRecord is what the last complete `hoist setup` of the app left on
// the host: a fingerprint of what it set up (the hoist binary, the
// spec, the accessories), so that `hoist provision` can tell a host
// whose setup never finished, or was made for another hoist.yml.
type SetupRecord struct {
	Fingerprint string    `json:"fingerprint"`
	At          time.Time `json:"at"`
}

// Lock says who holds an app's deploy lock on a host.
type Lock struct {
	Holder string    `json:"holder"` // user@machine and a token
	Since  time.Time `json:"since"`
	Op     string    `json:"op,omitempty"` // deploy, rollback...
	// Machine, PID and Started name the hoist process that holds the
	// lock: its machine's id, its pid and when it started (clock ticks
	// since boot, where the system says): a later hoist on that machine
	// can tell that the holder is gone and take the lock over.
	Machine string `json:"machine,omitempty"`
	PID     int    `json:"pid,omitempty"`
	Started uint64 `json:"started,omitempty"`
}

// LockedError is returned when someone else holds the lock.
type LockedError struct{ Lock Lock }

func (e *LockedError) Error() string {
	return fmt.Sprintf("locked by %s since %s (%s)", e.Lock.Holder, e.Lock.Since.Format(time.RFC3339), e.Lock.Op)
}

// HealthError says that a release did not turn healthy; the previous
// release was restarted and stays current.
type HealthError struct {
	ID      string `json:"id"`
	Reason  string `json:"reason"`
	Journal string `json:"journal"` // the last lines of the release's journal
}

func (e *HealthError) Error() string {
	return fmt.Sprintf("release %s failed its health check: %s", e.ID, e.Reason)
}

// Actor is who asked for an operation: the operator's git identity and
// their login on the machine hoist ran on.
type Actor struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	Login string `json:"login,omitempty"` // user@machine
}

// AuditEntry is one line of the audit trail.
type AuditEntry struct {
	Time        time.Time `json:"time"`
	App         string    `json:"app"`
	Destination string    `json:"destination,omitempty"`
	Op          string    `json:"op"` // deploy, rollback, setup, secrets, maintenance on...
	Release     string    `json:"release,omitempty"`
	// Detail says more: the secrets' names that changed (never their
	// values), the maintenance message, the backup restored.
	Detail  string `json:"detail,omitempty"`
	Outcome string `json:"outcome"` // ok or failed
	Error   string `json:"error,omitempty"`
	// Who is who the client says asked; SSH is what the host itself
	// saw of the login the request came over.
	Who Actor     `json:"who"`
	SSH *SSHLogin `json:"ssh,omitempty"`
}

// SSHLogin is the SSH login an operation came over, as the host's own
// sshd logged it when it let the client in: the user, how they
// authenticated and, with a key, the key's type and SHA256 fingerprint.
// Unlike the actor a request names, a client cannot choose it.
//
// The host finds it without trusting anything the session could set:
// it walks up its own process tree (the kernel's, not an environment
// variable) to the sshd processes of the session, and reads the line
// "Accepted publickey for USER from ADDR port N ssh2: TYPE SHA256:..."
// that the session's privileged sshd process (root, running a binary
// root owns) wrote to the journal since it started; journald records
// the writer's PID and UID itself, so a user's own process named sshd,
// or its own syslog line, counts for nothing. Through sudo it is the
// same: sudo stays in the tree.
type SSHLogin struct {
	User   string `json:"user"`
	Method string `json:"method"`         // publickey, password, keyboard-interactive...
	Key    string `json:"key,omitempty"`  // "ED25519 SHA256:...", with publickey
	From   string `json:"from,omitempty"` // the client's address, as sshd saw it
}

// Task is one scheduled task as a host runs it.
type Task struct {
	Name     string        `json:"name"`
	Calendar string        `json:"calendar"`
	Command  string        `json:"command"`
	Timeout  time.Duration `json:"timeout"`
}

// ScheduleResult is what the schedule verb did.
type ScheduleResult struct {
	// Tasks are the tasks whose timers run on the host now.
	Tasks []string `json:"tasks"`
	// Removed are the tasks whose units were removed: no longer listed.
	Removed []string `json:"removed,omitempty"`
	// Invalid are the calendars the host's systemd cannot read, by
	// task, in its words; then nothing was changed.
	Invalid map[string]string `json:"invalid,omitempty"`
}

// TaskRun is how one run of a task went.
type TaskRun struct {
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	OK      bool      `json:"ok"`
	// ExitStatus is the command's (124 when it ran out of time).
	ExitStatus int `json:"exit_status"`
	// Release is the release it ran in.
	Release string `json:"release,omitempty"`
	// Error says why it failed, with the end of what it printed.
	Error string `json:"error,omitempty"`
}

// TaskStatus is one task of the host's schedule, for status.
type TaskStatus struct {
	Name     string `json:"name"`
	Calendar string `json:"calendar"`
	// Next is when its timer fires next.
	Next time.Time `json:"next,omitzero"`
	// Running says a run is under way now.
	Running bool `json:"running,omitempty"`
	// Last is its newest run, by the timer or by hand; absent if none.
	Last *TaskRun `json:"last,omitempty"`
}
