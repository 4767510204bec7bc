package accessory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/services"
	"github.com/hoistdev/hoist/internal/systemd"
)

// hardening is what one service's drop-in sets beyond what every
// accessory gets: the user it runs as (when the distribution's unit
// starts as root) and the only paths it may write.
type hardening struct {
	User, Group string
	Paths       []string
}

// dropInName is hoist's drop-in for a distribution's unit.
func dropInName(unit string) string { return unit + ".d/hoist.conf" }

var dropIn = template.Must(template.New("dropin").Parse(`# Written by hoist; changes are overwritten by hoist setup.
# Hardening for an accessory of a hoist app, on top of the distribution's
# unit: a read-only system but for the service's own directories, no
# privileges to gain, and only these peers may connect, whatever the
# service's own settings say.
[Service]
{{- if .User}}
User={{.User}}
Group={{.Group}}
{{- end}}
{{.Sandbox}}UMask=0077
IPAddressDeny=any
IPAddressAllow=localhost
{{- range .Allow}}
IPAddressAllow={{.}}
{{- end}}
`))

// dropInHardening is an accessory's sandbox: the base, writing only to
// the service's own directories.
func dropInHardening(h hardening) systemd.Hardening {
	return systemd.Hardening{Writable: h.Paths, DropIn: true}
}

// renderDropIn renders the hardening drop-in; allow are the networks
// besides loopback that may connect.
func renderDropIn(h hardening, allow []string) []byte {
	var b bytes.Buffer
	_ = dropIn.Execute(&b, map[string]any{"User": h.User, "Group": h.Group, "Sandbox": systemd.Sandbox(dropInHardening(h)), "Allow": allow})
	return b.Bytes()
}

// The backup timer's units: hoist-APP.NAME-backup.service and .timer
// (an app's own units are hoist-APP@ID and hoist-APP, and app names
// have no dot).
func backupUnit(s *hostproto.AccessorySpec) string {
	return "hoist-" + instance(s) + "-backup.service"
}
func timerName(s *hostproto.AccessorySpec) string { return "hoist-" + instance(s) + "-backup.timer" }

var backupService = template.Must(template.New("backup").Parse(`# Written by hoist; changes are overwritten by hoist setup.
[Unit]
Description=hoist: back up accessory {{.Name}} of {{.App}}
After={{.Unit}}
Requires={{.Unit}}

[Service]
Type=oneshot
ExecStart={{.Hoist}} host accessory-backup
StandardInput=data
StandardInputText={{.Request}}
Nice=10
IOSchedulingClass=idle
# Hardening: hoist starts as root and runs pg_dump as postgres; it may
# write only to the accessory's directory: its backups and the record
# of their runs.
{{.Sandbox}}`))

// backupHardening is the backup service's sandbox: the base, writing to
// the accessory's directory, changing to postgres and reading root's
// home.
func backupHardening(p Place) systemd.Hardening {
	return systemd.Hardening{
		Writable: []string{p.Dir},
		Relax: []systemd.Relaxation{
			{Directive: systemd.Directive{Key: "ProtectHome", Value: "read-only"}, Why: "root's ~/.aws may hold the bucket's credentials (backup.offsite)"},
			{Directive: systemd.Directive{Key: "CapabilityBoundingSet", Value: "CAP_SETUID CAP_SETGID"}, Why: "hoist runs pg_dump as postgres"},
		},
	}
}

var backupTimer = template.Must(template.New("timer").Parse(`# Written by hoist; changes are overwritten by hoist setup.
[Unit]
Description=hoist: back up accessory {{.Name}} of {{.App}} ({{.Schedule}})

[Timer]
OnCalendar={{.Schedule}}
# A backup missed while the host was off runs at the next boot.
Persistent=true
RandomizedDelaySec=5min

[Install]
WantedBy=timers.target
`))

// renderBackupUnits renders the backup service and timer of s.
func renderBackupUnits(s *hostproto.AccessorySpec, p Place, unit string) (service, timer []byte) {
	v := map[string]any{"Name": s.Name, "App": s.App, "Unit": unit, "Hoist": p.HoistBin, "Request": p.BackupRequest,
		"Sandbox": systemd.Sandbox(backupHardening(p)), "Schedule": s.BackupSchedule}
	var a, b bytes.Buffer
	_ = backupService.Execute(&a, v)
	_ = backupTimer.Execute(&b, v)
	return a.Bytes(), b.Bytes()
}

// installBackups writes and starts the backup timer of an accessory
// whose service is backed up, or removes it when backups are off.
func installBackups(ctx context.Context, s *hostproto.AccessorySpec, p Place, e engine) error {
	if !services.BacksUp(s.Service) {
		return nil
	}
	if s.BackupSchedule == "" {
		if _, err := systemd.Systemctl(ctx, "disable", "--now", timerName(s)); err != nil && !strings.Contains(err.Error(), "not loaded") && !strings.Contains(err.Error(), "does not exist") {
			return fmt.Errorf("accessory %s: %w", s.Name, err)
		}
		_, err := systemd.RemoveUnits(ctx, p.UnitDir, timerName(s), backupUnit(s))
		return err
	}
	// systemd takes a timer with a calendar it cannot read and never
	// fires it: refuse it here, with systemd's own words.
	if out, err := systemd.Analyze(ctx, "calendar", s.BackupSchedule); err != nil {
		return fmt.Errorf("accessory %s: backup.schedule %q is not a calendar systemd reads: %v %s", s.Name, s.BackupSchedule, err, out)
	}
	svc, timer := renderBackupUnits(s, p, e.unit())
	if _, err := writeUnits(ctx, p.UnitDir, map[string][]byte{backupUnit(s): svc, timerName(s): timer}); err != nil {
		return err
	}
	if _, err := systemd.Systemctl(ctx, "enable", "--now", timerName(s)); err != nil {
		return fmt.Errorf("accessory %s: %w", s.Name, err)
	}
	return nil
}

func writeUnits(ctx context.Context, dir string, units map[string][]byte) (bool, error) {
	return systemd.WriteUnits(ctx, dir, units)
}

// nextElapse is when a timer fires next; zero when unknown.
func nextElapse(ctx context.Context, timer string) time.Time {
	out, err := systemd.Systemctl(ctx, "list-timers", "--all", "--output=json", timer)
	if err != nil {
		return time.Time{}
	}
	var timers []struct {
		Next int64 `json:"next"` // µs since the epoch
	}
	if json.Unmarshal([]byte(out), &timers) != nil || len(timers) != 1 || timers[0].Next <= 0 {
		return time.Time{}
	}
	return time.UnixMicro(timers[0].Next).UTC().Truncate(time.Second)
}
