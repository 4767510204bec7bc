package accessory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// Psql runs psql on the accessory's database as the app's role, with
// its password, through the cluster's socket: never as postgres. The
// program runs as osUser (the app's system user, which holds the
// password already in DATABASE_URL; nobody on a host without the app),
// so that psql's \! and \o | get no more of the host than the app has.
// args follow hoist's own connection arguments (a later -d or -U only
// reaches what pg_hba.conf lets the role reach). On a terminal, stdin,
// stdout and stderr are all t. It returns psql's exit status.
func Psql(ctx context.Context, s *hostproto.AccessorySpec, p Place, osUser string, args []string, term string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	var pg *postgres
	if svc := serviceOf[s.Service]; svc != nil {
		if e, err := svc.engine(s); err == nil {
			pg, _ = e.(*postgres)
		}
	}
	if pg == nil {
		return 0, fmt.Errorf("accessory %s is %s: hoist accessory psql is for postgresql", s.Name, s.Service)
	}
	password, err := os.ReadFile(p.Password)
	if err != nil {
		return 0, fmt.Errorf("accessory %s: the app's password: %w", s.Name, err)
	}
	u, err := user.Lookup(osUser)
	if err != nil {
		if u, err = user.Lookup("nobody"); err != nil {
			return 0, fmt.Errorf("psql: neither %s nor nobody is a user here", osUser)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := exec.CommandContext(ctx, pg.bin("psql"), append([]string{"-X"}, args...)...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/nonexistent", "PSQL_HISTORY=/dev/null",
		"PGHOST=" + pgRun, "PGPORT=" + strconv.Itoa(s.Port), "PGUSER=" + s.Database, "PGDATABASE=" + s.Database,
		"PGPASSWORD=" + strings.TrimSpace(string(password)), "PGAPPNAME=hoist accessory psql"}
	if term != "" {
		cmd.Env = append(cmd.Env, "TERM="+term)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("psql: %w", err)
	}
	return 0, nil
}
