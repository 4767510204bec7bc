package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/accessory"
	"github.com/hoistdev/hoist/internal/bytesize"
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/hostclient"
	"github.com/hoistdev/hoist/internal/secrets"
	"github.com/hoistdev/hoist/internal/usererr"
)

type pullOptions struct {
	to, into string
	force    bool
	json     bool
}

func newAccessoryPullCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &pullOptions{}
	cmd := &cobra.Command{
		Use:   "pull NAME (--to FILE | --into postgres://...)",
		Short: "Copy a PostgreSQL accessory's database here: into a file, or into a local PostgreSQL",
		Long: "pull makes a fresh backup of the accessory's database on its host (as\n" +
			"accessory backup does), copies it here and verifies it whole, then:\n\n" +
			"  --to FILE       keeps it in FILE (or in the directory FILE), a backup\n" +
			"                  that accessory restore takes back;\n" +
			"  --into URL      loads it into a database of a PostgreSQL you reach,\n" +
			"                  with your own rights there (the URL's user; objects\n" +
			"                  are owned by it), like Heroku's pg:pull.\n\n" +
			"A database of URL that exists and holds anything is left alone unless\n" +
			"--force; then it is replaced only once the backup has loaded whole into\n" +
			"a scratch database beside it. The backup's SQL runs in psql's restricted\n" +
			"mode: no backslash command it holds runs on this machine.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (o.to == "") == (o.into == "") {
				return usage("pull takes one of --to FILE and --into postgres://...")
			}
			return runAccessoryPull(cmd.Context(), s, g, o, args[0])
		},
	}
	cmd.Flags().StringVar(&o.to, "to", "", "keep the backup in this file (or directory)")
	cmd.Flags().StringVar(&o.into, "into", "", "load it into this database: postgres://[USER[:PASSWORD]@]HOST[:PORT]/DB")
	cmd.Flags().BoolVar(&o.force, "force", false, "replace a file, or a database that holds data")
	jsonFlag(cmd, &o.json)
	return cmd
}

