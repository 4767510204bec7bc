package cli

// The --json outputs' own types. Each verb's --json prints one of these,
// converted from the internal types it works with, so that a change to
// the host protocol (or to proxy, accessory, deploy...) cannot change
// what is printed unseen: docs/json.md promises these shapes.
// TestJSONOutputsOwnTypes keeps every type here free of other packages'
// types, and the golden files in testdata/json hold their bytes.

import (
	"encoding/json"
	"time"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/dns"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/lab"
	"github.com/hoistdev/hoist/internal/provision"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/store"
)

// ptrOut converts *p with f, keeping nil as nil.
func ptrOut[T, U any](p *T, f func(T) U) *U {
	if p == nil {
		return nil
	}
	u := f(*p)
	return &u
}

// sliceOut converts each element with f, keeping nil as nil (null) and
// empty as empty ([]).
func sliceOut[T, U any](in []T, f func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// mapOut converts each value with f, keeping nil as nil.
func mapOut[K comparable, T, U any](in map[K]T, f func(T) U) map[K]U {
	if in == nil {
		return nil
	}
	out := make(map[K]U, len(in))
	for k, v := range in {
		out[k] = f(v)
	}
	return out
}

// The verbs' outputs, what each --json prints (docs/json.md).

// deployResultJSON is what `hoist deploy --json` prints: what the deploy
// did on each host, and where the release came from.
type deployResultJSON struct {
	outcomeJSON
	Commit string `json:"commit"`
	Reused bool   `json:"reused"`
}

// hostResult is how an operation went on one host: the entries of
// `hoist rollback --json` and `hoist restart --json`.
type hostResult struct {
	Host string `json:"host"`
	OK   bool   `json:"ok"`
	// Release is the host's current release after the operation, where
	// the operation changes it.
	Release string `json:"release,omitempty"`
	Error   string `json:"error,omitempty"`
}

// releaseResults are how an operation went on each host of results,
// with ids[i], the release results[i]'s host serves now where it went
// through.
func releaseResults(ids []string, results []fleet.Result) []hostResult {
	out := make([]hostResult, len(results))
	for i, r := range results {
		out[i] = hostResult{Host: r.Host, OK: r.Err == nil, Error: errText(r.Err)}
		if r.Err == nil {
			out[i].Release = ids[i]
		}
	}
	return out
}

// setupResultJSON is one host's entry of `hoist setup --json`.
type setupResultJSON struct {
	Host        string         `json:"host"`
	OK          bool           `json:"ok"`
	App         bool           `json:"app"`
	Installed   bool           `json:"installed"`
	Facts       *hostFactsJSON `json:"facts,omitempty"`
	Accessories []string       `json:"accessories"`
	Schedule    []string       `json:"schedule"`
	Error       string         `json:"error,omitempty"`
}

func setupResultOut(e setupResult) setupResultJSON {
	return setupResultJSON{Host: e.Host, OK: e.OK, App: e.App, Installed: e.Installed, Facts: ptrOut(e.Facts, hostFactsOut),
		Accessories: e.Accessories, Schedule: e.Schedule, Error: e.Error}
}

// hostStatusJSON is one host's line of `hoist status --json`.
type hostStatusJSON struct {
	Host   string      `json:"host"`
	Status *statusJSON `json:"status,omitempty"`
	Error  string      `json:"error,omitempty"`
}

func hostStatusOut(hs hostStatus) hostStatusJSON {
	return hostStatusJSON{Host: hs.Host, Status: ptrOut(hs.Status, statusOut), Error: hs.Error}
}

// hostReleasesJSON is one host's line of `hoist releases --json`.
type hostReleasesJSON struct {
	Host     string            `json:"host"`
	Releases []releaseInfoJSON `json:"releases"`
	Error    string            `json:"error,omitempty"`
}

func hostReleasesOut(hr hostReleases) hostReleasesJSON {
	return hostReleasesJSON{Host: hr.Host, Releases: sliceOut(hr.Releases, releaseInfoOut), Error: hr.Error}
}

// hostLockJSON is one line of `hoist lock status --json`.
type hostLockJSON struct {
	Host  string    `json:"host"`
	Lock  *lockJSON `json:"lock"`
	Error string    `json:"error,omitempty"`
}

// hostProxyJSON is one host's line of `hoist proxy status --json`.
type hostProxyJSON struct {
	Host   string            `json:"host"`
	Routes []routeStatusJSON `json:"routes"`
	Error  string            `json:"error,omitempty"`
}

func hostProxyOut(hp hostProxy) hostProxyJSON {
	return hostProxyJSON{Host: hp.Host, Routes: sliceOut(hp.Routes, routeStatusOut), Error: hp.Error}
}

// accessoryStatusJSON is one line of `hoist accessory status --json`.
type accessoryStatusJSON struct {
	Host      string         `json:"host"`
	Name      string         `json:"name"`
	Accessory *accessoryJSON `json:"accessory,omitempty"`
	Error     string         `json:"error,omitempty"`
}

func accessoryStatusOut(l accessoryStatus) accessoryStatusJSON {
	return accessoryStatusJSON{Host: l.Host, Name: l.Name, Accessory: ptrOut(l.Accessory, accessoryOut), Error: l.Error}
}

// backupResultJSON is what `hoist accessory backup --json` prints.
type backupResultJSON struct {
	Host string `json:"host"`
	backupInfoJSON
	// Local is where --fetch put it.
	Local string `json:"local,omitempty"`
}

func backupResultOut(r backupResult) backupResultJSON {
	return backupResultJSON{Host: r.Host, backupInfoJSON: backupInfoOut(r.BackupInfo), Local: r.Local}
}

// hostBackupsJSON is what `hoist accessory backups --json` prints.
type hostBackupsJSON struct {
	Host         string           `json:"host"`
	Name         string           `json:"name"`
	Backups      []backupInfoJSON `json:"backups"`
	Offsite      []backupInfoJSON `json:"offsite,omitempty"`
	OffsiteError string           `json:"offsite_error,omitempty"`
}

func hostBackupsOut(hb hostBackups) hostBackupsJSON {
	return hostBackupsJSON{Host: hb.Host, Name: hb.Name, Backups: sliceOut(hb.Backups, backupInfoOut),
		Offsite: sliceOut(hb.Offsite, backupInfoOut), OffsiteError: hb.OffsiteError}
}

// restoreResult is what `hoist accessory restore --json` prints.
type restoreResult struct {
	Host string `json:"host"`
	Name string `json:"name"`
	// File is the backup restored, as the host keeps it.
	File string `json:"file"`
	// Before is the backup made of what the database held before the
	// restore; absent when it held nothing.
	Before string `json:"before,omitempty"`
}

// verifyResultJSON is what `hoist accessory restore --verify --json`
// prints.
type verifyResultJSON struct {
	Host string `json:"host"`
	Name string `json:"name"`
	verificationJSON
}

func verifyResultOut(r verifyResult) verifyResultJSON {
	return verifyResultJSON{Host: r.Host, Name: r.Name, verificationJSON: verificationOut(r.Verification)}
}

// pullResult is what `hoist accessory pull --json` prints.
type pullResult struct {
	Host string `json:"host"`
	Name string `json:"name"`
	// File is the fresh backup on the host the copy was made from.
	File string `json:"file"`
	// Local is where --to put it.
	Local string `json:"local,omitempty"`
	// Into is the database --into loaded it into (the URL without its
	// password), and Tables how many tables it holds now.
	Into   string `json:"into,omitempty"`
	Tables int    `json:"tables,omitempty"`
	// Replaced says a database that held data was replaced (--force).
	Replaced bool `json:"replaced,omitempty"`
}

// maintenanceResult is one host's entry of `hoist maintenance on|off
// --json`.
type maintenanceResult struct {
	Host string `json:"host"`
	OK   bool   `json:"ok"`
	// State is the app's maintenance mode on the host now, on or off;
	// absent where the verb failed (it is as it was, or unknown).
	State string `json:"state,omitempty"`
	Error string `json:"error,omitempty"`
}

// hostMaintenanceJSON is one line of `hoist maintenance status --json`.
type hostMaintenanceJSON struct {
	Host        string           `json:"host"`
	Maintenance *maintenanceJSON `json:"maintenance"`
	Error       string           `json:"error,omitempty"`
}

func hostMaintenanceOut(hm hostMaintenance) hostMaintenanceJSON {
	return hostMaintenanceJSON{Host: hm.Host, Maintenance: ptrOut(hm.Maintenance, maintenanceOut), Error: hm.Error}
}

// auditLineJSON is one line of `hoist audit --json`: a host's entry.
type auditLineJSON struct {
	Host string `json:"host"`
	auditEntryJSON
}

func auditLineOut(l auditLine) auditLineJSON {
	return auditLineJSON{Host: l.Host, auditEntryJSON: auditEntryOut(l.AuditEntry)}
}

// storeStatusJSON is what `hoist store status --json` prints.
type storeStatusJSON struct {
	Where   string           `json:"where"`
	Record  *storeRecordJSON `json:"record,omitempty"`
	Signer  string           `json:"signer,omitempty"`
	Trusted bool             `json:"trusted"`
	Error   string           `json:"error,omitempty"`
}

func storeStatusOut(st storeStatus) storeStatusJSON {
	return storeStatusJSON{Where: st.Where, Record: ptrOut(st.Record, storeRecordOut), Signer: st.Signer, Trusted: st.Trusted, Error: st.Error}
}

// dnsResultJSON is what `hoist dns apply|destroy --json` prints.
type dnsResultJSON struct {
	Plan  *dnsPlanJSON  `json:"plan"`
	Done  []dnsStepJSON `json:"done"`
	Error string        `json:"error,omitempty"`
}

// provisionedJSON is what `hoist provision --json` prints.
type provisionedJSON struct {
	Hosts    []string      `json:"hosts"`
	Balancer *balancerJSON `json:"balancer,omitempty"`
}

// buildResultJSON is what `hoist build --json` prints.
type buildResultJSON struct {
	Path     string        `json:"path"`
	Manifest *manifestJSON `json:"manifest"`
}

// labStatusJSON is one host's line of `hoist lab status --json`.
type labStatusJSON struct {
	Name    string `json:"name"`
	Addr    string `json:"addr"`
	Running bool   `json:"running"`
	SSH     bool   `json:"ssh"`
}

// statusJSON is hostproto.Status as --json prints it.
type statusJSON struct {
	App      string           `json:"app"`
	Current  string           `json:"current"`
	State    string           `json:"state"`
	Since    time.Time        `json:"since,omitzero"`
	Commit   string           `json:"commit,omitempty"`
	Lock     *lockJSON        `json:"lock,omitempty"`
	Host     *hostFactsJSON   `json:"host,omitempty"`
	Setup    *setupRecordJSON `json:"setup,omitempty"`
	Schedule []taskStatusJSON `json:"schedule,omitempty"`
}

func statusOut(v hostproto.Status) statusJSON {
	return statusJSON{
		App:      v.App,
		Current:  v.Current,
		State:    v.State,
		Since:    v.Since,
		Commit:   v.Commit,
		Lock:     ptrOut(v.Lock, lockOut),
		Host:     ptrOut(v.Host, hostFactsOut),
		Setup:    ptrOut(v.Setup, setupRecordOut),
		Schedule: sliceOut(v.Schedule, taskStatusOut),
	}
}

// lockJSON is hostproto.Lock as --json prints it.
type lockJSON struct {
	Holder  string    `json:"holder"`
	Since   time.Time `json:"since"`
	Op      string    `json:"op,omitempty"`
	Machine string    `json:"machine,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Started uint64    `json:"started,omitempty"`
}

func lockOut(v hostproto.Lock) lockJSON {
	return lockJSON{
		Holder:  v.Holder,
		Since:   v.Since,
		Op:      v.Op,
		Machine: v.Machine,
		PID:     v.PID,
		Started: v.Started,
	}
}

// hostFactsJSON is hostproto.HostFacts as --json prints it.
type hostFactsJSON struct {
	OS    string `json:"os"`
	Arch  string `json:"arch"`
	GLIBC string `json:"glibc,omitempty"`
}

func hostFactsOut(v hostproto.HostFacts) hostFactsJSON {
	return hostFactsJSON{
		OS:    v.OS,
		Arch:  v.Arch,
		GLIBC: v.GLIBC,
	}
}

// setupRecordJSON is hostproto.SetupRecord as --json prints it.
type setupRecordJSON struct {
	Fingerprint string    `json:"fingerprint"`
	At          time.Time `json:"at"`
}

func setupRecordOut(v hostproto.SetupRecord) setupRecordJSON {
	return setupRecordJSON{
		Fingerprint: v.Fingerprint,
		At:          v.At,
	}
}

// taskStatusJSON is hostproto.TaskStatus as --json prints it.
type taskStatusJSON struct {
	Name     string       `json:"name"`
	Calendar string       `json:"calendar"`
	Next     time.Time    `json:"next,omitzero"`
	Running  bool         `json:"running,omitempty"`
	Last     *taskRunJSON `json:"last,omitempty"`
}

func taskStatusOut(v hostproto.TaskStatus) taskStatusJSON {
	return taskStatusJSON{
		Name:     v.Name,
		Calendar: v.Calendar,
		Next:     v.Next,
		Running:  v.Running,
		Last:     ptrOut(v.Last, taskRunOut),
	}
}

// taskRunJSON is hostproto.TaskRun as --json prints it.
type taskRunJSON struct {
	Started    time.Time `json:"started"`
	Seconds    float64   `json:"seconds"`
	OK         bool      `json:"ok"`
	ExitStatus int       `json:"exit_status"`
	Release    string    `json:"release,omitempty"`
	Error      string    `json:"error,omitempty"`
}

func taskRunOut(v hostproto.TaskRun) taskRunJSON {
	return taskRunJSON{
		Started:    v.Started,
		Seconds:    v.Seconds,
		OK:         v.OK,
		ExitStatus: v.ExitStatus,
		Release:    v.Release,
		Error:      v.Error,
	}
}

// releaseInfoJSON is hostproto.ReleaseInfo as --json prints it.
type releaseInfoJSON struct {
	ID         string    `json:"id"`
	Commit     string    `json:"commit"`
	BuiltAt    time.Time `json:"built_at"`
	Current    bool      `json:"current"`
	Failed     bool      `json:"failed,omitempty"`
	FailReason string    `json:"fail_reason,omitempty"`
}

func releaseInfoOut(v hostproto.ReleaseInfo) releaseInfoJSON {
	return releaseInfoJSON{
		ID:         v.ID,
		Commit:     v.Commit,
		BuiltAt:    v.BuiltAt,
		Current:    v.Current,
		Failed:     v.Failed,
		FailReason: v.FailReason,
	}
}

// auditEntryJSON is hostproto.AuditEntry as --json prints it.
type auditEntryJSON struct {
	Time        time.Time     `json:"time"`
	App         string        `json:"app"`
	Destination string        `json:"destination,omitempty"`
	Op          string        `json:"op"`
	Release     string        `json:"release,omitempty"`
	Detail      string        `json:"detail,omitempty"`
	Outcome     string        `json:"outcome"`
	Error       string        `json:"error,omitempty"`
	Who         actorJSON     `json:"who"`
	SSH         *sshLoginJSON `json:"ssh,omitempty"`
}

func auditEntryOut(v hostproto.AuditEntry) auditEntryJSON {
	return auditEntryJSON{
		Time:        v.Time,
		App:         v.App,
		Destination: v.Destination,
		Op:          v.Op,
		Release:     v.Release,
		Detail:      v.Detail,
		Outcome:     v.Outcome,
		Error:       v.Error,
		Who:         actorOut(v.Who),
		SSH:         ptrOut(v.SSH, sshLoginOut),
	}
}

// actorJSON is hostproto.Actor as --json prints it.
type actorJSON struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	Login string `json:"login,omitempty"`
}

func actorOut(v hostproto.Actor) actorJSON {
	return actorJSON{
		Name:  v.Name,
		Email: v.Email,
		Login: v.Login,
	}
}

// sshLoginJSON is hostproto.SSHLogin as --json prints it.
type sshLoginJSON struct {
	User   string `json:"user"`
	Method string `json:"method"`
	Key    string `json:"key,omitempty"`
	From   string `json:"from,omitempty"`
}

func sshLoginOut(v hostproto.SSHLogin) sshLoginJSON {
	return sshLoginJSON{
		User:   v.User,
		Method: v.Method,
		Key:    v.Key,
		From:   v.From,
	}
}

// routeStatusJSON is hostproto.RouteStatus as --json prints it.
type routeStatusJSON struct {
	routeJSON
	Healthy        bool                      `json:"healthy"`
	HealthError    string                    `json:"health_error,omitempty"`
	CheckedAt      time.Time                 `json:"checked_at,omitzero"`
	InFlight       int64                     `json:"in_flight"`
	OpenWebSockets int                       `json:"open_websockets"`
	Certificates   map[string]certStatusJSON `json:"certificates,omitempty"`
	Draining       []drainStatusJSON         `json:"draining,omitempty"`
}

func routeStatusOut(v hostproto.RouteStatus) routeStatusJSON {
	return routeStatusJSON{
		routeJSON:      routeOut(v.Route),
		Healthy:        v.Healthy,
		HealthError:    v.HealthError,
		CheckedAt:      v.CheckedAt,
		InFlight:       v.InFlight,
		OpenWebSockets: v.OpenWebSockets,
		Certificates:   mapOut(v.Certificates, certStatusOut),
		Draining:       sliceOut(v.Draining, drainStatusOut),
	}
}

// routeJSON is hostproto.Route as --json prints it.
type routeJSON struct {
	App           string           `json:"app"`
	Hosts         []string         `json:"hosts"`
	PathPrefix    string           `json:"path_prefix,omitempty"`
	Upstream      string           `json:"upstream"`
	HealthPath    string           `json:"health_path"`
	HealthTimeout durationJSON     `json:"health_timeout"`
	DrainTimeout  durationJSON     `json:"drain_timeout"`
	TLS           bool             `json:"tls,omitempty"`
	HSTS          bool             `json:"hsts,omitempty"`
	MaxBodyBytes  int64            `json:"max_body_bytes,omitempty"`
	Maintenance   *maintenanceJSON `json:"maintenance,omitempty"`
	Pages         map[int]string   `json:"pages,omitempty"`
}

func routeOut(v hostproto.Route) routeJSON {
	return routeJSON{
		App:           v.App,
		Hosts:         v.Hosts,
		PathPrefix:    v.PathPrefix,
		Upstream:      v.Upstream,
		HealthPath:    v.HealthPath,
		HealthTimeout: durationOut(v.HealthTimeout),
		DrainTimeout:  durationOut(v.DrainTimeout),
		TLS:           v.TLS,
		HSTS:          v.HSTS,
		MaxBodyBytes:  v.MaxBodyBytes,
		Maintenance:   ptrOut(v.Maintenance, maintenanceOut),
		Pages:         v.Pages,
	}
}

// durationJSON is a duration as --json prints it: a string like "30s",
// as hostproto.Duration writes itself.
type durationJSON time.Duration

// MarshalJSON writes the duration as a string like "1m30s".
func (d durationJSON) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func durationOut(v hostproto.Duration) durationJSON { return durationJSON(v.Duration) }

// maintenanceJSON is hostproto.Maintenance as --json prints it.
type maintenanceJSON struct {
	Message    string       `json:"message,omitempty"`
	RetryAfter durationJSON `json:"retry_after"`
	Since      time.Time    `json:"since,omitzero"`
}

func maintenanceOut(v hostproto.Maintenance) maintenanceJSON {
	return maintenanceJSON{
		Message:    v.Message,
		RetryAfter: durationOut(v.RetryAfter),
		Since:      v.Since,
	}
}

// certStatusJSON is hostproto.CertStatus as --json prints it.
type certStatusJSON struct {
	Issuer     string    `json:"issuer,omitempty"`
	Expires    time.Time `json:"expires,omitzero"`
	ObtainedBy string    `json:"obtained_by,omitempty"`
	ObtainedAt time.Time `json:"obtained_at,omitzero"`
	RenewAt    time.Time `json:"renew_at,omitzero"`
	From       string    `json:"from,omitempty"`
	Error      string    `json:"error,omitempty"`
}

func certStatusOut(v hostproto.CertStatus) certStatusJSON {
	return certStatusJSON{
		Issuer:     v.Issuer,
		Expires:    v.Expires,
		ObtainedBy: v.ObtainedBy,
		ObtainedAt: v.ObtainedAt,
		RenewAt:    v.RenewAt,
		From:       v.From,
		Error:      v.Error,
	}
}

// drainStatusJSON is hostproto.DrainStatus as --json prints it.
type drainStatusJSON struct {
	Upstream       string `json:"upstream"`
	InFlight       int64  `json:"in_flight"`
	OpenWebSockets int    `json:"open_websockets"`
}

func drainStatusOut(v hostproto.DrainStatus) drainStatusJSON {
	return drainStatusJSON{
		Upstream:       v.Upstream,
		InFlight:       v.InFlight,
		OpenWebSockets: v.OpenWebSockets,
	}
}

// accessoryJSON is hostproto.AccessoryStatus as --json prints it.
type accessoryJSON struct {
	Name          string             `json:"name"`
	Service       string             `json:"service"`
	Unit          string             `json:"unit"`
	State         string             `json:"state"`
	Since         time.Time          `json:"since,omitzero"`
	Listen        string             `json:"listen"`
	Port          int                `json:"port"`
	Version       string             `json:"version,omitempty"`
	DataDir       string             `json:"data_dir"`
	Backups       int                `json:"backups"`
	LastBackup    *backupInfoJSON    `json:"last_backup,omitempty"`
	NextBackup    time.Time          `json:"next_backup,omitzero"`
	LastFailure   *backupFailureJSON `json:"last_failure,omitempty"`
	LastScheduled *backupRunJSON     `json:"last_scheduled,omitempty"`
	LastVerify    *verificationJSON  `json:"last_verify,omitempty"`
	LastOffsite   *backupRunJSON     `json:"last_offsite,omitempty"`
	BackupWarning string             `json:"backup_warning,omitempty"`
}

func accessoryOut(v hostproto.AccessoryStatus) accessoryJSON {
	return accessoryJSON{
		Name:          v.Name,
		Service:       v.Service,
		Unit:          v.Unit,
		State:         v.State,
		Since:         v.Since,
		Listen:        v.Listen,
		Port:          v.Port,
		Version:       v.Version,
		DataDir:       v.DataDir,
		Backups:       v.Backups,
		LastBackup:    ptrOut(v.LastBackup, backupInfoOut),
		NextBackup:    v.NextBackup,
		LastFailure:   ptrOut(v.LastFailure, backupFailureOut),
		LastScheduled: ptrOut(v.LastScheduled, backupRunOut),
		LastVerify:    ptrOut(v.LastVerify, verificationOut),
		LastOffsite:   ptrOut(v.LastOffsite, backupRunOut),
		BackupWarning: v.BackupWarning,
	}
}

// backupInfoJSON is hostproto.BackupInfo as --json prints it.
type backupInfoJSON struct {
	File         string    `json:"file"`
	Size         int64     `json:"size"`
	Created      time.Time `json:"created"`
	Kind         string    `json:"kind,omitempty"`
	Verified     time.Time `json:"verified,omitzero"`
	OffsiteError string    `json:"offsite_error,omitempty"`
}

func backupInfoOut(v hostproto.BackupInfo) backupInfoJSON {
	return backupInfoJSON{
		File:         v.File,
		Size:         v.Size,
		Created:      v.Created,
		Kind:         v.Kind,
		Verified:     v.Verified,
		OffsiteError: v.OffsiteError,
	}
}

// backupFailureJSON is hostproto.BackupFailure as --json prints it.
type backupFailureJSON struct {
	At        time.Time `json:"at"`
	Error     string    `json:"error"`
	Scheduled bool      `json:"scheduled,omitempty"`
}

func backupFailureOut(v hostproto.BackupFailure) backupFailureJSON {
	return backupFailureJSON{
		At:        v.At,
		Error:     v.Error,
		Scheduled: v.Scheduled,
	}
}

// backupRunJSON is hostproto.BackupRun as --json prints it.
type backupRunJSON struct {
	At    time.Time `json:"at"`
	File  string    `json:"file,omitempty"`
	Error string    `json:"error,omitempty"`
}

func backupRunOut(v hostproto.BackupRun) backupRunJSON {
	return backupRunJSON{
		At:    v.At,
		File:  v.File,
		Error: v.Error,
	}
}

// verificationJSON is hostproto.Verification as --json prints it.
type verificationJSON struct {
	At     time.Time `json:"at"`
	File   string    `json:"file"`
	OK     bool      `json:"ok"`
	Detail string    `json:"detail,omitempty"`
	Tables int       `json:"tables"`
}

func verificationOut(v hostproto.Verification) verificationJSON {
	return verificationJSON{
		At:     v.At,
		File:   v.File,
		OK:     v.OK,
		Detail: v.Detail,
		Tables: v.Tables,
	}
}

// storeRecordJSON is store.Record as --json prints it.
type storeRecordJSON struct {
	App         string    `json:"app"`
	Destination string    `json:"destination,omitempty"`
	Release     string    `json:"release"`
	Manifest    string    `json:"manifest"`
	Index       string    `json:"index"`
	Spec        string    `json:"spec,omitempty"`
	Seq         uint64    `json:"seq"`
	Prev        string    `json:"prev,omitempty"`
	Op          string    `json:"op"`
	At          time.Time `json:"at"`
	By          string    `json:"by,omitempty"`
}

func storeRecordOut(v store.Record) storeRecordJSON {
	return storeRecordJSON{
		App:         v.App,
		Destination: v.Destination,
		Release:     v.Release,
		Manifest:    v.Manifest,
		Index:       v.Index,
		Spec:        v.Spec,
		Seq:         v.Seq,
		Prev:        v.Prev,
		Op:          v.Op,
		At:          v.At,
		By:          v.By,
	}
}

// outcomeJSON is deploy.Outcome as --json prints it.
type outcomeJSON struct {
	Release string            `json:"release"`
	Hosts   []*hostReportJSON `json:"hosts"`
	Stopped string            `json:"stopped,omitempty"`
	Store   *storeReportJSON  `json:"store,omitempty"`
}

func outcomeOut(v deploy.Outcome) outcomeJSON {
	return outcomeJSON{
		Release: v.Release,
		Hosts:   sliceOut(v.Hosts, func(v *deploy.HostReport) *hostReportJSON { return ptrOut(v, hostReportOut) }),
		Stopped: v.Stopped,
		Store:   ptrOut(v.Store, storeReportOut),
	}
}

// hostReportJSON is deploy.HostReport as --json prints it.
type hostReportJSON struct {
	Host     string        `json:"host"`
	Status   string        `json:"status"`
	Error    string        `json:"error,omitempty"`
	Previous string        `json:"previous,omitempty"`
	Serving  string        `json:"serving,omitempty"`
	Transfer *transferJSON `json:"transfer,omitempty"`
	Group    int           `json:"group,omitempty"`
	OK       bool          `json:"ok"`
}

func hostReportOut(v deploy.HostReport) hostReportJSON {
	return hostReportJSON{
		Host:     v.Host,
		Status:   v.Status,
		Error:    v.Error,
		Previous: v.Previous,
		Serving:  v.Serving,
		Transfer: ptrOut(v.Transfer, transferOut),
		Group:    v.Group,
		OK:       v.OK,
	}
}

// transferJSON is deploy.Transfer as --json prints it.
type transferJSON struct {
	From    string  `json:"from"`
	Sent    int64   `json:"sent_bytes"`
	Needed  int64   `json:"needed_bytes"`
	Fetched int64   `json:"fetched_bytes,omitempty"`
	Objects int     `json:"objects"`
	Deltas  int     `json:"deltas"`
	Linked  int     `json:"linked_files"`
	Files   int     `json:"files"`
	Seconds float64 `json:"seconds"`
}

func transferOut(v deploy.Transfer) transferJSON {
	return transferJSON{
		From:    v.From,
		Sent:    v.Sent,
		Needed:  v.Needed,
		Fetched: v.Fetched,
		Objects: v.Objects,
		Deltas:  v.Deltas,
		Linked:  v.Linked,
		Files:   v.Files,
		Seconds: v.Seconds,
	}
}

// storeReportJSON is deploy.StoreReport as --json prints it.
type storeReportJSON struct {
	Where    string `json:"where"`
	Objects  int    `json:"objects"`
	Skipped  int    `json:"skipped"`
	PutBytes int64  `json:"put_bytes"`
	Current  string `json:"current,omitempty"`
	Seq      uint64 `json:"seq,omitempty"`
	Moved    bool   `json:"moved"`
	Error    string `json:"error,omitempty"`
}

func storeReportOut(v deploy.StoreReport) storeReportJSON {
	return storeReportJSON{
		Where:    v.Where,
		Objects:  v.Objects,
		Skipped:  v.Skipped,
		PutBytes: v.PutBytes,
		Current:  v.Current,
		Seq:      v.Seq,
		Moved:    v.Moved,
		Error:    v.Error,
	}
}

// dnsPlanJSON is dns.Plan as --json prints it.
type dnsPlanJSON struct {
	Provider string         `json:"provider"`
	Zone     string         `json:"zone"`
	Owner    string         `json:"owner"`
	Names    []dnsEntryJSON `json:"names"`
}

func dnsPlanOut(v dns.Plan) dnsPlanJSON {
	return dnsPlanJSON{
		Provider: v.Provider,
		Zone:     v.Zone,
		Owner:    v.Owner,
		Names:    sliceOut(v.Names, dnsEntryOut),
	}
}

// dnsEntryJSON is dns.Entry as --json prints it.
type dnsEntryJSON struct {
	Name   string              `json:"name"`
	State  string              `json:"state"`
	Action string              `json:"action"`
	Owner  string              `json:"owner,omitempty"`
	Want   map[string][]string `json:"want,omitempty"`
	Have   map[string][]string `json:"have,omitempty"`
}

func dnsEntryOut(v dns.Entry) dnsEntryJSON {
	return dnsEntryJSON{
		Name:   v.Name,
		State:  string(v.State),
		Action: string(v.Action),
		Owner:  v.Owner,
		Want:   map[string][]string(v.Want),
		Have:   map[string][]string(v.Have),
	}
}

// dnsStepJSON is dns.Step as --json prints it.
type dnsStepJSON struct {
	Op     string   `json:"op"`
	Name   string   `json:"name"`
	Type   string   `json:"type"`
	Values []string `json:"values"`
}

func dnsStepOut(v dns.Step) dnsStepJSON {
	return dnsStepJSON{
		Op:     v.Op,
		Name:   v.Name,
		Type:   v.Type,
		Values: v.Values,
	}
}

// planJSON is provision.Plan as --json prints it.
type planJSON struct {
	App      string           `json:"app"`
	Env      string           `json:"env"`
	Provider string           `json:"provider"`
	Region   string           `json:"region,omitempty"`
	Changes  []changeJSON     `json:"changes"`
	Existing int              `json:"unchanged"`
	Cost     costJSON         `json:"monthly_cost"`
	Compare  []comparisonJSON `json:"compare,omitempty"`
}

func planOut(v provision.Plan) planJSON {
	return planJSON{
		App:      v.App,
		Env:      v.Env,
		Provider: v.Provider,
		Region:   v.Region,
		Changes:  sliceOut(v.Changes, changeOut),
		Existing: v.Existing,
		Cost:     costOut(v.Cost),
		Compare:  sliceOut(v.Compare, comparisonOut),
	}
}

// changeJSON is provision.Change as --json prints it.
type changeJSON struct {
	Action   string        `json:"action"`
	Resource resourceJSON  `json:"resource"`
	Was      *resourceJSON `json:"was,omitempty"`
}

func changeOut(v provision.Change) changeJSON {
	return changeJSON{
		Action:   string(v.Action),
		Resource: resourceOut(v.Resource),
		Was:      ptrOut(v.Was, resourceOut),
	}
}

// resourceJSON is provision.Resource as --json prints it.
type resourceJSON struct {
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	ID    string `json:"id,omitempty"`
	Props string `json:"props"`
}

func resourceOut(v provision.Resource) resourceJSON {
	return resourceJSON{
		Kind:  v.Kind,
		Name:  v.Name,
		ID:    v.ID,
		Props: v.Props,
	}
}

// costJSON is provision.Cost as --json prints it.
type costJSON struct {
	Currency    string         `json:"currency"`
	Lines       []costLineJSON `json:"lines"`
	Total       float64        `json:"total"`
	Source      string         `json:"source,omitempty"`
	AsOf        string         `json:"as_of,omitempty"`
	Assumptions []string       `json:"assumptions,omitempty"`
	Unpriced    []unpricedJSON `json:"unpriced,omitempty"`
}

func costOut(v provision.Cost) costJSON {
	return costJSON{
		Currency:    v.Currency,
		Lines:       sliceOut(v.Lines, costLineOut),
		Total:       v.Total,
		Source:      v.Source,
		AsOf:        v.AsOf,
		Assumptions: v.Assumptions,
		Unpriced:    sliceOut(v.Unpriced, unpricedOut),
	}
}

// costLineJSON is provision.CostLine as --json prints it.
type costLineJSON struct {
	Item      string  `json:"item"`
	Quantity  float64 `json:"quantity"`
	Unit      string  `json:"unit"`
	UnitPrice float64 `json:"unit_price"`
	Monthly   float64 `json:"monthly"`
	Unknown   bool    `json:"unknown,omitempty"`
}

func costLineOut(v provision.CostLine) costLineJSON {
	return costLineJSON{
		Item:      v.Item,
		Quantity:  v.Quantity,
		Unit:      v.Unit,
		UnitPrice: v.UnitPrice,
		Monthly:   v.Monthly,
		Unknown:   v.Unknown,
	}
}

// unpricedJSON is provision.Unpriced as --json prints it.
type unpricedJSON struct {
	Field string `json:"field"`
	Msg   string `json:"message"`
}

func unpricedOut(v provision.Unpriced) unpricedJSON {
	return unpricedJSON{
		Field: v.Field,
		Msg:   v.Msg,
	}
}

// comparisonJSON is provision.Comparison as --json prints it.
type comparisonJSON struct {
	Balancer string  `json:"balancer"`
	Total    float64 `json:"total"`
	Current  bool    `json:"current"`
	Unknown  bool    `json:"unknown,omitempty"`
}

func comparisonOut(v provision.Comparison) comparisonJSON {
	return comparisonJSON{
		Balancer: v.Balancer,
		Total:    v.Total,
		Current:  v.Current,
		Unknown:  v.Unknown,
	}
}

// balancerJSON is provision.Balancer as --json prints it.
type balancerJSON struct {
	Name          string                 `json:"name"`
	ID            string                 `json:"id"`
	DNSName       string                 `json:"dns_name"`
	Addr          string                 `json:"addr,omitempty"`
	CA            string                 `json:"ca,omitempty"`
	CertificateID string                 `json:"certificate_id,omitempty"`
	Validation    []validationRecordJSON `json:"validation,omitempty"`
}

func balancerOut(v provision.Balancer) balancerJSON {
	return balancerJSON{
		Name:          v.Name,
		ID:            v.ID,
		DNSName:       v.DNSName,
		Addr:          v.Addr,
		CA:            v.CA,
		CertificateID: v.CertificateID,
		Validation:    sliceOut(v.Validation, validationRecordOut),
	}
}

// validationRecordJSON is provision.ValidationRecord as --json prints it.
type validationRecordJSON struct {
	Domain string `json:"domain"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	Value  string `json:"value"`
}

func validationRecordOut(v provision.ValidationRecord) validationRecordJSON {
	return validationRecordJSON{
		Domain: v.Domain,
		Name:   v.Name,
		Type:   v.Type,
		Value:  v.Value,
	}
}

// labHostJSON is lab.Host as --json prints it.
type labHostJSON struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	PID  int    `json:"pid"`
}

func labHostOut(v lab.Host) labHostJSON {
	return labHostJSON{
		Name: v.Name,
		Addr: v.Addr,
		PID:  v.PID,
	}
}

// manifestJSON is release.Manifest as --json prints it.
type manifestJSON struct {
	App     string    `json:"app"`
	ID      string    `json:"id"`
	Commit  string    `json:"commit"`
	Ref     string    `json:"ref,omitempty"`
	SHA256  string    `json:"sha256"`
	Size    int64     `json:"size"`
	BuiltAt time.Time `json:"built_at"`
	OS      string    `json:"os"`
	Arch    string    `json:"arch"`
	GLIBC   string    `json:"glibc,omitempty"`
	Index   string    `json:"index,omitempty"`
}

func manifestOut(v release.Manifest) manifestJSON {
	return manifestJSON{
		App:     v.App,
		ID:      v.ID,
		Commit:  v.Commit,
		Ref:     v.Ref,
		SHA256:  v.SHA256,
		Size:    v.Size,
		BuiltAt: v.BuiltAt,
		OS:      v.OS,
		Arch:    v.Arch,
		GLIBC:   v.GLIBC,
		Index:   v.Index,
	}
}
