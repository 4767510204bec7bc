package accessory

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Restore replaces the accessory's database with backup file, in steps
// that leave the database as it was until the last one:
//
//  1. the whole backup is read and verified (Verify);
//  2. the disk must have room for it beside the database it replaces;
//  3. a database holding anything needs confirm, and is backed up first;
//  4. the backup is loaded, in one transaction, into a scratch database
//     owned by the app's role;
//  5. only then the scratch database takes the database's name, the
//     app's connections being closed (it reconnects), and the old one is
//     dropped.
func Restore(ctx context.Context, s *Spec, p Place, file string, confirm bool, log io.Writer) error {
	pg, err := postgresOf(s)
	if err != nil {
		return err
	}
	if !ValidBackupFile(file) {
		return fmt.Errorf("%q is not a backup file name", file)
	}
	path := filepath.Join(p.Backups, file)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("there is no backup %s on this host: hoist accessory backups lists them", file)
	}
	fmt.Fprintf(log, "verifying %s\n", file)
	meta, size, err := VerifyFile(path)
	if err != nil {
		return err
	}
	if err := checkRoom(pg.dataDir(), roomFor(size), diskFree); err != nil {
		return err
	}
	db := s.Database
	exists, err := pg.databaseExists(ctx, db)
	if err != nil {
		return err
	}
	n := 0
	if exists {
		if n, err = pg.userTables(ctx, db); err != nil {
			return err
		}
	}
	if n > 0 {
		if !confirm {
			return &ConfirmError{Database: db, Tables: n}
		}
		before, err := pg.backup(ctx, p, backupName(s, time.Now(), "-before-restore"))
		if err != nil {
			return fmt.Errorf("back up %s before the restore: %w; nothing was changed", db, err)
		}
		fmt.Fprintf(log, "what %s held is kept in backup %s\n", db, before.File)
	}
	scratch := db + "__restore"
	fmt.Fprintf(log, "loading %s (PostgreSQL %s, made %s) into %s\n", file, meta.Version, meta.Created.Format(time.RFC3339), scratch)
	if err := pg.load(ctx, path, scratch); err != nil {
		pg.psql(ctx, "postgres", strings.NewReader("DROP DATABASE IF EXISTS "+quoteIdent(scratch)+";\n"))
		return fmt.Errorf("restore of %s failed: %w; the database was not changed", file, err)
	}
	if err := pg.swap(ctx, scratch, exists); err != nil {
		return err
	}
	fmt.Fprintf(log, "%s restored from %s\n", db, file)
	return prune(p.Backups, s.BackupKeep)
}

// load makes database scratch afresh and loads the backup into it, in
// one transaction, as the app's role: what it creates is the app's.
func (pg *postgres) load(ctx context.Context, path, scratch string) error {
	db := pg.s.Database
	if _, err := pg.psql(ctx, "postgres", strings.NewReader(fmt.Sprintf("DROP DATABASE IF EXISTS %[1]s;\nCREATE DATABASE %[1]s OWNER %[2]s;\n",
		quoteIdent(scratch), quoteIdent(db)))); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	zr.Multistream(false)
	sql := io.MultiReader(strings.NewReader("SET ROLE "+quoteIdent(db)+";\n"), zr)
	_, err = pg.psql(ctx, scratch, sql, "--single-transaction")
	return err
}

// swap gives scratch the database's name and drops the database it
// replaces, if it exists. The app's connections to it are closed; no new
// one is let in meanwhile.
func (pg *postgres) swap(ctx context.Context, scratch string, exists bool) error {
	db := pg.s.Database
	old := db + "__replaced"
	lit, id := quoteLiteral(db), quoteIdent(db)
	if !exists {
		_, err := pg.psql(ctx, "postgres", strings.NewReader(fmt.Sprintf("ALTER DATABASE %s RENAME TO %s;\n", quoteIdent(scratch), id)))
		return err
	}
	if _, err := pg.psql(ctx, "postgres", strings.NewReader(fmt.Sprintf(`DROP DATABASE IF EXISTS %[3]s WITH (FORCE);
ALTER DATABASE %[1]s WITH ALLOW_CONNECTIONS false;
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %[2]s AND pid <> pg_backend_pid();
`, id, lit, quoteIdent(old)))); err != nil {
		return fmt.Errorf("restore: close the app's connections: %w; the database was not changed", err)
	}
	// A terminated backend takes a moment to exit; until it has, the
	// database cannot be renamed.
	if err := pg.retryInUse(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s;\n", id, quoteIdent(old))); err != nil {
		pg.psql(ctx, "postgres", strings.NewReader(fmt.Sprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS true;\n", id)))
		return fmt.Errorf("restore: %w; the database was not changed", err)
	}
	if _, err := pg.psql(ctx, "postgres", strings.NewReader(fmt.Sprintf("ALTER DATABASE %s RENAME TO %s;\n", quoteIdent(scratch), id))); err != nil {
		pg.psql(ctx, "postgres", strings.NewReader(fmt.Sprintf("ALTER DATABASE %s RENAME TO %s;\nALTER DATABASE %s WITH ALLOW_CONNECTIONS true;\n", quoteIdent(old), id, id)))
		return fmt.Errorf("restore: %w; the database was put back as it was", err)
	}
	if _, err := pg.psql(ctx, "postgres", strings.NewReader(fmt.Sprintf("DROP DATABASE %s WITH (FORCE);\n", quoteIdent(old)))); err != nil {
		return fmt.Errorf("restore is done, but dropping the replaced database %s failed: %w", old, err)
	}
	return nil
}

// retryInUse runs a statement until the database it needs is no longer
// in use, for at most ten seconds.
func (pg *postgres) retryInUse(ctx context.Context, stmt string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := pg.psql(ctx, "postgres", strings.NewReader(stmt))
		if err == nil || !strings.Contains(err.Error(), "is being accessed by other users") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