func runAccessoryPull(ctx context.Context, s *streams, g *globalOptions, o *pullOptions, name string) error {
	a, err := loadApp(g, s, nil)
	if err != nil {
		return err
	}
	if _, err := a.accessory(name); err != nil {
		return err
	}
	if spec := a.AccessorySpec(name); spec.Service != config.ServicePostgreSQL {
		return usage("accessory %s is %s: pull is for postgresql accessories", name, spec.Service)
	}
	// What is here is checked before the host makes a backup.
	var target *localDB
	dest := ""
	replace := false
	if o.into != "" {
		if target, err = openLocalDB(o.into); err != nil {
			return err
		}
		if replace, err = target.check(ctx, o.force); err != nil {
			return err
		}
	} else {
		dest = o.to
		if fi, err := os.Stat(dest); err == nil && !fi.IsDir() && !o.force {
			return usererr.New("%s exists", dest).WithHint("pass --force to replace it, or give another file")
		}
	}
	var res pullResult
	err = onAccessory(ctx, s, g, name, func(ctx context.Context, c *hostclient.Client, h string) error {
		bi, err := c.BackupAccessory(ctx, name)
		if err != nil {
			return err
		}
		res = pullResult{Host: h, Name: name, File: bi.File}
		fmt.Fprintf(s.err, "%s: backed up %s to %s (%s)\n", h, name, bi.File, bytesize.String(bi.Size))
		dir := dest
		if target != nil {
			dir, err = os.MkdirTemp("", "hoist-pull-")
		} else if !isDir(dest) {
			// Beside FILE, which it then becomes by a rename.
			dir, err = os.MkdirTemp(filepath.Dir(dest), ".hoist-pull-")
		}
		if err != nil {
			return fmt.Errorf("pull: %w", err)
		}
		if dir != dest {
			defer os.RemoveAll(dir)
		}
		path, err := fetchBackup(ctx, c, name, bi.File, dir)
		if err != nil {
			return err
		}
		if target == nil {
			if !isDir(dest) {
				if err := os.Rename(path, dest); err != nil {
					return fmt.Errorf("pull: %w", err)
				}
				path = dest
			}
			res.Local = path
			return nil
		}
		fmt.Fprintf(s.err, "loading %s into %s\n", bi.File, target.display())
		n, err := target.load(ctx, path, replace)
		if err != nil {
			return err
		}
		res.Into, res.Tables, res.Replaced = target.display(), n, replace
		return nil
	})
	if err != nil {
		return err
	}
	switch {
	case o.json:
		return writeJSON(s, res)
	case res.Local != "":
		fmt.Fprintln(s.out, res.Local)
	default:
		fmt.Fprintf(s.err, "%s holds %s's database now: %d tables\n", res.Into, name, res.Tables)
		fmt.Fprintln(s.out, res.Into)
	}
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// localDB is a database of a PostgreSQL this machine reaches, through
// its own psql, as the URL's user.
type localDB struct {
	psql     string
	u        *url.URL // without its password
	password string
	name     string
}

var localDBName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,56}$`)

func openLocalDB(raw string) (*localDB, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, usage("--into %q is not a postgres:// URL", raw)
	}
	d := &localDB{name: strings.TrimPrefix(u.Path, "/")}
	if !localDBName.MatchString(d.name) {
		return nil, usage("--into %q names no database (or one hoist will not quote): write postgres://HOST/DB", raw)
	}
	if pw, ok := u.User.Password(); ok {
		d.password = pw
		u.User = url.User(u.User.Username())
	}
	d.u = u
	if d.psql, err = exec.LookPath("psql"); err != nil {
		return nil, usererr.New("there is no psql here to load the backup with").
			WithHint("install PostgreSQL's client (apt install postgresql-client, brew install libpq), or pull --to FILE")
	}
	if err := d.restrictable(); err != nil {
		return nil, err
	}
	return d, nil
}

// display is the URL without its password.
func (d *localDB) display() string { return d.u.String() }

// conn is the URL of database db of the same server.
func (d *localDB) conn(db string) string {
	u := *d.u
	u.Path = "/" + db
	return u.String()
}

// restrictMinor is the first release of each major version of psql with
// \restrict (August 2025); any later major has it.
var restrictMinor = map[int]int{13: 22, 14: 19, 15: 14, 16: 10, 17: 6}

// restrictable refuses a psql too old for restricted mode: without it,
// a backslash command in the backup would run on this machine.
func (d *localDB) restrictable() error {
	out, err := exec.Command(d.psql, "--version").Output()
	if err != nil {
		return fmt.Errorf("psql --version: %w", err)
	}
	major, minor, ok := restrictedMode(string(out))
	if major == 0 {
		return fmt.Errorf("psql --version said %q", strings.TrimSpace(string(out)))
	}
	if ok {
		return nil
	}
	return usererr.New("psql %d.%d here has no restricted mode (\\restrict), which keeps a backup's backslash commands from running on this machine", major, minor).
		WithHint("install a newer PostgreSQL client (13.22, 14.19, 15.14, 16.10, 17.6 or later), or pull --to FILE")
}

// restrictedMode reads psql --version's output: the version, and
// whether it has \restrict.
func restrictedMode(version string) (major, minor int, ok bool) {
	m := regexp.MustCompile(`(\d+)\.(\d+)`).FindStringSubmatch(version)
	if m == nil {
		return 0, 0, false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	first, known := restrictMinor[major]
	return major, minor, (known && minor >= first) || major > 17
}

// run runs psql on database db with args; stdin, if not nil, is its
// script. A failure carries psql's words.
func (d *localDB) run(ctx context.Context, db string, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, d.psql, append([]string{"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", d.conn(db)}, args...)...)
	cmd.Env = os.Environ()
	if d.password != "" {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+d.password) // not on the command line, where ps shows it
	}
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql on %s: %w: %s", d.conn(db), err, lastLine(errb.String(), 2000))
	}
	return strings.TrimSpace(out.String()), nil
}

// maintenance is the server's database psql connects to for what
// concerns whole databases.
const maintenanceDB = "postgres"

// check reports whether the database exists and holds data, which only
// force replaces.
func (d *localDB) check(ctx context.Context, force bool) (bool, error) {
	n, err := d.run(ctx, maintenanceDB, nil, "-c", "SELECT count(*) FROM pg_database WHERE datname = "+quoteLiteral(d.name))
	if err != nil {
		return false, usererr.Wrap(err, "cannot reach %s", d.display()).WithHint("give a URL of a PostgreSQL you reach, as a user that may create databases")
	}
	if n == "0" {
		return false, nil
	}
	tables, err := d.tables(ctx, d.name)
	if err != nil {
		return false, err
	}
	if tables > 0 && !force {
		return false, usererr.New("database %s of %s is not empty (%d tables, views or sequences), and was left as it is", d.name, d.display(), tables).
			WithHint("pass --force to replace it, once the backup has loaded whole beside it; or pull into another database")
	}
	return true, nil
}

func (d *localDB) tables(ctx context.Context, db string) (int, error) {
	out, err := d.run(ctx, db, nil, "-c", `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(out)
}

