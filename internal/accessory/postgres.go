package accessory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/hostproto"
)

// Debian's PostgreSQL: postgresql-common runs each cluster as
// postgresql@VERSION-CLUSTER.service, with its settings under
// /etc/postgresql/VERSION/CLUSTER and its data under
// /var/lib/postgresql/VERSION/CLUSTER. Each accessory is a cluster of
// its own, with its own port, unit and data.
const (
	pgEtc  = "/etc/postgresql"
	pgData = "/var/lib/postgresql"
	pgLib  = "/usr/lib/postgresql"
	pgRun  = "/var/run/postgresql"
	pgLog  = "/var/log/postgresql"
	// pgNoMain keeps the package from making its own "main" cluster on
	// install: it would hold port 5432 with no one's data.
	pgNoMain = "/etc/postgresql-common/createcluster.d/hoist.conf"
)

type postgres struct {
	s       *hostproto.AccessorySpec
	ver     string
	cluster string
	owner   *user.User // the postgres system user
	// hbaChanged: configure rewrote pg_hba.conf, which provision has
	// the running server read again.
	hbaChanged bool
}

// pgCluster names the accessory's cluster: its instance with the dashes
// turned to underscores, as systemd's %I unit specifier needs.
func pgCluster(s *hostproto.AccessorySpec) string { return strings.ReplaceAll(instance(s), "-", "_") }

func newPostgres(s *hostproto.AccessorySpec) (engine, error) { return openPostgres(s) }

// postgresOwns reports whether unit runs s's cluster, of any version.
func postgresOwns(s *hostproto.AccessorySpec, unit string) bool {
	return strings.HasPrefix(unit, "postgresql@") && strings.HasSuffix(unit, "-"+pgCluster(s)+".service")
}

func openPostgres(s *hostproto.AccessorySpec) (*postgres, error) {
	cluster := pgCluster(s)
	ver, err := pgVersion(cluster)
	if err != nil {
		return nil, err
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("accessory %s: PostgreSQL's system user: %w", s.Name, err)
	}
	return &postgres{s: s, ver: ver, cluster: cluster, owner: u}, nil
}

// pgVersion is the version of the accessory's cluster if it has one (a
// newer PostgreSQL installed later must not hide its data), else the
// newest version installed.
func pgVersion(cluster string) (string, error) {
	if have, _ := filepath.Glob(filepath.Join(pgEtc, "*", cluster, "postgresql.conf")); len(have) > 0 {
		return filepath.Base(filepath.Dir(filepath.Dir(have[0]))), nil
	}
	bins, _ := filepath.Glob(filepath.Join(pgLib, "*", "bin", "postgres"))
	var vers []int
	for _, b := range bins {
		if v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(b)))); err == nil {
			vers = append(vers, v)
		}
	}
	if len(vers) == 0 {
		return "", fmt.Errorf("no PostgreSQL server under %s: is the postgresql package installed?", pgLib)
	}
	return strconv.Itoa(slices.Max(vers)), nil
}

func postgresBeforeInstall() error {
	if err := os.MkdirAll(filepath.Dir(pgNoMain), 0o755); err != nil {
		return fmt.Errorf("postgresql: %w", err)
	}
	return atomicfile.Write(pgNoMain, []byte("# Written by hoist: each accessory is a cluster of its own.\ncreate_main_cluster = false\n"), 0o644)
}

func (pg *postgres) unit() string           { return "postgresql@" + pg.ver + "-" + pg.cluster + ".service" }
func (pg *postgres) confDir() string        { return filepath.Join(pgEtc, pg.ver, pg.cluster) }
func (pg *postgres) dataDir() string        { return filepath.Join(pgData, pg.ver, pg.cluster) }
func (pg *postgres) version() string        { return pg.ver }
func (pg *postgres) bin(name string) string { return filepath.Join(pgLib, pg.ver, "bin", name) }

func (pg *postgres) create(ctx context.Context, log io.Writer) error {
	if _, err := os.Stat(filepath.Join(pg.confDir(), "postgresql.conf")); err == nil {
		return nil
	}
	fmt.Fprintf(log, "creating PostgreSQL %s cluster %s\n", pg.ver, pg.cluster)
	cmd := exec.CommandContext(ctx, "pg_createcluster", "--port", strconv.Itoa(pg.s.Port), "--start-conf", "auto",
		"--locale", "C.UTF-8", "--encoding", "UTF8", pg.ver, pg.cluster,
		"--", "--data-checksums", "--auth-local=peer", "--auth-host=scram-sha-256")
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("accessory %s: pg_createcluster: %w: %s", pg.s.Name, err, lastLines(string(out), 10))
	}
	return nil
}

var pgConf = template.Must(template.New("conf").Parse(`# Written by hoist; changes are overwritten by hoist setup.
listen_addresses = '{{.Listen}}'
port = {{.Port}}
password_encryption = 'scram-sha-256'
# Into the journal of the cluster's unit, where hoist accessory logs reads.
log_destination = 'syslog'
syslog_ident = '{{.Ident}}'
`))

