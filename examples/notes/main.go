// Command notes is hoist's example of an app with accessories: a list of
// notes kept in PostgreSQL, reached through DATABASE_URL with pgx, and a
// visit counter in Redis, reached through REDIS_URL (docs/accessories.md).
//
//	GET  /        the release that serves, and how many notes there are
//	GET  /notes   the notes, one per line, oldest first
//	POST /notes   adds the request's body as a note
//	GET  /visits  counts a visit in Redis and says how many there were
//	GET  /up      healthy once the database answers
//
// `notes migrate` creates the table; hoist.yml runs it as the
// before_switch hook, while the previous release still serves.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

const schema = `CREATE TABLE IF NOT EXISTS notes (
	id      bigserial PRIMARY KEY,
	body    text NOT NULL,
	created timestamptz NOT NULL DEFAULT now()
)`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	db, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatalf("database: %v", err)
	}
	defer db.Close()
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		if _, err := db.Exec(ctx, schema); err != nil {
			log.Fatalf("migrate: %v", err)
		}
		fmt.Println("migrated")
		return
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "3000"
	}
	srv := &http.Server{Addr: ":" + port, Handler: routes(db, os.Getenv("HOIST_RELEASE"), os.Getenv("REDIS_URL")), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

func routes(db *pgxpool.Pool, release, redisURL string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		if err := retryRead(func() error { return db.QueryRow(r.Context(), "SELECT count(*) FROM notes").Scan(&n) }); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "notes from release %s: %d notes\n", release, n)
	})
	mux.HandleFunc("GET /notes", func(w http.ResponseWriter, r *http.Request) {
		// Read whole before answering: an error can come with any row.
		var notes []string
		err := retryRead(func() error {
			rows, err := db.Query(r.Context(), "SELECT body FROM notes ORDER BY id")
			if err == nil {
				notes, err = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			return err
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	})
	mux.HandleFunc("POST /notes", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil || len(strings.TrimSpace(string(body))) == 0 {
			http.Error(w, "send the note as the request's body", http.StatusBadRequest)
			return
		}
		if err := retryWrite(func() error {
			_, err := db.Exec(r.Context(), "INSERT INTO notes (body) VALUES ($1)", strings.TrimSpace(string(body)))
			return err
		}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /visits", func(w http.ResponseWriter, r *http.Request) {
		if redisURL == "" {
			http.Error(w, "no REDIS_URL", http.StatusNotFound)
			return
		}
		n, err := incr(r.Context(), redisURL, "visits")
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "visits: %d\n", n)
	})
	mux.HandleFunc("GET /up", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := db.Ping(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// retryRead runs a read again, up to three times, when the server
// closed the connection it ran on, or refused a new one because the
// database was swapped meanwhile: a restore (hoist accessory restore)
// ends the pool's connections once (57P01) and a connection opened at
// the instant it puts the restored database in place is refused once
// (3D000, "It seems to have just been dropped or renamed"); a restart of
// PostgreSQL ends them too. A read is safe to repeat on a new one.
func retryRead(read func() error) error {
	err := read()
	for i := 0; i < 3 && closedByServer(err); i++ {
		err = read()
	}
	return err
}

// retryWrite runs a one-statement write again on the same causes as
// retryRead. That is safe for this write: 3D000 refused a new
// connection before anything ran, SafeToRetry says nothing was sent, and
// 57P01 is a backend ended by a restore or a restart, which aborts the
// statement it had not committed; the pooled connection a restore ended
// while it was idle answers the next statement with it, which the
// server never ran. (A backend ended in the instant between its commit
// and its answer would make a note twice: harmless here, not for every
// write.)
func retryWrite(write func() error) error { return retryRead(write) }

func closedByServer(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "57P01" || pe.Code == "3D000") || pgconn.SafeToRetry(err)
}