// load loads the backup at path into a scratch database in one
// transaction, as the URL's user, then gives it the database's name
// (replacing the one there when replace). It returns the tables it holds.
func (d *localDB) load(ctx context.Context, path string, replace bool) (int, error) {
	scratch, old := d.name+"__pull", d.name+"__replaced"
	if _, err := d.run(ctx, maintenanceDB, nil, "-c", "DROP DATABASE IF EXISTS "+quoteIdent(scratch), "-c", "CREATE DATABASE "+quoteIdent(scratch)); err != nil {
		return 0, usererr.Wrap(err, "cannot make a database on %s", d.display()).WithHint("the URL's user needs CREATEDB (ALTER ROLE ... CREATEDB)")
	}
	dropScratch := func() {
		d.run(context.WithoutCancel(ctx), maintenanceDB, nil, "-c", "DROP DATABASE IF EXISTS "+quoteIdent(scratch))
	}
	f, err := os.Open(path)
	if err != nil {
		dropScratch()
		return 0, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		dropScratch()
		return 0, err
	}
	zr.Multistream(false)
	key, err := secrets.Generate(32)
	if err != nil {
		dropScratch()
		return 0, err
	}
	if _, err := d.run(ctx, scratch, accessory.Restricted(zr, key), "--single-transaction", "-f", "-"); err != nil {
		dropScratch()
		return 0, fmt.Errorf("the backup did not load, and %s was left as it was: %w", d.name, err)
	}
	swap := []string{"-c", "ALTER DATABASE " + quoteIdent(scratch) + " RENAME TO " + quoteIdent(d.name)}
	if replace {
		swap = []string{"-c", "DROP DATABASE IF EXISTS " + quoteIdent(old),
			"-c", "BEGIN; ALTER DATABASE " + quoteIdent(d.name) + " RENAME TO " + quoteIdent(old) + "; ALTER DATABASE " + quoteIdent(scratch) + " RENAME TO " + quoteIdent(d.name) + "; COMMIT",
			"-c", "DROP DATABASE " + quoteIdent(old)}
	}
	if _, err := d.run(ctx, maintenanceDB, nil, swap...); err != nil {
		dropScratch()
		return 0, usererr.Wrap(err, "the backup loaded, but could not take %s's place", d.name).
			WithHint("close the connections to %s (a dev server, a psql) and pull again", d.name)
	}
	return d.tables(ctx, d.name)
}

func quoteIdent(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// lastLine is the end of s, at most n bytes, trimmed.
func lastLine(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