var pgHBA = template.Must(template.New("hba").Parse(`# Written by hoist; changes are overwritten by hoist setup.
# Only the app's role reaches the app's database, with its password;
# postgres itself only from this host's postgres user. Through the
# socket the role also reaches the scratch databases that hoist's
# restores and verify drills load backups into, as the role.
# TYPE  DATABASE  USER  ADDRESS  METHOD
local   all  postgres  peer
local   {{.DB}},{{.DB}}__restore,{{.DB}}__verify  {{.DB}}  scram-sha-256
host    {{.DB}}  {{.DB}}  127.0.0.1/32  scram-sha-256
host    {{.DB}}  {{.DB}}  ::1/128  scram-sha-256
{{- range .Allow}}
host    {{$.DB}}  {{$.DB}}  {{.}}  scram-sha-256
{{- end}}
`))

// pgSettings renders the cluster's conf.d/hoist.conf and pg_hba.conf.
func (pg *postgres) settings() (conf, hba []byte) {
	var c, h bytes.Buffer
	_ = pgConf.Execute(&c, map[string]any{"Listen": pg.s.Listen, "Port": pg.s.Port, "Ident": strings.TrimSuffix(pg.unit(), ".service")})
	_ = pgHBA.Execute(&h, map[string]any{"DB": pg.s.Database, "Allow": allowed(pg.s)})
	return c.Bytes(), h.Bytes()
}

// configure writes the settings; it reports a change that needs a
// restart. A change of pg_hba.conf alone needs only a reload, which
// provision asks for: the app keeps its connections.
func (pg *postgres) configure(string) (bool, error) {
	conf, hba := pg.settings()
	uid, gid := ids(pg.owner)
	changed, err := writeIfChanged(filepath.Join(pg.confDir(), "conf.d", "hoist.conf"), conf, 0o640, uid, gid)
	if err != nil {
		return false, fmt.Errorf("accessory %s: %w", pg.s.Name, err)
	}
	if pg.hbaChanged, err = writeIfChanged(filepath.Join(pg.confDir(), "pg_hba.conf"), hba, 0o640, uid, gid); err != nil {
		return false, fmt.Errorf("accessory %s: %w", pg.s.Name, err)
	}
	return changed, nil
}

func (pg *postgres) hardening() hardening {
	return hardening{User: "postgres", Group: "postgres", Paths: []string{pg.dataDir(), pgRun, pgLog}}
}

func (pg *postgres) ready(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := pg.run(ctx, "pg_isready", []string{"-q", "-t", "5"}, nil, io.Discard)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("accessory %s: PostgreSQL does not accept connections: %w", pg.s.Name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// provision makes the app's role and database, and sets the role's
// password from its SCRAM verifier: the password itself never reaches
// the server, its logs or a command line.
func (pg *postgres) provision(ctx context.Context, password string) error {
	verifier, err := scramVerifier(password)
	if err != nil {
		return err
	}
	db := pg.s.Database
	script := fmt.Sprintf(`SELECT format('CREATE ROLE %%I LOGIN', %[1]s) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %[1]s)
\gexec
ALTER ROLE %[2]s WITH LOGIN PASSWORD %[3]s;
SELECT format('CREATE DATABASE %%I OWNER %%I', %[1]s, %[1]s) WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = %[1]s)
\gexec
`, quoteLiteral(db), quoteIdent(db), quoteLiteral(verifier))
	if pg.hbaChanged {
		script += "SELECT pg_reload_conf();\n"
	}
	_, err = pg.psql(ctx, "postgres", strings.NewReader(script))
	return err
}

func (pg *postgres) url(password string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(pg.s.Database, password),
		Host: net.JoinHostPort(pg.s.Listen, strconv.Itoa(pg.s.Port)), Path: "/" + pg.s.Database}
	return u.String()
}

// psql runs a script in database db as postgres and returns its
// unaligned, tuples-only output.
func (pg *postgres) psql(ctx context.Context, db string, script io.Reader, extra ...string) (string, error) {
	var out bytes.Buffer
	args := append([]string{"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db}, extra...)
	err := pg.run(ctx, "psql", append(args, "-f", "-"), script, &out)
	return strings.TrimSpace(out.String()), err
}

// run runs one of PostgreSQL's programs as postgres, on the cluster's
// socket; a failure carries the end of what it wrote on stderr.
func (pg *postgres) run(ctx context.Context, name string, args []string, stdin io.Reader, stdout io.Writer) error {
	return pg.runEnv(ctx, name, args, nil, stdin, stdout)
}

// runEnv is run with more variables in the program's environment
// (which only root and postgres may read).
func (pg *postgres) runEnv(ctx context.Context, name string, args, env []string, stdin io.Reader, stdout io.Writer) error {
	cmd := exec.CommandContext(ctx, pg.bin(name), args...)
	cmd.Dir = "/"
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "PGHOST=" + pgRun, "PGPORT=" + strconv.Itoa(pg.s.Port), "PGCONNECT_TIMEOUT=10"}, env...)
	uid, gid := ids(pg.owner)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	var errb tail
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, errb.String())
	}
	return nil
}

// userTables counts the database's own relations: a database with none
// holds nothing a restore could lose.
func (pg *postgres) userTables(ctx context.Context, db string) (int, error) {
	out, err := pg.psql(ctx, db, strings.NewReader(`SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%';
`))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(out)
}

// databaseExists reports whether database db exists: one dropped by
// hand is restored all the same.
func (pg *postgres) databaseExists(ctx context.Context, db string) (bool, error) {
	out, err := pg.psql(ctx, "postgres", strings.NewReader("SELECT count(*) FROM pg_database WHERE datname = "+quoteLiteral(db)+";\n"))
	return out == "1", err
}

func quoteIdent(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

func ids(u *user.User) (int, int) {
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}
